//! A partitioned audit store: `threadline.audit_changes` range-partitioned by capture
//! time, one partition per day, week or month (UTC), so that retention drops whole
//! partitions instead of deleting rows one by one.
//!
//! A store starts as one table; [`convert_blocking`] partitions it, on a live database:
//! it first adds and validates `CHECK (captured_at < boundary)` without blocking writers,
//! then swaps the table for a partitioned one in a moment under a lock (writers wait, none
//! fails, no change is lost or duplicated). The table as it was becomes the partition of
//! every change captured before the boundary, the start of the period after next, named
//! `audit_changes_before_<date>`. An empty store (a fresh install) is partitioned from the
//! start of the current period.
//!
//! Partitions are created ahead by [`ensure_blocking`] (`threadline partitions ensure`),
//! which every retention run also calls. A change no partition covers lands in
//! `audit_changes_default` and is never refused; `threadline health` reports it, and the
//! next `ensure` moves it into a partition of its own period.
//!
//! Creating, converting and dropping partitions needs the owner of the `threadline`
//! schema (the installing role): run these on its connection, not the app's.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::partitions::{self, Period};
//!
//! if partitions::period_blocking(conn)?.is_none() {
//!     let done = partitions::convert_blocking(conn, Period::Day)?;
//!     println!("changes before {} are in {}", done.boundary, done.before);
//! }
//! println!("{} partitions created", partitions::ensure_blocking(conn, partitions::DEFAULT_AHEAD)?);
//! # Ok(()) }
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use serde::Serialize;

use crate::Error;
use crate::read::exec::{Db, ready};
use crate::read::sql::{Bind, Sql};

/// Periods after the current one that [`ensure_blocking`] keeps a partition for, unless told
/// otherwise.
pub const DEFAULT_AHEAD: u32 = 2;

/// The most periods ahead [`ensure_blocking`] creates partitions for.
pub const MAX_AHEAD: u32 = 400;

/// The span of one partition, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// From midnight to midnight.
    Day,
    /// From Monday to Monday.
    Week,
    /// From the first of a month to the first of the next.
    Month,
}

impl Period {
    /// Every period, as [`Period::as_str`] names them.
    pub const NAMES: [&'static str; 3] = ["day", "week", "month"];

    /// Its name: `day`, `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = Error;

    /// Parses `day`, `week` or `month`.
    ///
    /// ```
    /// use threadline::partitions::Period;
    ///
    /// assert_eq!("week".parse::<Period>().unwrap(), Period::Week);
    /// let error = "mnth".parse::<Period>().unwrap_err().to_string();
    /// assert!(error.contains("did you mean month?"), "{error}");
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => {
                let hint = crate::read::filter::suggest(s, &Period::NAMES)
                    .map(|p| format!(" (did you mean {p}?)"))
                    .unwrap_or_default();
                Err(Error::Invalid {
                    field: "partition period",
                    reason: format!("expected day, week or month, got {s:?}{hint}"),
                })
            }
        }
    }
}

/// One partition of `threadline.audit_changes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, QueryableByName)]
pub struct Partition {
    /// Its table's name, in schema `threadline`.
    #[diesel(sql_type = Text)]
    pub name: String,
    /// The first capture time it holds; `None` for the earliest partition (from any time)
    /// and the default one.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "crate::read::micros_opt")]
    pub range_start: Option<DateTime<Utc>>,
    /// The capture time it ends before; `None` for the default partition.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "crate::read::micros_opt")]
    pub range_end: Option<DateTime<Utc>>,
    /// Whether it is the default partition, which holds what no other covers.
    #[diesel(sql_type = Bool)]
    pub is_default: bool,
    /// The planner's estimate of its rows (0 until it is analyzed).
    #[diesel(sql_type = BigInt)]
    pub estimated_rows: i64,
}

/// What [`convert_blocking`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversion {
    /// The period of the store's partitions.
    pub period: Period,
    /// The partition that holds every change captured before `boundary`: the table as it
    /// was.
    pub before: String,
    /// Where the partitions by period begin.
    #[serde(serialize_with = "crate::read::micros")]
    pub boundary: DateTime<Utc>,
    /// Partitions created from the boundary on.
    pub created: u32,
}

#[derive(QueryableByName)]
struct PeriodRow {
    #[diesel(sql_type = Nullable<Text>)]
    period: Option<String>,
}

#[derive(QueryableByName)]
struct FlagRow {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

#[derive(QueryableByName)]
struct TimeRow {
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct CreatedRow {
    #[diesel(sql_type = Integer)]
    created: i32,
}

/// The store's partition period, or `None` when it is one table.
pub async fn period(conn: &mut AsyncPgConnection) -> Result<Option<Period>, Error> {
    store_period(conn).await
}

/// [`period`] on a blocking connection.
pub fn period_blocking(conn: &mut PgConnection) -> Result<Option<Period>, Error> {
    ready(store_period(conn))
}

/// The partitions, oldest first, the default one last; empty when the store is one table.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<Partition>, Error> {
    partitions(conn).await
}

/// [`list`] on a blocking connection.
pub fn list_blocking(conn: &mut PgConnection) -> Result<Vec<Partition>, Error> {
    ready(partitions(conn))
}

/// Creates the partitions of the current period and of `ahead` periods after it, and of
/// every period a change in the default partition falls in (moving those changes there).
/// Returns how many it created. Fails when the store is not partitioned.
pub async fn ensure(conn: &mut AsyncPgConnection, ahead: u32) -> Result<u32, Error> {
    ensure_ahead(conn, ahead).await
}

/// [`ensure`] on a blocking connection.
pub fn ensure_blocking(conn: &mut PgConnection, ahead: u32) -> Result<u32, Error> {
    ready(ensure_ahead(conn, ahead))
}

/// Partitions the store by `period`, on a live database; see the [module docs](self).
/// Fails, changing nothing, when it is partitioned already.
pub async fn convert(conn: &mut AsyncPgConnection, period: Period) -> Result<Conversion, Error> {
    convert_store(conn, period).await
}

/// [`convert`] on a blocking connection.
pub fn convert_blocking(conn: &mut PgConnection, period: Period) -> Result<Conversion, Error> {
    ready(convert_store(conn, period))
}

/// Attempts at a statement that waits for a lock of the audit table: each waits up to the
/// function's `lock_timeout` (2 s) before giving way to the writers queued behind it.
const LOCK_ATTEMPTS: u32 = 5;

/// Runs the statement `sql` makes, again when it gave up waiting for a lock, up to
/// [`LOCK_ATTEMPTS`] times.
pub(crate) async fn load_retrying<C, R>(conn: &mut C, sql: impl Fn() -> Sql) -> Result<Vec<R>, Error>
where
    C: Db,
    R: QueryableByName<diesel::pg::Pg> + Send + 'static,
{
    let mut attempt = 1;
    loop {
        match conn.load::<R>(sql()).await {
            Err(error) if attempt < LOCK_ATTEMPTS && error.to_string().contains("lock timeout") => attempt += 1,
            done => return done,
        }
    }
}

pub(crate) async fn store_period<C: Db>(conn: &mut C) -> Result<Option<Period>, Error> {
    let row = conn
        .load::<PeriodRow>(Sql::new("SELECT partition_period AS period FROM threadline.settings"))
        .await?
        .pop();
    row.and_then(|r| r.period).map(|p| p.parse()).transpose()
}

pub(crate) async fn partitions<C: Db>(conn: &mut C) -> Result<Vec<Partition>, Error> {
    conn.load::<Partition>(Sql::new(
        "SELECT name, range_start, range_end, is_default, estimated_rows FROM threadline.partitions() \
         ORDER BY is_default, range_start NULLS FIRST",
    ))
    .await
}

pub(crate) async fn ensure_ahead<C: Db>(conn: &mut C, ahead: u32) -> Result<u32, Error> {
    if ahead > MAX_AHEAD {
        return Err(Error::Invalid {
            field: "periods ahead",
            reason: format!("at most {MAX_AHEAD}, got {ahead}"),
        });
    }
    let sql = || {
        let mut sql = Sql::new("SELECT threadline.ensure_partitions(");
        sql.bind(Bind::BigInt(ahead.into())).push("::integer) AS created");
        sql.writing()
    };
    let created = load_retrying::<_, CreatedRow>(conn, sql)
        .await?
        .pop()
        .expect("one row")
        .created;
    Ok(u32::try_from(created).expect("a count"))
}

async fn convert_store<C: Db>(conn: &mut C, period: Period) -> Result<Conversion, Error> {
    if let Some(current) = store_period(conn).await? {
        return Err(Error::Invalid {
            field: "partition period",
            reason: format!("the audit store is partitioned by {current} already"),
        });
    }
    let empty = conn
        .load::<FlagRow>(Sql::new(
            "SELECT NOT EXISTS (SELECT 1 FROM threadline.audit_changes) AS flag",
        ))
        .await?
        .pop()
        .is_some_and(|r| r.flag);
    let before = if empty {
        swap(conn, period, None).await?
    } else {
        live_swap(conn, period).await?
    };
    let list = partitions(conn).await?;
    let boundary = list
        .iter()
        .find(|p| p.name == before)
        .and_then(|p| p.range_end)
        .expect("the partition of the changes before");
    let created = list.iter().filter(|p| p.range_start >= Some(boundary)).count();
    Ok(Conversion {
        period,
        before,
        boundary,
        created: u32::try_from(created).expect("a count"),
    })
}

/// `threadline.partition_changes`: the swap itself, at `boundary` (`None`: the store must
/// be empty, and the boundary is the current period's start). Returns the name of the
/// partition of the changes before.
async fn swap<C: Db>(conn: &mut C, period: Period, boundary: Option<DateTime<Utc>>) -> Result<String, Error> {
    let sql = || {
        let mut sql = Sql::new("SELECT threadline.partition_changes(");
        sql.bind(Bind::Text(period.as_str().into()));
        if let Some(boundary) = boundary {
            sql.push(", ").bind(Bind::Timestamp(boundary));
        }
        sql.push(") AS name");
        sql.writing()
    };
    Ok(load_retrying::<_, NameRow>(conn, sql)
        .await?
        .pop()
        .expect("one row")
        .name)
}

/// One step of `threadline.partition_boundary`, the CHECK of a live swap: `add` (at
/// `boundary`), `validate` or `drop`.
async fn boundary_step<C: Db>(conn: &mut C, step: &str, boundary: Option<DateTime<Utc>>) -> Result<(), Error> {
    let sql = || {
        let mut sql = Sql::new("SELECT true AS flag FROM threadline.partition_boundary(");
        sql.bind(Bind::Text(step.into()));
        if let Some(boundary) = boundary {
            sql.push(", ").bind(Bind::Timestamp(boundary));
        }
        sql.push(")");
        sql.writing()
    };
    load_retrying::<_, FlagRow>(conn, sql).await.map(drop)
}

/// The swap of a table that holds changes: the boundary is the start of the period after
/// next, so every change written while the CHECK is added, validated and the table swapped
/// meets it. A failure removes the CHECK, which would refuse capture from the boundary on.
async fn live_swap<C: Db>(conn: &mut C, period: Period) -> Result<String, Error> {
    let mut at = Sql::new("SELECT threadline.period_start(");
    at.bind(Bind::Text(period.as_str().into()))
        .push(", now() + 2 * ('1 ' || ")
        .bind(Bind::Text(period.as_str().into()))
        .push(")::interval) AS at");
    let boundary = conn.load::<TimeRow>(at).await?.pop().expect("one row").at;
    // A failed `add` leaves nothing behind; a failure after it removes the CHECK.
    boundary_step(&mut *conn, "add", Some(boundary)).await?;
    let steps = async {
        boundary_step(&mut *conn, "validate", None).await?;
        swap(&mut *conn, period, Some(boundary)).await
    };
    let outcome = steps.await;
    if let Err(failed) = &outcome
        && store_period(conn).await.ok().flatten().is_none()
        && let Err(left) = boundary_step(conn, "drop", None).await
    {
        return Err(Error::Locked(format!(
            "{failed}; the CHECK audit_changes_partition_boundary is left on the table, and from {} on it \
             refuses every captured change: run SELECT threadline.partition_boundary('drop') before then \
             (it could not: {left})",
            boundary.to_rfc3339()
        )));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_period_parses_back_from_its_name() {
        for name in Period::NAMES {
            assert_eq!(name.parse::<Period>().unwrap().as_str(), name);
        }
        assert!("Day".parse::<Period>().is_err());
        assert!("".parse::<Period>().is_err());
    }
}
