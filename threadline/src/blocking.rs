//! The audited write path on a blocking [`diesel::PgConnection`], for scripts, the CLI
//! and apps on r2d2. Same semantics as the async functions at the crate root.

use diesel::sql_types::Jsonb;
use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};

use std::time::Instant;

use crate::telemetry::{self, TransactionSummary};
use crate::write::{BEGIN_AUDIT, CURRENT_TRANSACTION, IdRow, RECORD_ACTION};
use crate::{Action, AuditContext, Committed, Error};

/// A body's error or Threadline's own, kept apart inside the transaction.
enum Failure<E> {
    Body(E),
    Audit(Error),
}

impl<E> From<diesel::result::Error> for Failure<E> {
    fn from(error: diesel::result::Error) -> Self {
        Failure::Audit(Error::Database(error))
    }
}

/// Runs `body` in one database transaction that carries `ctx` to the capture triggers;
/// the blocking twin of [`crate::transaction`].
///
/// ```no_run
/// # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
/// use diesel::RunQueryDsl;
/// use threadline::{ActorRef, AuditContext};
///
/// let ctx = AuditContext::new().with_actor(ActorRef::system("nightly-cleanup")?);
/// let audited = threadline::transaction_blocking(conn, &ctx, |conn| {
///     diesel::sql_query("DELETE FROM sessions WHERE expired").execute(conn)?;
///     Ok::<_, threadline::Error>(())
/// })?;
/// # Ok(()) }
/// ```
pub fn transaction_blocking<T, E, F>(conn: &mut PgConnection, ctx: &AuditContext, body: F) -> Result<Committed<T>, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E>,
    E: From<Error>,
{
    let context = ctx.to_json()?;
    let (started, action) = (Instant::now(), ctx.action().map(Action::name));
    let span = telemetry::transaction_span(action);
    let _entered = span.enter();
    let mut summary = None;
    let outcome = conn.transaction::<_, Failure<E>, _>(|conn| {
        let action_id = sql_query(BEGIN_AUDIT)
            .bind::<Jsonb, _>(&context)
            .get_result::<IdRow>(conn)?
            .id;
        let value = body(conn).map_err(Failure::Body)?;
        let transaction_id = sql_query(CURRENT_TRANSACTION).get_result::<IdRow>(conn)?.id;
        if transaction_id.is_some() && telemetry::commit_summary_wanted() {
            summary = read_summary(conn);
        }
        Ok(Committed {
            value,
            transaction_id,
            action_id,
        })
    });
    match outcome {
        Ok(audited) => {
            telemetry::committed(summary.as_ref(), action, started);
            Ok(audited)
        }
        Err(Failure::Body(error)) => {
            telemetry::rolled_back(action, "body", started);
            Err(error)
        }
        Err(Failure::Audit(error)) => {
            telemetry::rolled_back(action, telemetry::error_kind(&error), started);
            Err(E::from(error))
        }
    }
}

/// The current transaction's tables and change count, read under a savepoint, as the
/// async path does: telemetry never fails the write.
fn read_summary(conn: &mut PgConnection) -> Option<TransactionSummary> {
    sql_query(telemetry::SUMMARY_SAVEPOINT).execute(conn).ok()?;
    match sql_query(telemetry::TRANSACTION_SUMMARY).get_result::<TransactionSummary>(conn) {
        Ok(found) => {
            sql_query(telemetry::SUMMARY_RELEASE).execute(conn).ok()?;
            Some(found)
        }
        Err(_) => {
            let _ = sql_query(telemetry::SUMMARY_ROLLBACK).execute(conn);
            None
        }
    }
}

/// Records an action on its own; the blocking twin of [`crate::record_action`].
pub fn record_action_blocking(conn: &mut PgConnection, ctx: &AuditContext, action: &Action) -> Result<i64, Error> {
    let json = ctx.action_json(action)?;
    let row = sql_query(RECORD_ACTION)
        .bind::<Jsonb, _>(&json)
        .get_result::<IdRow>(conn)?;
    telemetry::action_recorded(action);
    Ok(row.id.expect("threadline.record_action returns an id"))
}
