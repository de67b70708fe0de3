//! What Threadline reports to `tracing`: kinds, counts, table names and durations, never
//! a row value, an actor id, a request or correlation id, or a key. Failures are reported
//! by kind (`database`, `not_found`), not by message, since a database message can quote
//! a value.
//!
//! | target | level | event | fields |
//! |---|---|---|---|
//! | `threadline::write` | debug | span `threadline.transaction` | `action` |
//! | `threadline::write` | debug | `audited transaction committed` | `tables`, `changes`, `action`, `elapsed_ms` |
//! | `threadline::write` | debug | `audited transaction rolled back` | `action`, `error`, `elapsed_ms` |
//! | `threadline::write` | debug | `action recorded` | `action`, `status` |
//! | `threadline::read` | debug | `read` / `read failed` | `kind`, `rows`, `truncated`, `error`, `elapsed_ms` |
//! | `threadline::export` | info | `export finished` / `export failed` | `format`, `rows`, `truncated`, `error`, `elapsed_ms` |
//! | `threadline::health` | info | `health check` | `covered`, `uncovered`, `expected_uncovered`, `errors`, `warnings`, `elapsed_ms` |
//! | `threadline::health` | info | `policy check` | `matches`, `differs`, `declared_not_deployed`, `deployed_not_declared`, `elapsed_ms` |

use std::future::Future;
use std::time::Instant;

use crate::export::Format;
use crate::health::{HealthReport, Severity};
use crate::policy::{PolicyReport, PolicyStatus};
use crate::read::{AsOf, CorrelationBundle, Incident, MatchCount, Page};
use crate::retention::RetentionRun;
use crate::{Action, ActionStatus, Error};

/// Milliseconds since `started`, to the microsecond.
pub(crate) fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

/// A failure's kind, for telemetry: never its message.
pub(crate) fn error_kind(error: &Error) -> &'static str {
    match error {
        Error::Invalid { .. } => "invalid",
        Error::MissingActor => "missing_actor",
        Error::Database(_) => "database",
        Error::Connection(_) => "connection",
        Error::Pool(_) => "pool",
        Error::SchemaVersion { .. } => "schema_version",
        Error::NotFound { .. } => "not_found",
        Error::InvalidCursor(_) => "invalid_cursor",
        Error::ScopeRefused(_) => "scope_refused",
        Error::Decode { .. } => "decode",
        Error::Locked(_) => "locked",
        Error::Storage(_) => "storage",
        Error::Io(_) => "io",
        #[cfg(feature = "testing")]
        Error::TestDatabase(_) => "test_database",
    }
}

/// What a read returned, counted.
pub(crate) trait Counted {
    /// Entries returned.
    fn rows(&self) -> usize;
    /// Whether more follow (a next page, or actions cut short).
    fn truncated(&self) -> bool;
}

impl<T> Counted for Page<T> {
    fn rows(&self) -> usize {
        self.entries.len()
    }
    fn truncated(&self) -> bool {
        self.next_cursor.is_some()
    }
}

impl Counted for MatchCount {
    fn rows(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }
    fn truncated(&self) -> bool {
        self.capped
    }
}

impl Counted for AsOf {
    fn rows(&self) -> usize {
        usize::from(matches!(self, AsOf::Found(_)))
    }
    fn truncated(&self) -> bool {
        false
    }
}

impl Counted for Incident {
    fn rows(&self) -> usize {
        self.changes.rows()
    }
    fn truncated(&self) -> bool {
        self.changes.truncated()
    }
}

impl Counted for CorrelationBundle {
    fn rows(&self) -> usize {
        self.changes.rows()
    }
    fn truncated(&self) -> bool {
        self.changes.truncated() || self.actions_truncated
    }
}

/// Runs a read of `kind` (`timeline`, `row_history`...) and reports how it went.
pub(crate) async fn read<T: Counted>(
    kind: &'static str,
    read: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let started = Instant::now();
    let result = read.await;
    match &result {
        Ok(found) => tracing::debug!(
            target: "threadline::read",
            kind,
            rows = found.rows(),
            truncated = found.truncated(),
            elapsed_ms = elapsed_ms(started),
            "read"
        ),
        Err(error) => tracing::debug!(
            target: "threadline::read",
            kind,
            error = error_kind(error),
            elapsed_ms = elapsed_ms(started),
            "read failed"
        ),
    }
    result
}

/// Reports a finished export.
pub(crate) fn export_finished(format: Format, rows: u64, truncated: bool, started: Instant) {
    tracing::info!(
        target: "threadline::export",
        format = %format,
        rows,
        truncated,
        elapsed_ms = elapsed_ms(started),
        "export finished"
    );
}

/// Reports an export that failed after `rows` rows.
pub(crate) fn export_failed(format: Format, rows: u64, error: &Error, started: Instant) {
    tracing::info!(
        target: "threadline::export",
        format = %format,
        rows,
        error = error_kind(error),
        elapsed_ms = elapsed_ms(started),
        "export failed"
    );
}

/// Reports a health check's counts.
pub(crate) fn health_checked(report: &HealthReport, started: Instant) {
    let (covered, uncovered, expected_uncovered) = report.counts();
    let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
    tracing::info!(
        target: "threadline::health",
        covered,
        uncovered,
        expected_uncovered,
        errors,
        warnings = report.findings.len() - errors,
        elapsed_ms = elapsed_ms(started),
        "health check"
    );
}

/// Reports a policy check's counts.
pub(crate) fn policy_checked(report: &PolicyReport, started: Instant) {
    tracing::info!(
        target: "threadline::health",
        matches = report.count(PolicyStatus::Matches),
        differs = report.count(PolicyStatus::Differs),
        declared_not_deployed = report.count(PolicyStatus::DeclaredNotDeployed),
        deployed_not_declared = report.count(PolicyStatus::DeployedNotDeclared),
        elapsed_ms = elapsed_ms(started),
        "policy check"
    );
}

/// Reports a retention run that ended (or could not start).
pub(crate) fn retention_finished(run: Result<&RetentionRun, &Error>, started: Instant) {
    match run {
        Ok(run) => tracing::info!(
            target: "threadline::retention",
            run = run.id,
            status = ?run.status,
            changes_deleted = run.changes_deleted,
            transactions_deleted = run.transactions_deleted,
            batches = run.batches,
            more_left = run.more_left,
            elapsed_ms = elapsed_ms(started),
            "retention run finished"
        ),
        Err(error) => tracing::info!(
            target: "threadline::retention",
            error = error_kind(error),
            elapsed_ms = elapsed_ms(started),
            "retention run failed"
        ),
    }
}

/// Reports a pruner run that did not happen or failed.
pub(crate) fn pruner_skipped(error: &Error) {
    tracing::debug!(target: "threadline::retention", error = error_kind(error), "pruner run skipped");
}

/// Reports a step of an export job: `submitted`, `completed`, `failed`, `downloaded`...
#[cfg(feature = "jobs")]
pub(crate) fn export_job(step: &'static str, job: i64, rows: i64) {
    tracing::info!(target: "threadline::export", job, step, rows, "export job");
}

/// Reports a claimed export job.
#[cfg(feature = "jobs")]
pub(crate) fn export_job_claimed(job: i64, attempt: i32, worker: &str) {
    tracing::info!(target: "threadline::export", job, attempt, worker, "export job claimed");
}

/// Whether a subscriber takes the commit event, and so whether the transaction's summary
/// is worth a query.
pub(crate) fn commit_summary_wanted() -> bool {
    tracing::enabled!(target: "threadline::write", tracing::Level::DEBUG)
}

/// The span an audited transaction's body runs in.
pub(crate) fn transaction_span(action: Option<&str>) -> tracing::Span {
    tracing::debug_span!(target: "threadline::write", "threadline.transaction", action)
}

/// Reports a committed audited transaction: the tables it changed and how many changes.
pub(crate) fn committed(summary: Option<&TransactionSummary>, action: Option<&str>, started: Instant) {
    let (tables, changes) = summary.map_or((String::new(), 0), |s| (s.tables.join(","), s.changes));
    tracing::debug!(
        target: "threadline::write",
        tables,
        changes,
        action,
        elapsed_ms = elapsed_ms(started),
        "audited transaction committed"
    );
}

/// Reports a rolled-back audited transaction: `error` is `body` when the body failed, else
/// the kind of Threadline's own failure.
pub(crate) fn rolled_back(action: Option<&str>, error: &'static str, started: Instant) {
    tracing::debug!(
        target: "threadline::write",
        action,
        error,
        elapsed_ms = elapsed_ms(started),
        "audited transaction rolled back"
    );
}

/// Reports an action recorded on its own.
pub(crate) fn action_recorded(action: &Action) {
    let status = match action.status() {
        ActionStatus::Ok => "ok",
        ActionStatus::Error => "error",
    };
    tracing::debug!(target: "threadline::write", action = action.name(), status, "action recorded");
}

/// The savepoint the summary query runs under, and its release or rollback.
pub(crate) const SUMMARY_SAVEPOINT: &str = "SAVEPOINT threadline_summary";
pub(crate) const SUMMARY_RELEASE: &str = "RELEASE SAVEPOINT threadline_summary";
pub(crate) const SUMMARY_ROLLBACK: &str = "ROLLBACK TO SAVEPOINT threadline_summary";

/// The query behind [`TransactionSummary`].
pub(crate) const TRANSACTION_SUMMARY: &str = "SELECT tables, changes FROM threadline.transaction_summary()";

/// What the current transaction captured: `threadline.transaction_summary()`.
#[derive(diesel::QueryableByName)]
pub(crate) struct TransactionSummary {
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    tables: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    changes: i64,
}
