//! The audit tables as Diesel declares them (`threadline::tables`): the declaration names
//! the catalog's columns in its order, and a host's own query reads every column of a
//! change, its transaction and its action.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::{debug_query, sql_query};
use serde_json::{Value, json};
use threadline::Action;
use threadline::tables::{audit_actions, audit_changes, audit_transactions};

use crate::{ctx, seeded, write};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The columns of `threadline.<table>` in the catalog, in order.
fn catalog(conn: &mut PgConnection, table: &str) -> Vec<String> {
    sql_query(
        "SELECT attname::text AS name FROM pg_attribute
          WHERE attrelid = ('threadline.' || $1)::regclass AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
    )
    .bind::<Text, _>(table)
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|c| c.name)
    .collect()
}

/// The columns a `SELECT` of every declared column names, in order.
fn declared(select: String, table: &str) -> Vec<String> {
    let list = select
        .strip_prefix("SELECT ")
        .and_then(|s| s.split(" FROM ").next())
        .unwrap();
    let prefix = format!("\"threadline\".\"{table}\".");
    list.split(", ")
        .map(|c| c.strip_prefix(&prefix).unwrap().trim_matches('"').to_owned())
        .collect()
}

#[test]
fn the_declaration_names_every_column_of_the_catalog_in_order() {
    let (_db, mut conn) = seeded();
    let changes = debug_query::<Pg, _>(&audit_changes::table.select(audit_changes::all_columns)).to_string();
    let transactions =
        debug_query::<Pg, _>(&audit_transactions::table.select(audit_transactions::all_columns)).to_string();
    let actions = debug_query::<Pg, _>(&audit_actions::table.select(audit_actions::all_columns)).to_string();
    for (select, table) in [
        (changes, "audit_changes"),
        (transactions, "audit_transactions"),
        (actions, "audit_actions"),
    ] {
        assert_eq!(declared(select, table), catalog(&mut conn, table), "{table}");
    }
}

type ChangeColumns = (
    i64,
    i64,
    String,
    String,
    Value,
    String,
    Option<Value>,
    Option<Vec<String>>,
    Option<Value>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    bool,
    DateTime<Utc>,
);

/// A change's columns, three of its transaction's and three of its action's.
type Joined = (
    ChangeColumns,
    (DateTime<Utc>, u64, Option<String>),
    (String, Value, u64),
);

#[test]
fn a_host_s_own_query_reads_every_column_of_a_change_its_transaction_and_action() {
    let (_db, mut conn) = seeded();
    let context = ctx("user:42", "req-1", "corr-1", "acme").with_action(Action::new("post_created").unwrap());
    let transaction = write(
        &mut conn,
        &context,
        "INSERT INTO posts (id, title, email, secret) VALUES (7, 'Hello', 'a@example.com', 's3cret')",
    );

    let (change, (occurred_at, xact_id, tenant), (action, actor, action_xact)): Joined = audit_changes::table
        .inner_join(audit_transactions::table.inner_join(audit_actions::table))
        .filter(audit_changes::table_name.eq("posts"))
        .select((
            audit_changes::all_columns,
            (
                audit_transactions::occurred_at,
                audit_transactions::xact_id,
                audit_transactions::tenant_id,
            ),
            (audit_actions::name, audit_actions::actor, audit_actions::xact_id),
        ))
        .first(&mut conn)
        .unwrap();
    let (_, transaction_id, schema, table, key, op, data, changed, from, masked, excluded, from_update, captured_at) =
        change;
    assert_eq!(transaction_id, transaction);
    assert_eq!(
        (schema.as_str(), table.as_str(), op.as_str()),
        ("public", "posts", "insert")
    );
    assert_eq!(key, json!({"id": "7"}));
    assert_eq!(data.unwrap()["email"], json!("[REDACTED]"));
    assert_eq!((changed, from, from_update), (None, None, false));
    assert_eq!(masked, Some(vec!["email".to_owned()]));
    assert_eq!(excluded, Some(vec!["secret".to_owned()]));
    assert!(captured_at >= occurred_at);
    assert_eq!(tenant.as_deref(), Some("acme"));
    assert_eq!(
        (action.as_str(), actor),
        ("post_created", json!({"type": "user", "id": "42"}))
    );
    assert_eq!(xact_id, action_xact, "one database transaction recorded both");
    #[derive(QueryableByName)]
    struct Xid {
        #[diesel(sql_type = Text)]
        xid: String,
    }
    let stored = sql_query(format!(
        "SELECT xact_id::text AS xid FROM threadline.audit_transactions WHERE id = {transaction}"
    ))
    .get_result::<Xid>(&mut conn)
    .unwrap();
    assert_eq!(stored.xid, xact_id.to_string());
}
