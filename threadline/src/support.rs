//! The runtime that `#[audited_action]` expands to: the pool and context arguments seen
//! through traits with actionable errors, the pool checkout, the audited transaction and
//! the optional record of a failed attempt. Hidden: only generated code names it,
//! through `threadline::__support`.

use std::ops::Deref;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;

use crate::{Action, ActionStatus, AuditContext, Error};

/// A pool that `#[audited_action]` can check a connection out of.
#[diagnostic::on_unimplemented(
    message = "`#[audited_action]` cannot check a connection out of `{Self}`",
    label = "this is the pool argument of the audited action",
    note = "the pool must be a bb8 pool of diesel-async connections, `diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>`, passed as it is, by reference, or in `actix_web::web::Data`",
    note = "name another argument with `#[audited_action(\"post_created\", pool = db)]`"
)]
pub trait AuditPool {
    /// The pool itself.
    fn pool(&self) -> &Pool<AsyncPgConnection>;
}

impl AuditPool for Pool<AsyncPgConnection> {
    fn pool(&self) -> &Pool<AsyncPgConnection> {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<P: AuditPool + ?Sized> AuditPool for &P {
    fn pool(&self) -> &Pool<AsyncPgConnection> {
        P::pool(self)
    }
}

#[cfg(feature = "actix")]
#[diagnostic::do_not_recommend]
impl<P: AuditPool + ?Sized> AuditPool for actix_web::web::Data<P> {
    fn pool(&self) -> &Pool<AsyncPgConnection> {
        P::pool(self)
    }
}

/// An argument that holds the audit context: an `AuditContext`, or anything that
/// dereferences to one (`&AuditContext`, `web::ReqData<AuditContext>`, an extractor of the
/// app's own).
#[diagnostic::on_unimplemented(
    message = "`#[audited_action]` cannot read an `AuditContext` from `{Self}`",
    label = "this is the context argument of the audited action",
    note = "the context argument must be a `threadline::AuditContext`, or a type that implements `Deref<Target = AuditContext>`, such as `&AuditContext` or `web::ReqData<AuditContext>`"
)]
pub trait ContextSource {
    /// The context.
    fn audit_context(&self) -> &AuditContext;
}

impl ContextSource for AuditContext {
    fn audit_context(&self) -> &AuditContext {
        self
    }
}

#[diagnostic::do_not_recommend]
impl<T: Deref<Target = AuditContext> + ?Sized> ContextSource for T {
    fn audit_context(&self) -> &AuditContext {
        self
    }
}

/// What an audited action's function returns: `Result<T, E>` with `E: From<threadline::Error>`.
#[diagnostic::on_unimplemented(
    message = "a `#[audited_action]` function must return `Result<T, E>` where `E: From<threadline::Error>`, not `{Self}`",
    label = "the body of the audited action returns `{Self}`",
    note = "return `Result<T, threadline::Error>`, `Result<T, actix_web::Error>` (with threadline's `actix` feature), or `Result<T, E>` with your own `impl From<threadline::Error> for E`"
)]
pub trait ActionResult: Sized {
    /// The `Ok` value.
    type Value;
    /// The error, which Threadline's errors convert into.
    type Failure: From<Error>;

    /// As a `Result`.
    fn into_result(self) -> Result<Self::Value, Self::Failure>;

    /// Back from a `Result`.
    fn from_result(result: Result<Self::Value, Self::Failure>) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T, E: From<Error>> ActionResult for Result<T, E> {
    type Value = T;
    type Failure = E;

    fn into_result(self) -> Self {
        self
    }

    fn from_result(result: Self) -> Self {
        result
    }
}

/// Runs `body` as the audited action `action` of `ctx`: one connection from `pool`, one
/// [`crate::transaction`] whose context names the action. With `record_failure`, an `Err`
/// is followed by a record of the failed attempt ([`ActionStatus::Error`], no changes) on
/// the same connection; the body's error is returned whether that record succeeds or not.
pub async fn run_action<R, F>(
    pool: &Pool<AsyncPgConnection>,
    ctx: AuditContext,
    action: &str,
    record_failure: bool,
    body: F,
) -> R
where
    R: ActionResult,
    F: AsyncFnOnce(&mut AsyncPgConnection) -> R,
{
    let action = match Action::new(action) {
        Ok(action) => action,
        Err(error) => return R::from_result(Err(error.into())),
    };
    let mut conn = match pool.get().await {
        Ok(conn) => conn,
        Err(error) => return R::from_result(Err(Error::Pool(Box::new(error)).into())),
    };
    let audited = ctx.with_action(action.clone());
    let outcome = crate::transaction(&mut conn, &audited, async |conn| body(conn).await.into_result()).await;
    match outcome {
        Ok(committed) => R::from_result(Ok(committed.value)),
        Err(error) => {
            if record_failure {
                // The body's error is the one to report; a failed record (a broken
                // connection, a context with no actor) must not hide it.
                let failed = action.with_status(ActionStatus::Error);
                let _ = crate::record_action(&mut conn, &audited, &failed).await;
            }
            R::from_result(Err(error))
        }
    }
}
