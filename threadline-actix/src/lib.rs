//! actix-web integration of Threadline: the [`AuditContext`](threadline::AuditContext) of
//! every request, built by a middleware and handed to handlers by an extractor.
//!
//! - [`AuditMiddleware`] builds each request's context: the actor from the host's resolver (a
//!   function of the request, or the app's own async extractor), the request id from
//!   `x-request-id` (generated when absent, echoed on the response), the correlation id from
//!   `x-correlation-id`, the tenant from an optional resolver, source `request`, and the
//!   client address in `meta`. Bad ids are a 400 with a JSON body.
//! - [`RequestAudit`] extracts the context in handlers, and is the `#[audit_context]`
//!   argument of `#[audited_action]`; `web::ReqData<AuditContext>` works too.
//! - Features `session` and `identity` (off by default) hold reference resolvers for
//!   actix-session ([`session::actor_from_key`]) and actix-identity ([`identity::user`]).
//!
//! ```
//! use actix_web::{App, HttpRequest, HttpResponse, web};
//! use threadline::ActorRef;
//! use threadline_actix::{AuditMiddleware, RequestAudit};
//!
//! fn actor(req: &HttpRequest) -> Result<Option<ActorRef>, actix_web::Error> {
//!     match req.headers().get("x-user-id").map(|v| v.to_str()) {
//!         Some(Ok(id)) => Ok(Some(ActorRef::user(id).map_err(actix_web::error::ErrorUnauthorized)?)),
//!         Some(Err(_)) => Err(actix_web::error::ErrorUnauthorized("bad x-user-id")),
//!         None => Ok(None),
//!     }
//! }
//!
//! async fn hello(audit: RequestAudit) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("request {}", audit.request_id().unwrap_or_default()))
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let app = actix_web::test::init_service(
//!     App::new().wrap(AuditMiddleware::new(actor)).route("/", web::get().to(hello)),
//! )
//! .await;
//! let req = actix_web::test::TestRequest::get()
//!     .uri("/")
//!     .insert_header(("x-user-id", "42"))
//!     .insert_header(("x-request-id", "req-1"))
//!     .to_request();
//! let resp = actix_web::test::call_service(&app, req).await;
//! assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-1");
//! assert_eq!(actix_web::test::read_body(resp).await, "request req-1");
//! # });
//! ```
//!
//! With the database: a handler under `#[audited_action]` takes the context as
//! `#[audit_context] audit: RequestAudit`, and its writes are recorded with the request's
//! actor, ids and tenant. A background job gets the context as JSON (`AuditContext` is
//! `Serialize` and `Deserialize`, with the builders' checks) and writes under the same actor
//! and correlation id:
//!
//! ```
//! use threadline::{AuditContext, Source};
//! use threadline_actix::RequestAudit;
//!
//! fn enqueue(audit: &RequestAudit) -> String {
//!     serde_json::to_string(&**audit).unwrap() // stored with the job
//! }
//!
//! fn in_the_worker(payload: &str) -> Result<AuditContext, serde_json::Error> {
//!     Ok(serde_json::from_str::<AuditContext>(payload)?.with_source(Source::Job))
//! }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod extractor;
mod headers;
#[cfg(feature = "identity")]
pub mod identity;
mod middleware;
mod resolver;
#[cfg(feature = "session")]
pub mod session;

pub use extractor::RequestAudit;
pub use middleware::{AuditMiddleware, AuditService};
