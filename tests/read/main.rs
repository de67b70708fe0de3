//! Investigation: the typed reads and the exports, on real audit data.

#[path = "../support/mod.rs"]
mod support;

mod as_of;
mod bundles;
mod export;
mod history;
mod parquet;
mod scope;
mod tables;
mod timeline;

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use threadline::read::TableName;
use threadline::{Action, ActorRef, AuditContext};

/// Audited tables with every shape the reads must handle: a masked and an excluded
/// column, a composite key, and a table that keeps no prior values.
const SCHEMA: &str = r#"
    CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, body text, email text, secret text);
    SELECT threadline.audit_table('posts', '{"mask": ["email"], "exclude": ["secret"]}');
    CREATE TABLE memberships (org text, member int, role text, PRIMARY KEY (org, member));
    SELECT threadline.audit_table('memberships');
    CREATE TABLE notes (id int PRIMARY KEY, body text);
    SELECT threadline.audit_table('notes', '{"changed_from": false}');
"#;

/// A fresh database with [`SCHEMA`], and an administrative connection.
fn seeded() -> (threadline::testing::TestDatabase, PgConnection) {
    let (db, mut conn) = support::setup();
    conn.batch_execute(SCHEMA).unwrap();
    (db, conn)
}

/// A request context: `actor` is `type:id`.
fn ctx(actor: &str, request: &str, correlation: &str, tenant: &str) -> AuditContext {
    let (kind, id) = actor.split_once(':').unwrap();
    let actor = ActorRef::new(threadline::ActorType::parse(kind).unwrap(), id).unwrap();
    AuditContext::new()
        .with_actor(actor)
        .with_request_id(request)
        .unwrap()
        .with_correlation_id(correlation)
        .unwrap()
        .with_tenant_id(tenant)
        .unwrap()
}

/// Runs `sql` in one audited transaction and returns its transaction id.
fn write(conn: &mut PgConnection, ctx: &AuditContext, sql: &str) -> i64 {
    threadline::transaction_blocking(conn, ctx, |conn| {
        conn.batch_execute(sql)?;
        Ok::<_, threadline::Error>(())
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .transaction_id
    .expect("the statement wrote an audited table")
}

/// Like [`write`], with a named action.
fn write_action(conn: &mut PgConnection, ctx: &AuditContext, action: &str, sql: &str) -> i64 {
    write(conn, &ctx.clone().with_action(Action::new(action).unwrap()), sql)
}

fn table(name: &str) -> TableName {
    name.parse().unwrap()
}
