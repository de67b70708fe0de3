//! The audited write path: context, actions and rollback, async and blocking.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod context;
mod job;
mod rules;

/// The audited table every write-path test writes to.
const SCHEMA: &str = "CREATE TABLE posts (id int PRIMARY KEY, title text);
                      SELECT threadline.audit_table('posts');";

/// Runs one SQL statement through `threadline::transaction` with `ctx`.
async fn audited_sql(
    conn: &mut diesel_async::AsyncPgConnection,
    ctx: &threadline::AuditContext,
    sql: &str,
) -> Result<threadline::Committed<()>, threadline::Error> {
    use diesel_async::RunQueryDsl;
    threadline::transaction(conn, ctx, async |conn| {
        diesel::sql_query(sql).execute(conn).await?;
        Ok(())
    })
    .await
}
