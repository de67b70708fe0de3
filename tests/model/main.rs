//! Typed history: `#[derive(Audited)]` models read their own trail.

#[path = "../support/mod.rs"]
mod support;

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::json;
use threadline::model::{Field, RowAsOf};
use threadline::read::{Op, Restriction};
use threadline::{Action, ActorRef, AuditContext, Audited, Error, Reader};

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    memberships (org, member) {
        org -> Text,
        member -> Integer,
        role -> Text,
    }
}

/// The issue's model: a masked email, an excluded secret that is still a field, an ignored
/// timestamp.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable, Audited)]
#[diesel(table_name = users)]
#[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
pub struct User {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub updated_at: DateTime<Utc>,
}

/// A composite key, nothing redacted.
#[derive(Debug, Clone, PartialEq, Queryable, Audited)]
#[diesel(table_name = memberships, primary_key(org, member))]
pub struct Membership {
    pub org: String,
    pub member: i32,
    #[diesel(column_name = role)]
    pub level: String,
}

const TABLES: &str = "
    CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL,
                        password_hash text NOT NULL, updated_at timestamptz NOT NULL);
    CREATE TABLE memberships (org text, member int, role text NOT NULL, PRIMARY KEY (org, member));
";

/// A database with both tables, audited by the models' own migration SQL.
fn setup() -> (threadline::testing::TestDatabase, PgConnection) {
    let (db, mut conn) = support::setup();
    conn.batch_execute(TABLES).unwrap();
    conn.batch_execute(User::MIGRATION_UP).unwrap();
    conn.batch_execute(Membership::MIGRATION_UP).unwrap();
    (db, conn)
}

fn as_admin(action: &str) -> AuditContext {
    AuditContext::new()
        .with_actor(ActorRef::admin("7").unwrap())
        .with_request_id("req-9")
        .unwrap()
        .with_action(Action::new(action).unwrap())
}

#[derive(QueryableByName)]
struct Policy {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    policy: serde_json::Value,
}

#[test]
fn the_deployed_policy_is_the_annotation() {
    let (_db, mut conn) = setup();
    for (table, expected) in [
        ("public.users", User::POLICY_JSON),
        ("public.memberships", Membership::POLICY_JSON),
    ] {
        let deployed: Policy = diesel::sql_query(format!("SELECT threadline.table_policy('{table}') AS policy"))
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(
            deployed.policy,
            serde_json::from_str::<serde_json::Value>(expected).unwrap(),
            "{table}"
        );
    }
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(User::POLICY_JSON).unwrap(),
        json!({"exclude": ["password_hash"], "mask": ["email"], "mask_placeholder": "[REDACTED]",
               "ignore_changes": ["updated_at"], "primary_key": ["id"], "changed_from": true})
    );
}

#[tokio::test]
async fn history_returns_typed_versions_newest_first_with_redaction_visible() {
    let (db, mut admin) = setup();
    let mut conn = db.connect_async().await.unwrap();
    let write = async |conn: &mut diesel_async::AsyncPgConnection, action: &str, sql: &'static str| {
        let committed = threadline::transaction(conn, &as_admin(action), async |conn| {
            diesel_async::RunQueryDsl::execute(diesel::sql_query(sql), conn).await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert!(committed.transaction_id.is_some());
    };
    write(
        &mut conn,
        "user_signed_up",
        "INSERT INTO users VALUES (1, 'a@example.com', 'Ann', 'hash-1', now())",
    )
    .await;
    write(&mut conn, "user_renamed", "UPDATE users SET name = 'Anne' WHERE id = 1").await;
    write(
        &mut conn,
        "email_changed",
        "UPDATE users SET email = 'b@example.com', password_hash = 'hash-2' WHERE id = 1",
    )
    .await;
    write(&mut conn, "user_deleted", "DELETE FROM users WHERE id = 1").await;

    let history = User::history(&mut conn, 1).await.unwrap();
    assert!(history.next_cursor.is_none());
    let versions = &history.entries;
    let steps: Vec<(Op, Option<&str>)> = versions.iter().map(|v| (v.op, v.action.as_deref())).collect();
    assert_eq!(
        steps,
        [
            (Op::Delete, Some("user_deleted")),
            (Op::Update, Some("email_changed")),
            (Op::Update, Some("user_renamed")),
            (Op::Insert, Some("user_signed_up"))
        ]
    );
    assert!(versions.iter().all(|v| v.actor == Some(ActorRef::admin("7").unwrap())));
    assert!(versions.iter().all(|v| v.request_id.as_deref() == Some("req-9")));
    assert_eq!(versions[2].changed_fields, ["name"]);
    assert_eq!(
        versions[1].changed_fields,
        ["email"],
        "the excluded secret is no field of the trail"
    );

    let renamed = versions[2].row.as_ref().unwrap();
    assert_eq!(renamed.id, Field::Value(1));
    assert_eq!(renamed.name, Field::Value("Anne".to_owned()));
    assert_eq!(
        renamed.email,
        Field::Masked,
        "a masked email is never a string pretending to be one"
    );
    assert_eq!(renamed.password_hash, Field::Excluded);
    assert!(matches!(renamed.updated_at, Field::Value(_)));
    assert_eq!(renamed.clone().into_model(), None, "a redacted row is not a model");
    assert_eq!(
        serde_json::to_value(renamed).unwrap()["email"],
        json!({"masked": true}),
        "serialized redaction says so"
    );

    let blocking = User::history_blocking(&mut admin, 1).unwrap();
    assert_eq!(blocking.entries, history.entries);
    assert!(matches!(User::history(&mut conn, 2).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn as_of_and_composite_keys_decode_the_model_itself() {
    let (db, mut admin) = setup();
    admin
        .batch_execute("INSERT INTO memberships VALUES ('acme', 5, 'member'), ('acme', 6, 'member')")
        .unwrap();
    admin
        .batch_execute("UPDATE memberships SET role = 'owner' WHERE member = 5")
        .unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let history = Membership::history(&mut conn, ("acme".to_owned(), 5)).await.unwrap();
    assert_eq!(history.entries.len(), 2);
    let newest = history.entries[0].row.clone().unwrap().into_model();
    assert_eq!(
        newest,
        Some(Membership {
            org: "acme".into(),
            member: 5,
            level: "owner".into()
        })
    );
    let before_update = history.entries[0].captured_at - chrono::Duration::microseconds(1);
    match Membership::as_of(&mut conn, ("acme".to_owned(), 5), before_update)
        .await
        .unwrap()
    {
        RowAsOf::Found(version) => assert_eq!(version.row.unwrap().level, Field::Value("member".to_owned())),
        other => panic!("{other:?}"),
    }
    let before_insert = history.entries[1].captured_at - chrono::Duration::microseconds(1);
    assert_eq!(
        Membership::as_of_blocking(&mut admin, ("acme".to_owned(), 5), before_insert).unwrap(),
        RowAsOf::BeforeHorizon
    );
}

type DbPool = diesel_async::pooled_connection::bb8::Pool<diesel_async::AsyncPgConnection>;

#[threadline::audited_action("user_created")]
async fn create_user(
    pool: &DbPool,
    ctx: &AuditContext,
    id: i64,
    name: &str,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<(), Error> {
    let insert = diesel::insert_into(users::table).values((
        users::id.eq(id),
        users::email.eq("new@example.com"),
        users::name.eq(name),
        users::password_hash.eq("secret"),
        users::updated_at.eq(Utc::now()),
    ));
    diesel_async::RunQueryDsl::execute(insert, conn).await?;
    Ok(())
}

#[threadline::audited_action("user_renamed")]
async fn rename_user(
    pool: &DbPool,
    ctx: &AuditContext,
    id: i64,
    name: &str,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<(), Error> {
    let update = diesel::update(users::table.find(id)).set(users::name.eq(name));
    diesel_async::RunQueryDsl::execute(update, conn).await?;
    Ok(())
}

#[threadline::audited_action("user_deleted")]
async fn delete_user(
    pool: &DbPool,
    ctx: &AuditContext,
    id: i64,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<(), Error> {
    diesel_async::RunQueryDsl::execute(diesel::delete(users::table.find(id)), conn).await?;
    Ok(())
}

#[tokio::test]
async fn history_shows_who_acted_in_which_audited_action() {
    let (db, _admin) = setup();
    let manager =
        diesel_async::pooled_connection::AsyncDieselConnectionManager::<diesel_async::AsyncPgConnection>::new(db.url());
    let pool: DbPool = bb8::Pool::builder().build(manager).await.unwrap();
    let ctx = AuditContext::new()
        .with_actor(ActorRef::user("42").unwrap())
        .with_correlation_id("onboarding-1")
        .unwrap();
    create_user(&pool, &ctx, 3, "Cy").await.unwrap();
    rename_user(&pool, &ctx, 3, "Cyd").await.unwrap();
    rename_user(&pool, &ctx, 3, "Cyda").await.unwrap();
    delete_user(&pool, &ctx, 3).await.unwrap();

    let mut conn = pool.get().await.unwrap();
    let versions = User::history(&mut conn, 3).await.unwrap().entries;
    let shown: Vec<(Op, Option<&str>, Option<&str>)> = versions
        .iter()
        .map(|v| (v.op, v.action.as_deref(), v.correlation_id.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            (Op::Delete, Some("user_deleted"), Some("onboarding-1")),
            (Op::Update, Some("user_renamed"), Some("onboarding-1")),
            (Op::Update, Some("user_renamed"), Some("onboarding-1")),
            (Op::Insert, Some("user_created"), Some("onboarding-1"))
        ]
    );
    assert!(versions.iter().all(|v| v.actor == Some(ActorRef::user("42").unwrap())));
    let names: Vec<Option<&str>> = versions
        .iter()
        .map(|v| v.row.as_ref().unwrap().name.value().map(String::as_str))
        .collect();
    assert_eq!(
        names,
        [Some("Cyda"), Some("Cyda"), Some("Cyd"), Some("Cy")],
        "a delete keeps the row it removed"
    );
    assert!(versions.iter().all(|v| v.row.as_ref().unwrap().email == Field::Masked));
}

#[test]
fn history_decodes_each_version_with_the_policy_it_was_captured_under() {
    let (_db, mut conn) = setup();
    // Captured under the model's own policy: email masked, password_hash excluded.
    conn.batch_execute("INSERT INTO users VALUES (1, 'a@example.com', 'Ann', 'hash-1', now())")
        .unwrap();
    // Email no longer masked.
    conn.batch_execute(
        r#"SELECT threadline.audit_table('public.users', '{"exclude": ["password_hash"], "ignore_changes": ["updated_at"]}');
           UPDATE users SET email = 'b@example.com' WHERE id = 1;"#,
    )
    .unwrap();
    // password_hash moved from exclude to mask.
    conn.batch_execute(
        r#"SELECT threadline.audit_table('public.users', '{"mask": ["password_hash"], "ignore_changes": ["updated_at"]}');
           UPDATE users SET name = 'Anne' WHERE id = 1;"#,
    )
    .unwrap();

    let versions = User::history_blocking(&mut conn, 1).unwrap().entries;
    let rows: Vec<&UserSnapshot> = versions.iter().map(|v| v.row.as_ref().unwrap()).collect();
    let [renamed, unmasked, inserted] = rows.as_slice() else {
        panic!("{versions:?}")
    };

    assert_eq!(
        inserted.email,
        Field::Masked,
        "a placeholder is never decoded as an email, whatever the policy is now"
    );
    assert_ne!(inserted.email, Field::Value("[REDACTED]".to_owned()));
    assert_eq!(inserted.password_hash, Field::Excluded);

    assert_eq!(
        unmasked.email,
        Field::Value("b@example.com".to_owned()),
        "captured unmasked, though the model's annotation masks email"
    );
    assert_eq!(unmasked.password_hash, Field::Excluded);
    assert_eq!(
        versions[1].changed_from.as_ref().unwrap()["email"],
        json!("a@example.com"),
        "the prior value, as the policy in force then stored it"
    );

    assert_eq!(renamed.email, Field::Value("b@example.com".to_owned()));
    assert_eq!(renamed.password_hash, Field::Masked, "masked once the policy masks it");
    assert_eq!(renamed.name, Field::Value("Anne".to_owned()));

    // The generated paging accessor agrees with the whole history.
    let first = User::history_page_blocking(&mut conn, 1, None, 2).unwrap();
    assert_eq!(first.entries, versions[..2]);
    let rest = User::history_page_blocking(&mut conn, 1, first.next_cursor.as_ref(), 2).unwrap();
    assert_eq!(rest.entries, versions[2..]);
    assert!(rest.next_cursor.is_none());
}

#[test]
fn a_scoped_reader_applies_its_scope_to_typed_history() {
    let (_db, mut conn) = setup();
    for (id, tenant) in [(1, "acme"), (2, "globex")] {
        let ctx = as_admin("user_created").with_tenant_id(tenant).unwrap();
        let written = threadline::transaction_blocking(&mut conn, &ctx, |conn| {
            conn.batch_execute(&format!(
                "INSERT INTO users VALUES ({id}, 'u{id}@example.com', 'U{id}', 'hash', now())"
            ))?;
            Ok::<_, Error>(())
        })
        .unwrap();
        assert!(written.transaction_id.is_some());
    }
    let reads = Reader::scoped(|_| Restriction::new().tenant("acme"));

    let own = reads
        .typed_history_page_blocking::<User>(&mut conn, &1, None, 10)
        .unwrap();
    let [created] = own.entries.as_slice() else {
        panic!("{own:?}")
    };
    assert_eq!(created.row.as_ref().unwrap().name, Field::Value("U1".to_owned()));
    assert!(matches!(
        reads.typed_as_of_blocking::<User>(&mut conn, &1, Utc::now()),
        Ok(RowAsOf::Found(_))
    ));

    let hidden = reads.typed_history_page_blocking::<User>(&mut conn, &2, None, 10);
    assert!(matches!(hidden, Err(Error::NotFound { .. })), "{hidden:?}");
    let hidden = reads.typed_as_of_blocking::<User>(&mut conn, &2, Utc::now());
    assert!(matches!(hidden, Err(Error::NotFound { .. })), "{hidden:?}");
    assert_eq!(
        User::history_blocking(&mut conn, 2).unwrap().entries.len(),
        1,
        "the generated accessors read the whole trail"
    );
}
