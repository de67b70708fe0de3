//! Threadline: an embedded audit trail for Diesel and PostgreSQL.
//!
//! Threadline has three layers:
//!
//! - **Capture.** PostgreSQL triggers record every row change of an audited table in
//!   `threadline.audit_changes`, grouped by database transaction in
//!   `threadline.audit_transactions`, whatever wrote it: Diesel, raw SQL, psql, a migration.
//!   Install the schema with the migration in [`migrations::INSTALL_SQL`] (or [`migrations::install`]),
//!   then audit a table from a migration:
//!   `SELECT threadline.audit_table('public.posts', '{"mask": ["email"]}');`
//! - **Context.** The application names who acted, in which request, and why, for the current
//!   database transaction: [`transaction`] opens a transaction, hands an [`AuditContext`] to
//!   the triggers through transaction-local settings and runs your code inside it.
//! - **Investigation.** Typed reads in [`read`] (timeline, row history, as-of, incident
//!   bundles), streaming exports in [`export`], and the `threadline` command line.
//! - **Health.** Proof that capture is on: coverage and findings in [`health`], the drift
//!   between the code's policies and the deployed ones in [`policy`].
//!
//! The async functions take an `AsyncPgConnection` (or a bb8 pooled one); their twins for a
//! blocking `diesel::PgConnection` have the same name with `_blocking` added:
//! [`transaction_blocking`], `Reader::timeline_blocking`, `HealthCheck::run_blocking`.
//! Export jobs, which run on a runtime, are async only.
//!
//! ```no_run
//! # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
//! use threadline::{Action, ActorRef, AuditContext};
//!
//! let ctx = AuditContext::new()
//!     .with_actor(ActorRef::user("42")?)
//!     .with_request_id("req-7f3a")?
//!     .with_action(Action::new("post_published")?);
//! let audited = threadline::transaction(conn, &ctx, async |conn| {
//!     diesel::sql_query("UPDATE posts SET published = true WHERE id = 1")
//!         .execute(conn)
//!         .await?;
//!     Ok::<_, threadline::Error>(())
//! })
//! .await?;
//! println!("audit transaction {:?}", audited.transaction_id);
//! # Ok(()) }
//! # use diesel_async::RunQueryDsl;
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod actor;
mod background;
mod blocking;
mod context;
mod error;
pub mod evidence;
pub mod export;
pub mod health;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod migrations;
pub mod model;
pub mod partitions;
pub mod policy;
pub mod read;
pub mod retention;
mod support;
pub mod tables;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod views;
mod write;

pub use actor::{ActorRef, ActorType};
pub use blocking::{record_action_blocking, transaction_blocking};
pub use context::{Action, ActionStatus, AuditContext, MAX_LABEL_BYTES, Source};
pub use error::Error;
pub use model::Audited;
pub use read::Reader;
pub use threadline_macros::Audited;
pub use threadline_macros::audited_action;
pub use write::{Committed, record_action, transaction};

/// What the generated code of `#[derive(Audited)]` and `#[audited_action]` names; not an
/// API of its own.
#[doc(hidden)]
pub mod __support {
    pub use crate::model::KeyPart;
    pub use crate::read::filter::suggest;
    pub use crate::support::{ActionResult, AuditPool, ContextSource, run_action};
    pub use chrono::{DateTime, Utc};
    pub use diesel::PgConnection;
    pub use diesel_async::AsyncPgConnection;
    pub use serde;
}
