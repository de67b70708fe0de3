//! Retention: keep the trail for a window, delete what is older in batches, and log every
//! run in `threadline.retention_runs`.
//!
//! A [`Purge`] deletes the changes captured before its cutoff (exclusive), oldest first,
//! `batch_size` at a time with a pause between batches so the app keeps its throughput,
//! then the transactions left without changes. Actions and evidence are never deleted.
//! One purge runs at a time across every process and node: the run holds a PostgreSQL
//! advisory lock for its session, and a second one is refused with [`Error::Locked`]
//! before it deletes anything. A run left `running` by a session that died is marked
//! `abandoned` by the next one, which finishes the job. The deleting itself is behind SQL
//! functions (`threadline.purge_plan`, `threadline.purge_batch`). On a
//! [partitioned store](crate::partitions) a run first drops, one by one, the partitions that
//! end at or before the cutoff (`threadline.purge_partitions`, counting their changes
//! exactly), deletes in batches only what is left before the cutoff, and then creates the
//! partitions ahead.
//!
//! The lock is a session lock: run purges on a direct connection, not through a
//! transaction-mode pooler, and outside a transaction; do not cancel a run midway (a
//! dropped future leaves the lock with its connection until that closes). Any role can
//! take an advisory lock, so a role that holds this one blocks retention: the refusal says
//! so. Purging needs `DELETE` on the audit tables: the installing role's connection, not
//! the app's.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::retention::{Purge, RetentionPolicy};
//!
//! let purge = Purge::new(RetentionPolicy::keep_days(365)?).batch_size(5_000)?;
//! let plan = purge.dry_run_blocking(conn)?;
//! println!("{} changes captured before {} would go", plan.changes, plan.cutoff);
//! let done = purge.execute_blocking(conn, |run| eprintln!("{} deleted", run.changes_deleted))?;
//! println!("run {} {:?}", done.run.id, done.run.status);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use serde::Serialize;

use crate::background::Background;
use crate::read::exec::{Db, ready};
use crate::read::sql::{Bind, Sql};
use crate::{Error, partitions, telemetry};

/// The advisory lock every purge holds while it runs: `threadln` in ASCII.
const LOCK_KEY: i64 = 0x7468_7265_6164_6c6e;

/// Changes deleted per batch when [`Purge::batch_size`] is not called.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

/// The pause between batches when [`Purge::pause`] is not called.
pub const DEFAULT_PAUSE: Duration = Duration::from_millis(100);

/// How long the trail is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep: TimeDelta,
}

impl RetentionPolicy {
    /// Keeps `days` days. Zero or fewer is refused.
    pub fn keep_days(days: i64) -> Result<Self, Error> {
        let window = TimeDelta::try_days(days)
            .ok_or_else(|| Error::invalid("retention window", format!("{days} days is out of range")))?;
        RetentionPolicy::keep(window)
    }

    /// Keeps `window`. Zero or less is refused, and so is more than 100 years.
    pub fn keep(window: TimeDelta) -> Result<Self, Error> {
        if window <= TimeDelta::zero() {
            return Err(Error::invalid(
                "retention window",
                format!("{window} keeps nothing; give a positive number of days"),
            ));
        }
        if window > TimeDelta::days(36_525) {
            return Err(Error::invalid(
                "retention window",
                "more than 100 years; give at most 36525 days",
            ));
        }
        Ok(RetentionPolicy { keep: window })
    }

    /// The window.
    pub fn window(&self) -> TimeDelta {
        self.keep
    }

    /// The cutoff at `now`: changes captured before it go.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.keep
    }
}

/// A run's state in `threadline.retention_runs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Deleting now (or its session died: the next run marks it abandoned).
    Running,
    /// Done: nothing captured before the cutoff is left, unless `more_left`.
    Completed,
    /// Stopped by an error, recorded in `error`.
    Failed,
    /// Its session ended mid-run; a later run took over.
    Abandoned,
}

impl RunStatus {
    /// The status as the runs log stores it: `running`, `completed`, `failed`, `abandoned`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// One row of `threadline.retention_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionRun {
    /// The run's id.
    pub id: i64,
    /// When it started.
    #[serde(serialize_with = "crate::read::micros")]
    pub started_at: DateTime<Utc>,
    /// When it ended, unless it is running.
    #[serde(serialize_with = "crate::read::micros_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its state.
    pub status: RunStatus,
    /// Changes captured before this time (exclusive) are deleted.
    #[serde(serialize_with = "crate::read::micros")]
    pub cutoff: DateTime<Utc>,
    /// Changes deleted so far.
    pub changes_deleted: i64,
    /// Transactions deleted so far (those left without changes).
    pub transactions_deleted: i64,
    /// Batches run.
    pub batches: i32,
    /// Partitions dropped whole (their changes are counted in `changes_deleted`).
    pub partitions_dropped: i32,
    /// Whether `max_batches` stopped it with changes older than the cutoff left.
    pub more_left: bool,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a dry run found: what a real run with the same cutoff would delete now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgePlan {
    /// The cutoff.
    #[serde(serialize_with = "crate::read::micros")]
    pub cutoff: DateTime<Utc>,
    /// Changes captured before it.
    pub changes: i64,
    /// Transactions all of whose changes were captured before it.
    pub transactions: i64,
    /// Partitions of a partitioned store that would be dropped whole.
    pub partitions: i64,
}

/// What a real run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeOutcome {
    /// The run, as logged when it ended.
    pub run: RetentionRun,
    /// Runs left `running` by a dead session, marked abandoned before this one started.
    pub abandoned: Vec<i64>,
}

/// A purge: a policy, batches, and the pause between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    policy: RetentionPolicy,
    batch_size: usize,
    max_batches: Option<u64>,
    pause: Duration,
    now: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct RunRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Timestamptz)]
    started_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Timestamptz)]
    cutoff: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    changes_deleted: i64,
    #[diesel(sql_type = BigInt)]
    transactions_deleted: i64,
    #[diesel(sql_type = Integer)]
    batches: i32,
    #[diesel(sql_type = Integer)]
    partitions_dropped: i32,
    #[diesel(sql_type = Bool)]
    more_left: bool,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

/// The columns of [`RunRow`].
const RUN_COLUMNS: &str = "id, started_at, finished_at, status, cutoff, changes_deleted, transactions_deleted, \
     batches, partitions_dropped, more_left, error";

impl TryFrom<RunRow> for RetentionRun {
    type Error = Error;

    fn try_from(row: RunRow) -> Result<Self, Error> {
        let status = match row.status.as_str() {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "abandoned" => RunStatus::Abandoned,
            other => {
                return Err(Error::Decode {
                    column: "retention_runs.status".into(),
                    reason: format!("{other:?} is not a run status"),
                });
            }
        };
        Ok(RetentionRun {
            id: row.id,
            started_at: row.started_at,
            finished_at: row.finished_at,
            status,
            cutoff: row.cutoff,
            changes_deleted: row.changes_deleted,
            transactions_deleted: row.transactions_deleted,
            batches: row.batches,
            partitions_dropped: row.partitions_dropped,
            more_left: row.more_left,
            error: row.error,
        })
    }
}

#[derive(QueryableByName)]
struct CountsRow {
    #[diesel(sql_type = BigInt)]
    changes: i64,
    #[diesel(sql_type = BigInt)]
    transactions: i64,
}

#[derive(QueryableByName)]
struct DroppedRow {
    #[diesel(sql_type = Integer)]
    partitions: i32,
}

#[derive(QueryableByName)]
struct FlagRow {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct TimeRow {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

impl Purge {
    /// A purge by `policy`, [`DEFAULT_BATCH_SIZE`] changes per batch, [`DEFAULT_PAUSE`]
    /// between batches, until nothing older than the cutoff is left.
    pub fn new(policy: RetentionPolicy) -> Self {
        Purge {
            policy,
            batch_size: DEFAULT_BATCH_SIZE,
            max_batches: None,
            pause: DEFAULT_PAUSE,
            now: None,
        }
    }

    /// Changes per batch, 1 to 1 000 000.
    pub fn batch_size(mut self, size: usize) -> Result<Self, Error> {
        if !(1..=1_000_000).contains(&size) {
            return Err(Error::invalid(
                "batch size",
                format!("{size} is not between 1 and 1000000"),
            ));
        }
        self.batch_size = size;
        Ok(self)
    }

    /// Stops after `batches` batches (at least 1); the run says whether more was left.
    pub fn max_batches(mut self, batches: u64) -> Result<Self, Error> {
        if batches == 0 {
            return Err(Error::invalid(
                "max batches",
                "0 batches deletes nothing; give at least 1",
            ));
        }
        self.max_batches = Some(batches);
        Ok(self)
    }

    /// The pause between batches.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Computes the cutoff from `now` instead of the database's clock.
    pub fn as_of(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// What a real run would delete now; deletes nothing.
    pub async fn dry_run(&self, conn: &mut AsyncPgConnection) -> Result<PurgePlan, Error> {
        plan(conn, self).await
    }

    /// [`Purge::dry_run`] on a blocking connection.
    pub fn dry_run_blocking(&self, conn: &mut PgConnection) -> Result<PurgePlan, Error> {
        ready(plan(conn, self))
    }

    /// Runs the purge, calling `progress` with the run after each batch.
    pub async fn execute(
        &self,
        conn: &mut AsyncPgConnection,
        progress: impl FnMut(&RetentionRun),
    ) -> Result<PurgeOutcome, Error> {
        execute(conn, self, progress, tokio::time::sleep).await
    }

    /// [`Purge::execute`] on a blocking connection.
    pub fn execute_blocking(
        &self,
        conn: &mut PgConnection,
        progress: impl FnMut(&RetentionRun),
    ) -> Result<PurgeOutcome, Error> {
        let sleep = |pause| {
            std::thread::sleep(pause);
            std::future::ready(())
        };
        ready(execute(conn, self, progress, sleep))
    }
}

/// The cutoff of `purge`: from its fixed time, else from the database's clock.
async fn cutoff<C: Db>(conn: &mut C, purge: &Purge) -> Result<DateTime<Utc>, Error> {
    let now = match purge.now {
        Some(now) => now,
        None => conn
            .load::<TimeRow>(Sql::new("SELECT now() AS at"))
            .await?
            .pop()
            .and_then(|row| row.at)
            .expect("now() is a time"),
    };
    Ok(purge.policy.cutoff(now))
}

async fn plan<C: Db>(conn: &mut C, purge: &Purge) -> Result<PurgePlan, Error> {
    let cutoff = cutoff(conn, purge).await?;
    let mut sql = Sql::new("SELECT changes, transactions FROM threadline.purge_plan(");
    sql.bind(Bind::Timestamp(cutoff)).push(")");
    let counts = conn.load::<CountsRow>(sql).await?.pop().expect("one row");
    let mut whole =
        Sql::new("SELECT count(*) AS id FROM threadline.partitions() p WHERE NOT p.is_default AND p.range_end <= ");
    whole.bind(Bind::Timestamp(cutoff));
    let partitions = conn.load::<IdRow>(whole).await?.pop().expect("one row").id;
    Ok(PurgePlan {
        cutoff,
        changes: counts.changes,
        transactions: counts.transactions,
        partitions,
    })
}

/// One run's row, as it is now.
async fn run_row<C: Db>(conn: &mut C, id: i64) -> Result<RetentionRun, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {RUN_COLUMNS} FROM threadline.retention_runs WHERE id = "
    ));
    sql.bind(Bind::BigInt(id));
    conn.load::<RunRow>(sql).await?.pop().expect("the run's row").try_into()
}

async fn execute<C, S, F>(
    conn: &mut C,
    purge: &Purge,
    mut progress: impl FnMut(&RetentionRun),
    sleep: S,
) -> Result<PurgeOutcome, Error>
where
    C: Db,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let started = Instant::now();
    let mut lock = Sql::new("SELECT pg_try_advisory_lock(");
    lock.bind(Bind::BigInt(LOCK_KEY)).push(") AS flag");
    if !conn.load::<FlagRow>(lock).await?.pop().is_some_and(|r| r.flag) {
        let holder = conn
            .load::<RunRow>(Sql::new(&format!(
                "SELECT {RUN_COLUMNS} FROM threadline.retention_runs WHERE status = 'running' \
                 ORDER BY id DESC LIMIT 1"
            )))
            .await?
            .pop()
            .map(|r| format!(" (run {}, started {})", r.id, crate::read::rfc3339(&r.started_at)))
            .unwrap_or_default();
        return Err(Error::Locked(format!(
            "another retention run holds the lock{holder}; nothing was deleted"
        )));
    }
    let outcome = locked(conn, purge, &mut progress, sleep).await;
    let mut unlock = Sql::new("SELECT pg_advisory_unlock(");
    unlock.bind(Bind::BigInt(LOCK_KEY)).push(") AS flag");
    let unlocked = match conn.load::<FlagRow>(unlock).await {
        Ok(rows) if rows.first().is_some_and(|r| r.flag) => Ok(()),
        Ok(_) => Err(Error::Locked(
            "the retention lock was not held at the end of the run".into(),
        )),
        Err(error) => Err(error),
    };
    let outcome = outcome.and_then(|outcome| unlocked.map(|()| outcome));
    telemetry::retention_finished(outcome.as_ref().map(|o| &o.run), started);
    outcome
}

/// The run, once the lock is held.
async fn locked<C, S, F>(
    conn: &mut C,
    purge: &Purge,
    progress: &mut impl FnMut(&RetentionRun),
    sleep: S,
) -> Result<PurgeOutcome, Error>
where
    C: Db,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let abandoned: Vec<i64> = conn
        .load::<IdRow>(
            Sql::new(
                "UPDATE threadline.retention_runs
                SET status = 'abandoned', finished_at = clock_timestamp(),
                    error = coalesce(error, 'its session ended before the run finished')
              WHERE status = 'running' RETURNING id",
            )
            .writing(),
        )
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let cutoff = cutoff(conn, purge).await?;
    let mut insert = Sql::new("INSERT INTO threadline.retention_runs (cutoff) VALUES (");
    insert.bind(Bind::Timestamp(cutoff)).push(") RETURNING id");
    let id = conn
        .load::<IdRow>(insert.writing())
        .await?
        .pop()
        .expect("the new run's id")
        .id;
    match batches(conn, purge, id, cutoff, progress, sleep).await {
        Ok(more_left) => {
            let mut done = Sql::new(
                "UPDATE threadline.retention_runs SET status = 'completed', finished_at = clock_timestamp(), \
                 more_left = ",
            );
            done.bind(Bind::Text(more_left.to_string()))
                .push("::boolean WHERE id = ")
                .bind(Bind::BigInt(id))
                .push(" RETURNING id");
            conn.load::<IdRow>(done.writing()).await?;
            Ok(PurgeOutcome {
                run: run_row(conn, id).await?,
                abandoned,
            })
        }
        Err(error) => {
            let mut failed = Sql::new(
                "UPDATE threadline.retention_runs SET status = 'failed', finished_at = clock_timestamp(), error = ",
            );
            failed
                .bind(Bind::Text(error.to_string()))
                .push(" WHERE id = ")
                .bind(Bind::BigInt(id))
                .push(" RETURNING id");
            // The connection may be what failed; the purge's error is the one to report.
            let _ = conn.load::<IdRow>(failed.writing()).await;
            Err(error)
        }
    }
}

/// Runs batches until none is left or `max_batches` is reached; returns whether changes
/// older than the cutoff are left.
async fn batches<C, S, F>(
    conn: &mut C,
    purge: &Purge,
    id: i64,
    cutoff: DateTime<Utc>,
    progress: &mut impl FnMut(&RetentionRun),
    sleep: S,
) -> Result<bool, Error>
where
    C: Db,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let size = i64::try_from(purge.batch_size).expect("at most 1000000");
    let partitioned = partitions::store_period(conn).await?.is_some();
    // Whole partitions first, one a statement, so writers wait for one detach at a time.
    if partitioned {
        loop {
            let drop = || {
                let mut drop = Sql::new("SELECT partitions FROM threadline.purge_partitions(");
                drop.bind(Bind::BigInt(id))
                    .push(", ")
                    .bind(Bind::Timestamp(cutoff))
                    .push(")");
                drop.writing()
            };
            let dropped = partitions::load_retrying::<_, DroppedRow>(conn, drop)
                .await?
                .pop()
                .expect("one row");
            if dropped.partitions == 0 {
                break;
            }
            progress(&run_row(conn, id).await?);
        }
    }
    let more_left = delete_batches(conn, purge, id, cutoff, size, progress, sleep).await?;
    if partitioned {
        partitions::ensure_ahead(conn, partitions::DEFAULT_AHEAD).await?;
    }
    Ok(more_left)
}

/// The batches of [`batches`], after any partition drop.
async fn delete_batches<C, S, F>(
    conn: &mut C,
    purge: &Purge,
    id: i64,
    cutoff: DateTime<Utc>,
    size: i64,
    progress: &mut impl FnMut(&RetentionRun),
    sleep: S,
) -> Result<bool, Error>
where
    C: Db,
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut done = 0_u64;
    loop {
        let mut batch = Sql::new("SELECT changes, transactions FROM threadline.purge_batch(");
        batch
            .bind(Bind::BigInt(id))
            .push(", ")
            .bind(Bind::Timestamp(cutoff))
            .push(", ")
            .bind(Bind::BigInt(size))
            .push("::integer)");
        let counts = conn.load::<CountsRow>(batch.writing()).await?.pop().expect("one row");
        progress(&run_row(conn, id).await?);
        done += 1;
        if counts.changes < size {
            return Ok(false);
        }
        if purge.max_batches.is_some_and(|max| done >= max) {
            let mut more = Sql::new("SELECT EXISTS (SELECT 1 FROM threadline.audit_changes WHERE captured_at < ");
            more.bind(Bind::Timestamp(cutoff)).push(") AS flag");
            return Ok(conn.load::<FlagRow>(more).await?.pop().is_some_and(|r| r.flag));
        }
        sleep(purge.pause).await;
    }
}

/// The newest `limit` runs of the log, newest first.
pub async fn runs(conn: &mut AsyncPgConnection, limit: usize) -> Result<Vec<RetentionRun>, Error> {
    list_runs(conn, limit).await
}

/// [`runs`] on a blocking connection.
pub fn runs_blocking(conn: &mut PgConnection, limit: usize) -> Result<Vec<RetentionRun>, Error> {
    ready(list_runs(conn, limit))
}

async fn list_runs<C: Db>(conn: &mut C, limit: usize) -> Result<Vec<RetentionRun>, Error> {
    let mut sql = Sql::new(&format!(
        "SELECT {RUN_COLUMNS} FROM threadline.retention_runs ORDER BY id DESC LIMIT "
    ));
    sql.bind(Bind::BigInt(i64::try_from(limit).unwrap_or(i64::MAX)));
    conn.load::<RunRow>(sql)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

/// Where the trail begins: the latest cutoff of a run that deleted something (or
/// completed), so nothing captured before it can be relied on. `None` when no run has.
pub async fn horizon(conn: &mut AsyncPgConnection) -> Result<Option<DateTime<Utc>>, Error> {
    trail_horizon(conn).await
}

/// [`horizon`] on a blocking connection.
pub fn horizon_blocking(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, Error> {
    ready(trail_horizon(conn))
}

async fn trail_horizon<C: Db>(conn: &mut C) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(conn
        .load::<TimeRow>(Sql::new(
            "SELECT max(cutoff) AS at FROM threadline.retention_runs
              WHERE status = 'completed' OR changes_deleted > 0",
        ))
        .await?
        .pop()
        .and_then(|row| row.at))
}

/// A purge run by the app itself on an interval: [`Pruner::start`] spawns it on the tokio
/// runtime (Actix's included), [`Pruner::stop`] ends it between runs. Each run takes a
/// connection from the pool for its length and uses the same lock as every other purge,
/// so a pruner on every node runs one purge at a time. Give it a pool of its own, of
/// direct connections (not through a transaction-mode pooler) as a role that may delete
/// from the audit tables.
///
/// ```no_run
/// # async fn demo(pool: diesel_async::pooled_connection::bb8::Pool<diesel_async::AsyncPgConnection>) -> Result<(), threadline::Error> {
/// use std::time::Duration;
/// use threadline::retention::{Pruner, Purge, RetentionPolicy};
///
/// let pruner = Pruner::start(pool, Purge::new(RetentionPolicy::keep_days(90)?), Duration::from_secs(3600));
/// // ... on shutdown:
/// pruner.stop().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Pruner(Background);

impl Pruner {
    /// Starts purging every `every`, the first run at once.
    pub fn start(pool: Pool<AsyncPgConnection>, purge: Purge, every: Duration) -> Pruner {
        Pruner(Background::start(every, move |_| {
            let (pool, purge) = (pool.clone(), purge.clone());
            async move {
                match pool.get().await {
                    Ok(mut conn) => {
                        if let Err(error) = purge.execute(&mut conn, |_| {}).await {
                            telemetry::pruner_skipped(&error);
                        }
                    }
                    Err(error) => telemetry::pruner_skipped(&Error::Pool(Box::new(error))),
                }
            }
        }))
    }

    /// Stops the pruner: a run in progress finishes first.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_must_keep_something() {
        assert!(RetentionPolicy::keep_days(0).is_err());
        assert!(RetentionPolicy::keep_days(-3).is_err());
        assert!(RetentionPolicy::keep_days(i64::MAX).is_err());
        assert!(RetentionPolicy::keep_days(100_000_000).is_err());
        assert!(RetentionPolicy::keep(TimeDelta::zero()).is_err());
        let policy = RetentionPolicy::keep_days(30).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00.000001Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            policy.cutoff(now),
            DateTime::parse_from_rfc3339("2026-11-02T10:00:00.000001Z")
                .unwrap()
                .to_utc()
        );
        assert!(Purge::new(policy).batch_size(0).is_err());
        assert!(Purge::new(policy).max_batches(0).is_err());
    }
}
