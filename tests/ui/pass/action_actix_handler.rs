// `#[audited_action]` on Actix handlers, above or below the route attribute: the pool in
// `web::Data`, the context from the request (`web::ReqData<AuditContext>` set by a
// middleware, or an app extractor marked `#[audit_context]`), errors as `actix_web::Error`,
// `threadline::Error` (a `ResponseError` with the `actix` feature) or the app's own.
use std::future::{Ready, ready};

use actix_web::{App, FromRequest, HttpRequest, HttpResponse, Responder, ResponseError, post, put, web};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use threadline::{AuditContext, audited_action};

type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;

#[post("/posts")]
#[audited_action("post_created")]
async fn create_post(
    pool: web::Data<DbPool>,
    ctx: web::ReqData<AuditContext>,
    title: web::Json<String>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, threadline::Error> {
    diesel::sql_query("INSERT INTO posts (title) VALUES ($1)")
        .bind::<diesel::sql_types::Text, _>(title.into_inner())
        .execute(conn)
        .await?;
    Ok(HttpResponse::Created().finish())
}

#[audited_action("post_published", record_failure)]
#[put("/posts/{id}/published")]
async fn publish_post(
    id: web::Path<i32>,
    pool: web::Data<DbPool>,
    ctx: web::ReqData<AuditContext>,
    conn: &mut AsyncPgConnection,
) -> Result<impl Responder, actix_web::Error> {
    diesel::sql_query("UPDATE posts SET published = true WHERE id = $1")
        .bind::<diesel::sql_types::Integer, _>(id.into_inner())
        .execute(conn)
        .await
        .map_err(threadline::Error::from)?;
    Ok(HttpResponse::NoContent())
}

/// An app's own context extractor.
struct Audit(AuditContext);

impl std::ops::Deref for Audit {
    type Target = AuditContext;

    fn deref(&self) -> &AuditContext {
        &self.0
    }
}

impl FromRequest for Audit {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(_: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Ok(Audit(AuditContext::new())))
    }
}

/// An app's own error type.
#[derive(Debug)]
struct ApiError(threadline::Error);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {}

impl From<threadline::Error> for ApiError {
    fn from(e: threadline::Error) -> Self {
        ApiError(e)
    }
}

#[post("/posts/purge")]
#[audited_action("posts_purged", pool = db)]
async fn purge_posts(
    db: web::Data<DbPool>,
    settings: web::Data<String>,
    #[audit_context] audit: Audit,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, ApiError> {
    diesel::sql_query(settings.as_str()).execute(conn).await.map_err(threadline::Error::from)?;
    Ok(HttpResponse::NoContent().finish())
}

fn main() {
    let _ = App::new().service(create_post).service(publish_post).service(purge_posts);
}
