// `#[audited_action]` on plain async fns: the pool passed by reference (found by its type's
// name, or named with `pool = ...`), the context by reference or by value, the connection
// parameter removed from the signature, the body's Ok value returned as it is.
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use threadline::{AuditContext, audited_action};

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

#[audited_action("post_created")]
async fn create_post(pool: &DbPool, ctx: &AuditContext, title: &str, conn: &mut AsyncPgConnection) -> Result<usize, threadline::Error> {
    let written = diesel::sql_query("INSERT INTO posts (title) VALUES ($1)")
        .bind::<diesel::sql_types::Text, _>(title)
        .execute(conn)
        .await?;
    Ok(written)
}

#[derive(Debug)]
enum AppError {
    Audit(threadline::Error),
    NothingToArchive,
}

impl From<threadline::Error> for AppError {
    fn from(e: threadline::Error) -> Self {
        AppError::Audit(e)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Audit(e.into())
    }
}

#[audited_action("posts.archived", pool = db, record_failure)]
async fn archive_posts(db: &DbPool, _: AuditContext, conn: &mut AsyncPgConnection) -> Result<(), AppError> {
    let archived = diesel::sql_query("UPDATE posts SET archived = true").execute(conn).await?;
    if archived == 0 {
        return Err(AppError::NothingToArchive);
    }
    Ok(())
}

/// The annotated fns as their callers see them: no connection argument.
async fn callers(pool: &DbPool, ctx: AuditContext) -> Result<(), AppError> {
    let written: usize = create_post(pool, &ctx, "hello").await?;
    assert_eq!(written, 1);
    archive_posts(pool, ctx).await
}

/// The futures are `Send` when what they hold is, so they can be spawned.
fn spawnable(pool: &DbPool, ctx: AuditContext) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(create_post(pool, &ctx, "hello"));
    assert_send(archive_posts(pool, ctx));
}

fn main() {
    let _ = (callers, spawnable);
}
