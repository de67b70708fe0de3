//! The audited write path on diesel-async.

use diesel::sql_types::{BigInt, Jsonb, Nullable};
use std::time::Instant;

use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager};
use tracing::Instrument;

use crate::telemetry::{self, TransactionSummary};
use crate::{Action, AuditContext, Error};

/// The value a body returned, with the audit rows its transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Committed<T> {
    /// What the body returned.
    pub value: T,
    /// The `audit_transactions.id` of the transaction, or `None` when the body wrote no
    /// audited table.
    pub transaction_id: Option<i64>,
    /// The `audit_actions.id` of the context's action, if it had one. An action is kept
    /// even when the body wrote no audited table: it records intent on its own.
    pub action_id: Option<i64>,
}

pub(crate) const BEGIN_AUDIT: &str = "SELECT threadline.begin_audit($1) AS id";
pub(crate) const CURRENT_TRANSACTION: &str = "SELECT threadline.current_transaction_id() AS id";
pub(crate) const RECORD_ACTION: &str = "SELECT threadline.record_action($1) AS id";

#[derive(QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) id: Option<i64>,
}

/// Runs `body` in one database transaction that carries `ctx` to the capture triggers.
///
/// The context reaches PostgreSQL through transaction-local settings bound as values,
/// never a session `SET`, so transaction-mode poolers such as PgBouncer stay safe. With an
/// action in the context, its `audit_actions` row is written in the same transaction and
/// linked. `Ok` from the body commits; `Err` rolls back everything, action included.
///
/// The body's error type must take Threadline's errors (`E: From<Error>`); a
/// `diesel::result::Error` from the body converts through `Error` with `?`.
///
/// ```no_run
/// # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
/// use diesel_async::RunQueryDsl;
/// use threadline::{ActorRef, AuditContext};
///
/// let ctx = AuditContext::new().with_actor(ActorRef::admin("7")?);
/// let audited = threadline::transaction(conn, &ctx, async |conn| {
///     let n = diesel::sql_query("DELETE FROM sessions WHERE expired").execute(conn).await?;
///     Ok::<_, threadline::Error>(n)
/// })
/// .await?;
/// println!("deleted {} rows in audit transaction {:?}", audited.value, audited.transaction_id);
/// # Ok(()) }
/// ```
pub async fn transaction<T, E, F>(conn: &mut AsyncPgConnection, ctx: &AuditContext, body: F) -> Result<Committed<T>, E>
where
    F: AsyncFnOnce(&mut AsyncPgConnection) -> Result<T, E>,
    E: From<Error>,
{
    let context = ctx.to_json()?;
    let (started, action) = (Instant::now(), ctx.action().map(Action::name));
    async {
        <AsyncPgConnection as AsyncConnection>::TransactionManager::begin_transaction(conn)
            .await
            .map_err(Error::from)?;
        // Threadline's own failures, told apart from the body's for telemetry.
        let mut own: Option<&'static str> = None;
        let outcome = async {
            let action_id = match sql_query(BEGIN_AUDIT)
                .bind::<Jsonb, _>(&context)
                .get_result::<IdRow>(conn)
                .await
            {
                Ok(row) => row.id,
                Err(error) => {
                    let error = Error::from(error);
                    own = Some(telemetry::error_kind(&error));
                    return Err(E::from(error));
                }
            };
            let value = body(conn).await?;
            let transaction_id = match sql_query(CURRENT_TRANSACTION).get_result::<IdRow>(conn).await {
                Ok(row) => row.id,
                Err(error) => {
                    let error = Error::from(error);
                    own = Some(telemetry::error_kind(&error));
                    return Err(E::from(error));
                }
            };
            let summary = match transaction_id {
                Some(_) if telemetry::commit_summary_wanted() => summary(conn).await,
                _ => None,
            };
            Ok((
                Committed {
                    value,
                    transaction_id,
                    action_id,
                },
                summary,
            ))
        }
        .await;
        match outcome {
            Ok((audited, summary)) => {
                if let Err(error) =
                    <AsyncPgConnection as AsyncConnection>::TransactionManager::commit_transaction(conn).await
                {
                    let error = Error::from(error);
                    telemetry::rolled_back(action, telemetry::error_kind(&error), started);
                    return Err(error.into());
                }
                telemetry::committed(summary.as_ref(), action, started);
                Ok(audited)
            }
            Err(error) => {
                // A failed rollback leaves the connection marked broken, so a pool discards
                // it; the body's error is the one worth reporting.
                let _ = <AsyncPgConnection as AsyncConnection>::TransactionManager::rollback_transaction(conn).await;
                telemetry::rolled_back(action, own.unwrap_or("body"), started);
                Err(error)
            }
        }
    }
    .instrument(telemetry::transaction_span(action))
    .await
}

/// The current transaction's tables and change count, for the commit event, read under a
/// savepoint: telemetry never fails the write (an older schema, a statement timeout).
async fn summary(conn: &mut AsyncPgConnection) -> Option<TransactionSummary> {
    sql_query(telemetry::SUMMARY_SAVEPOINT).execute(conn).await.ok()?;
    match sql_query(telemetry::TRANSACTION_SUMMARY)
        .get_result::<TransactionSummary>(conn)
        .await
    {
        Ok(found) => {
            sql_query(telemetry::SUMMARY_RELEASE).execute(conn).await.ok()?;
            Some(found)
        }
        Err(_) => {
            let _ = sql_query(telemetry::SUMMARY_ROLLBACK).execute(conn).await;
            None
        }
    }
}

/// Records an action on its own, outside [`transaction`], and returns its id. The actor,
/// request, correlation and tenant ids come from `ctx`, which must name an actor.
///
/// Use it for intent that writes nothing audited, or for a failed attempt recorded
/// after a rollback (with [`crate::ActionStatus::Error`]).
pub async fn record_action(conn: &mut AsyncPgConnection, ctx: &AuditContext, action: &Action) -> Result<i64, Error> {
    let json = ctx.action_json(action)?;
    let row = sql_query(RECORD_ACTION)
        .bind::<Jsonb, _>(&json)
        .get_result::<IdRow>(conn)
        .await?;
    telemetry::action_recorded(action);
    Ok(row.id.expect("threadline.record_action returns an id"))
}
