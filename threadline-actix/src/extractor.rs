//! [`RequestAudit`]: the request's `AuditContext`, as a handler argument.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use threadline::AuditContext;

use crate::error::AuditError;

/// The [`AuditContext`] that [`AuditMiddleware`](crate::AuditMiddleware) built for the
/// request, as a handler argument. It dereferences to the context, so it serves as the
/// `#[audit_context]` argument of `#[audited_action]` as it is.
///
/// Without the middleware there is no context: extracting it fails with a 500 whose body
/// names the fix, `{"error": "no audit context: wrap the app with
/// threadline_actix::AuditMiddleware"}`.
///
/// ```
/// use actix_web::{HttpResponse, get};
/// use threadline_actix::RequestAudit;
///
/// #[get("/whoami")]
/// async fn whoami(audit: RequestAudit) -> HttpResponse {
///     HttpResponse::Ok().json(serde_json::json!({
///         "actor": audit.actor(),
///         "request_id": audit.request_id(),
///     }))
/// }
/// ```
///
/// With `#[audited_action]` (threadline's `actix` feature, which this crate turns on):
///
/// ```no_run
/// use actix_web::{HttpResponse, post, web};
/// use diesel_async::{AsyncPgConnection, RunQueryDsl};
/// use threadline::audited_action;
/// use threadline_actix::RequestAudit;
///
/// type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;
///
/// #[post("/posts/{id}")]
/// #[audited_action("post_created")]
/// async fn create_post(
///     pool: web::Data<DbPool>,
///     #[audit_context] audit: RequestAudit,
///     id: web::Path<i32>,
///     conn: &mut AsyncPgConnection,
/// ) -> Result<HttpResponse, actix_web::Error> {
///     diesel::sql_query("INSERT INTO posts (id) VALUES ($1)")
///         .bind::<diesel::sql_types::Integer, _>(*id)
///         .execute(conn)
///         .await
///         .map_err(threadline::Error::from)?;
///     Ok(HttpResponse::Created().finish())
/// }
/// ```
///
/// For a background job, hand the context over as JSON:
/// `serde_json::to_string(&*audit)`, deserialized by the worker as an `AuditContext`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAudit(AuditContext);

impl RequestAudit {
    /// The context itself.
    ///
    /// ```
    /// use threadline::AuditContext;
    /// use threadline_actix::RequestAudit;
    ///
    /// fn for_a_job(audit: RequestAudit) -> AuditContext {
    ///     audit.into_inner().with_source(threadline::Source::Job)
    /// }
    /// ```
    pub fn into_inner(self) -> AuditContext {
        self.0
    }
}

impl Deref for RequestAudit {
    type Target = AuditContext;

    fn deref(&self) -> &AuditContext {
        &self.0
    }
}

impl FromRequest for RequestAudit {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req.extensions().get::<AuditContext>().cloned();
        ready(found.map(RequestAudit).ok_or_else(|| {
            AuditError::internal("no audit context: wrap the app with threadline_actix::AuditMiddleware").into()
        }))
    }
}
