//! Investigation: typed reads of the audit trail.
//!
//! A [`Reader`] answers the questions support staff ask: what changed (the
//! [`timeline`](Reader::timeline)), what happened to one row
//! ([`row_history`](Reader::row_history)), what it looked like at a time
//! ([`as_of`](Reader::as_of)), what one transaction did
//! ([`incident_bundle`](Reader::incident_bundle)), what one person did
//! ([`actor_history`](Reader::actor_history)) and what one business flow did
//! ([`correlation_bundle`](Reader::correlation_bundle)). Every list is a bounded
//! [`Page`] read by keyset, newest first, with an opaque [`Cursor`] to the next page.
//!
//! Methods are async on diesel-async; each has a `_blocking` twin on a
//! `diesel::PgConnection` ([`Reader::timeline_blocking`]). Reading needs `SELECT` on the `threadline` tables and `EXECUTE`
//! on `threadline.render_key` and `threadline.row_in_partition`: the installing role has
//! them; grant them to a support role explicitly.
//!
//! ```no_run
//! # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
//! use threadline::read::{Filter, Reader, RowKey};
//!
//! let reader = Reader::new();
//! let posts = "public.posts".parse()?;
//! for change in reader.row_history(conn, &posts, &RowKey::from(42)).await?.entries {
//!     println!("{} {} by {:?}: {:?}", change.captured_at, change.op, change.actor, change.changed_fields);
//! }
//! let page = reader.timeline(conn, &Filter::new().correlation_id("checkout-91")?).await?;
//! if let Some(cursor) = page.next_cursor {
//!     let next = reader.timeline_page(conn, &Filter::new().correlation_id("checkout-91")?, Some(&cursor), 100).await?;
//! }
//! # Ok(()) }
//! ```

mod cursor;
pub(crate) mod exec;
#[cfg(all(test, feature = "testing"))]
mod explain;
pub(crate) mod filter;
mod key;
mod model;
mod page;
mod rows;
mod scope;
pub(crate) mod sql;

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::PgConnection;
use diesel_async::AsyncPgConnection;
use serde_json::Value;

pub use cursor::Cursor;
pub(crate) use exec::{Db, ready};
pub use filter::{ActorFilter, Filter, TableName, parse_time, percent_encode, query_pairs};
pub use key::RowKey;
pub use model::{
    ActionRecord, AsOf, Change, CorrelationBundle, DiffedChange, FieldDiff, FieldValue, Incident, MatchCount, Op, Page,
    TransactionRecord,
};
pub(crate) use page::ChangeQuery;
pub(crate) use rows::{CHANGE_SOURCE, ChangeRow};
pub use scope::{Restriction, Surface};

pub(crate) use cursor::fingerprint;
use rows::{
    ACTION_COLUMNS, ActionRow, CHANGE_COLUMNS, CountRow, ExistsRow, KeyRow, TimeRow, TransactionRow,
    transactions_with_actions,
};
use scope::Scope;
use sql::{Bind, Plan, Sql};

use crate::{Error, telemetry};

/// Entries [`Reader::timeline`] returns before its page ends.
pub const DEFAULT_TIMELINE_LIMIT: usize = 1000;
/// Entries [`Reader::row_history`] returns before its page ends.
pub const DEFAULT_HISTORY_LIMIT: usize = 200;
/// The largest page any read returns.
pub const MAX_PAGE_SIZE: usize = 10_000;
/// The largest cap [`Reader::count_matching`] takes.
pub const MAX_COUNT_CAP: u64 = 1_000_000;
/// The most actions a [`CorrelationBundle`] carries.
pub const MAX_BUNDLE_ACTIONS: usize = 1000;

/// Serializes a time as RFC 3339 in UTC with microseconds, as PostgreSQL stores it.
pub(crate) fn micros<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&rfc3339(at))
}

/// `2026-11-27T09:30:00.123456Z`.
/// [`micros`] for an optional time: the text, or `null`.
pub(crate) fn micros_opt<S: serde::Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => micros(at, serializer),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads the audit trail, optionally under a host scope.
///
/// ```
/// use threadline::read::{Reader, Restriction, Surface};
///
/// let everything = Reader::new();
/// // Support staff of one tenant: every read adds the tenant predicate; rows outside it
/// // read as not found.
/// let acme = Reader::scoped(|_surface: Surface| Restriction::new().tenant("acme"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Reader {
    scope: Scope,
}

impl Reader {
    /// A reader that sees the whole trail.
    pub fn new() -> Self {
        Reader::default()
    }

    /// A reader whose every read first asks `scope` for the [`Restriction`] of that read.
    /// An `Err` from `scope` refuses the read with that error, and so does a restriction with
    /// no condition (return [`Restriction::unrestricted`] to allow every row on purpose): a
    /// scope never falls back to an unscoped read.
    pub fn scoped(scope: impl Fn(Surface) -> Result<Restriction, Error> + Send + Sync + 'static) -> Self {
        Reader {
            scope: Scope(Some(std::sync::Arc::new(scope))),
        }
    }

    /// The newest changes matching `filter`: the first page of
    /// [`DEFAULT_TIMELINE_LIMIT`] entries.
    pub async fn timeline(&self, conn: &mut AsyncPgConnection, filter: &Filter) -> Result<Page<Change>, Error> {
        timeline(
            conn,
            &self.scope,
            filter,
            None,
            DEFAULT_TIMELINE_LIMIT,
            Surface::Timeline,
        )
        .await
    }

    /// One page of changes matching `filter`, ordered `captured_at DESC, id DESC`,
    /// starting after `cursor` (from the page before, made for the same filter).
    pub async fn timeline_page(
        &self,
        conn: &mut AsyncPgConnection,
        filter: &Filter,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Change>, Error> {
        timeline(conn, &self.scope, filter, cursor, page_size, Surface::Timeline).await
    }

    /// How many changes match `filter`, counting no further than `cap` (at most
    /// [`MAX_COUNT_CAP`]): a timeline's "more than 10 000" without scanning millions.
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
    /// use threadline::read::{Filter, Reader};
    ///
    /// let count = Reader::new().count_matching(conn, &Filter::new().table("posts")?, 10_000).await?;
    /// println!("{}{} changes", if count.capped { "more than " } else { "" }, count.count);
    /// # Ok(()) }
    /// ```
    pub async fn count_matching(
        &self,
        conn: &mut AsyncPgConnection,
        filter: &Filter,
        cap: u64,
    ) -> Result<MatchCount, Error> {
        count_matching(conn, &self.scope, filter, cap).await
    }

    /// The newest [`DEFAULT_HISTORY_LIMIT`] changes of one row, newest first.
    /// [`Error::NotFound`] when nothing was captured for it (or the scope hides it).
    pub async fn row_history(
        &self,
        conn: &mut AsyncPgConnection,
        table: &TableName,
        key: &RowKey,
    ) -> Result<Page<Change>, Error> {
        row_history(conn, &self.scope, table, key, None, DEFAULT_HISTORY_LIMIT).await
    }

    /// One page of a row's changes, newest first, after `cursor`.
    pub async fn row_history_page(
        &self,
        conn: &mut AsyncPgConnection,
        table: &TableName,
        key: &RowKey,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Change>, Error> {
        row_history(conn, &self.scope, table, key, cursor, page_size).await
    }

    /// The row as it was at `at` (inclusive, to the microsecond).
    /// [`Error::NotFound`] when nothing was ever captured for it.
    pub async fn as_of(
        &self,
        conn: &mut AsyncPgConnection,
        table: &TableName,
        key: &RowKey,
        at: DateTime<Utc>,
    ) -> Result<AsOf, Error> {
        as_of(conn, &self.scope, table, key, at).await
    }

    /// A transaction (by `audit_transactions.id`), its action, and one page of its
    /// changes in capture order with per-field diffs.
    pub async fn incident_bundle(
        &self,
        conn: &mut AsyncPgConnection,
        transaction_id: i64,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Incident, Error> {
        incident_bundle(conn, &self.scope, transaction_id, cursor, page_size).await
    }

    /// One page of the transactions of an actor (or of every actor of a type), newest
    /// first.
    pub async fn actor_history(
        &self,
        conn: &mut AsyncPgConnection,
        actor: &ActorFilter,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<TransactionRecord>, Error> {
        actor_history(conn, &self.scope, actor, cursor, page_size).await
    }

    /// The actions of a correlation id and one page of its changes, newest first.
    /// [`Error::NotFound`] when the id was never recorded.
    pub async fn correlation_bundle(
        &self,
        conn: &mut AsyncPgConnection,
        correlation_id: &str,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<CorrelationBundle, Error> {
        correlation_bundle(conn, &self.scope, correlation_id, cursor, page_size).await
    }

    pub(crate) fn scope(&self) -> &Scope {
        &self.scope
    }
}

/// The blocking twins of the reads: each runs the async read of its name, without the
/// `_blocking` suffix, on a `diesel::PgConnection`.
impl Reader {
    /// [`Reader::count_matching`] on a blocking connection.
    pub fn count_matching_blocking(
        &self,
        conn: &mut PgConnection,
        filter: &Filter,
        cap: u64,
    ) -> Result<MatchCount, Error> {
        ready(count_matching(conn, &self.scope, filter, cap))
    }

    /// [`Reader::timeline`] on a blocking connection.
    pub fn timeline_blocking(&self, conn: &mut PgConnection, filter: &Filter) -> Result<Page<Change>, Error> {
        ready(timeline(
            conn,
            &self.scope,
            filter,
            None,
            DEFAULT_TIMELINE_LIMIT,
            Surface::Timeline,
        ))
    }

    /// [`Reader::timeline_page`] on a blocking connection.
    pub fn timeline_page_blocking(
        &self,
        conn: &mut PgConnection,
        filter: &Filter,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Change>, Error> {
        ready(timeline(
            conn,
            &self.scope,
            filter,
            cursor,
            page_size,
            Surface::Timeline,
        ))
    }

    /// [`Reader::row_history`] on a blocking connection.
    pub fn row_history_blocking(
        &self,
        conn: &mut PgConnection,
        table: &TableName,
        key: &RowKey,
    ) -> Result<Page<Change>, Error> {
        ready(row_history(conn, &self.scope, table, key, None, DEFAULT_HISTORY_LIMIT))
    }

    /// [`Reader::row_history_page`] on a blocking connection.
    pub fn row_history_page_blocking(
        &self,
        conn: &mut PgConnection,
        table: &TableName,
        key: &RowKey,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Change>, Error> {
        ready(row_history(conn, &self.scope, table, key, cursor, page_size))
    }

    /// [`Reader::as_of`] on a blocking connection.
    pub fn as_of_blocking(
        &self,
        conn: &mut PgConnection,
        table: &TableName,
        key: &RowKey,
        at: DateTime<Utc>,
    ) -> Result<AsOf, Error> {
        ready(as_of(conn, &self.scope, table, key, at))
    }

    /// [`Reader::incident_bundle`] on a blocking connection.
    pub fn incident_bundle_blocking(
        &self,
        conn: &mut PgConnection,
        transaction_id: i64,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Incident, Error> {
        ready(incident_bundle(conn, &self.scope, transaction_id, cursor, page_size))
    }

    /// [`Reader::actor_history`] on a blocking connection.
    pub fn actor_history_blocking(
        &self,
        conn: &mut PgConnection,
        actor: &ActorFilter,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<TransactionRecord>, Error> {
        ready(actor_history(conn, &self.scope, actor, cursor, page_size))
    }

    /// [`Reader::correlation_bundle`] on a blocking connection.
    pub fn correlation_bundle_blocking(
        &self,
        conn: &mut PgConnection,
        correlation_id: &str,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<CorrelationBundle, Error> {
        ready(correlation_bundle(conn, &self.scope, correlation_id, cursor, page_size))
    }
}

/// Checks a page size: 1 to [`MAX_PAGE_SIZE`].
pub(crate) fn check_page_size(page_size: usize) -> Result<(), Error> {
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            "page size",
            format!("{page_size} is not between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(())
}

/// Cuts `rows` (read with one extra) to a page and makes the cursor after its last entry.
fn paginate<R, T>(
    mut rows: Vec<R>,
    page_size: usize,
    position: impl Fn(&R) -> Cursor,
    convert: impl Fn(R) -> Result<T, Error>,
) -> Result<Page<T>, Error> {
    let next_cursor = if rows.len() > page_size {
        rows.truncate(page_size);
        rows.last().map(&position)
    } else {
        None
    };
    Ok(Page {
        entries: rows.into_iter().map(convert).collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// A page of changes after `cursor`, read by `page`: the query of at most `limit` changes
/// strictly before a position, newest first.
pub(crate) async fn change_page<C: Db>(
    conn: &mut C,
    page: impl FnOnce(Option<(DateTime<Utc>, i64)>, usize) -> Sql,
    print: u64,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Page<Change>, Error> {
    check_page_size(page_size)?;
    let after = cursor.map(|c| c.position(print)).transpose()?;
    let rows: Vec<ChangeRow> = conn.load(page(after, page_size + 1)).await?;
    paginate(
        rows,
        page_size,
        |r| Cursor::new(r.captured_at, r.id(), print),
        Change::try_from,
    )
}

/// The cursor fingerprint of a filtered read.
pub(crate) fn filter_print(kind: &str, filter: &Filter) -> u64 {
    fingerprint(&format!("{kind}\u{1e}{}", filter.describe()))
}

async fn timeline<C: Db>(
    conn: &mut C,
    scope: &Scope,
    filter: &Filter,
    cursor: Option<&Cursor>,
    page_size: usize,
    surface: Surface,
) -> Result<Page<Change>, Error> {
    telemetry::read("timeline", async {
        let restriction = scope.restriction(surface)?;
        let query = ChangeQuery {
            columns: CHANGE_COLUMNS,
            filter,
            restriction: &restriction,
        };
        let page = |after, limit| query.newest_first(after, limit);
        change_page(conn, page, filter_print("timeline", filter), cursor, page_size).await
    })
    .await
}

async fn count_matching<C: Db>(conn: &mut C, scope: &Scope, filter: &Filter, cap: u64) -> Result<MatchCount, Error> {
    telemetry::read("count_matching", async {
        if cap == 0 || cap > MAX_COUNT_CAP {
            return Err(Error::invalid(
                "count cap",
                format!("{cap} is not between 1 and {MAX_COUNT_CAP}"),
            ));
        }
        let restriction = scope.restriction(Surface::Timeline)?;
        let query = ChangeQuery {
            columns: "1 AS one",
            filter,
            restriction: &restriction,
        };
        let limit = usize::try_from(cap + 1).unwrap_or(usize::MAX);
        let sql = query
            .newest_first(None, limit)
            .wrapped("SELECT count(*) AS n FROM (", ") AS matching");
        let rows: Vec<CountRow> = conn.load(sql).await?;
        let n = rows.first().map_or(0, |r| u64::try_from(r.n).unwrap_or(0));
        Ok(MatchCount {
            count: n.min(cap),
            capped: n > cap,
        })
    })
    .await
}

/// The `table_pk` capture stored for `key`; [`Error::NotFound`] for a table with no trail.
async fn render_key<C: Db>(conn: &mut C, table: &TableName, key: &RowKey) -> Result<Value, Error> {
    let mut sql = Sql::new("SELECT threadline.render_key(");
    sql.bind(Bind::Text(table.schema().into()))
        .push(", ")
        .bind(Bind::Text(table.name().into()))
        .push(", ")
        .bind(Bind::Jsonb(key.json().clone()))
        .push(") AS key");
    let rows: Vec<KeyRow> = conn.load(sql).await.map_err(|e| e.refused_as("row key"))?;
    rows.into_iter()
        .next()
        .and_then(|r| r.key)
        .ok_or(Error::NotFound { what: "audited table" })
}

/// The change source restricted to one row's changes: found by the hash of its table and
/// key that `audit_changes_row_history_idx` is on (`sql/upgrade/3.sql`; the EXPLAIN tests
/// check the two read alike), then compared exactly, so a collision only costs a row read.
fn row_changes(columns: &str, table: &TableName, pk: &Value, restriction: &Restriction) -> Sql {
    let mut sql = Sql::new(&format!("SELECT {columns}{CHANGE_SOURCE}"));
    sql.push(
        " AND hashtextextended(c.table_schema || '.' || c.table_name, jsonb_hash_extended(c.table_pk, 0)) \
         = hashtextextended(",
    )
    .bind(Bind::Text(table.schema().into()))
    .push(" || '.' || ")
    .bind(Bind::Text(table.name().into()))
    .push(", jsonb_hash_extended(")
    .bind(Bind::Jsonb(pk.clone()))
    .push(", 0))");
    sql.push(" AND c.table_schema = ")
        .bind(Bind::Text(table.schema().into()))
        .push(" AND c.table_name = ")
        .bind(Bind::Text(table.name().into()))
        .push(" AND c.table_pk = ")
        .bind(Bind::Jsonb(pk.clone()));
    restriction.push_party_sql(&mut sql, "t");
    restriction.push_table_sql(&mut sql, "c");
    sql
}

async fn row_history<C: Db>(
    conn: &mut C,
    scope: &Scope,
    table: &TableName,
    key: &RowKey,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Page<Change>, Error> {
    telemetry::read("row_history", async {
        let restriction = scope.restriction(Surface::RowHistory)?;
        check_page_size(page_size)?;
        let pk = render_key(conn, table, key).await?;
        let print = fingerprint(&format!("history\u{1e}{table}\u{1e}{pk}"));
        let page = |after, limit| {
            let mut sql = row_changes(CHANGE_COLUMNS, table, &pk, &restriction);
            sql.newest_first("c.captured_at", "c.id", after, limit);
            sql.planned(Plan::Walk)
        };
        let page = change_page(conn, page, print, cursor, page_size).await?;
        if cursor.is_none() && page.entries.is_empty() {
            return Err(Error::NotFound { what: "row" });
        }
        Ok(page)
    })
    .await
}

async fn as_of<C: Db>(
    conn: &mut C,
    scope: &Scope,
    table: &TableName,
    key: &RowKey,
    at: DateTime<Utc>,
) -> Result<AsOf, Error> {
    telemetry::read("as_of", async {
        let restriction = scope.restriction(Surface::AsOf)?;
        let pk = render_key(conn, table, key).await?;
        let mut sql = row_changes(CHANGE_COLUMNS, table, &pk, &restriction);
        sql.push(" AND c.captured_at <= ").bind(Bind::Timestamp(at));
        sql.newest_first("c.captured_at", "c.id", None, 1);
        let Some(last) = conn
            .load::<ChangeRow>(sql.planned(Plan::Walk))
            .await?
            .into_iter()
            .next()
        else {
            let mut sql = row_changes("true AS found", table, &pk, &restriction);
            sql.push(" LIMIT 1");
            let seen = conn.load::<ExistsRow>(sql).await?.into_iter().any(|r| r.found);
            return if seen {
                Ok(AsOf::BeforeHorizon)
            } else {
                Err(Error::NotFound { what: "row" })
            };
        };
        let change = Change::try_from(last)?;
        if change.op == Op::Delete {
            return Ok(AsOf::Deleted { at: change.captured_at });
        }
        // The first TRUNCATE after the change that removed the row: of the whole table, or of
        // the partition that held it.
        let mut sql = row_changes(
            "c.captured_at AS at",
            table,
            &Value::Object(Default::default()),
            &restriction,
        );
        sql.push(" AND c.op = 'truncate' AND c.captured_at <= ")
            .bind(Bind::Timestamp(at))
            .push(" AND (c.captured_at, c.id) > (")
            .bind(Bind::Timestamp(change.captured_at))
            .push(", ")
            .bind(Bind::BigInt(change.id))
            .push(
                ") AND (c.data IS NULL OR threadline.row_in_partition(c.table_schema, c.table_name, \
                 c.data ->> 'partition', ",
            )
            .bind(Bind::Jsonb(change.data.clone().unwrap_or(Value::Null)))
            .push(") IS NOT FALSE) ORDER BY c.captured_at, c.id LIMIT 1");
        match conn.load::<TimeRow>(sql).await?.into_iter().next() {
            Some(truncate) => Ok(AsOf::Deleted { at: truncate.at }),
            None => Ok(AsOf::Found(Box::new(change))),
        }
    })
    .await
}

async fn incident_bundle<C: Db>(
    conn: &mut C,
    scope: &Scope,
    transaction_id: i64,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Incident, Error> {
    telemetry::read("incident_bundle", async {
        let restriction = scope.restriction(Surface::Incident)?;
        check_page_size(page_size)?;
        let mut sql = transactions_with_actions();
        sql.push(" AND t.id = ").bind(Bind::BigInt(transaction_id));
        restriction.push_transaction_sql(&mut sql);
        let row = conn
            .load::<TransactionRow>(sql)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NotFound { what: "transaction" })?;
        let transaction = TransactionRecord::try_from(row)?;

        let print = fingerprint(&format!("incident\u{1e}{transaction_id}"));
        let mut sql = Sql::new(&format!(
            "SELECT {CHANGE_COLUMNS}{CHANGE_SOURCE} AND c.transaction_id = "
        ));
        sql.bind(Bind::BigInt(transaction_id));
        restriction.push_table_sql(&mut sql, "c");
        if let Some(cursor) = cursor {
            let (at, id) = cursor.position(print)?;
            sql.push(" AND (c.captured_at, c.id) > (")
                .bind(Bind::Timestamp(at))
                .push(", ")
                .bind(Bind::BigInt(id))
                .push(")");
        }
        sql.push(&format!(" ORDER BY c.captured_at, c.id LIMIT {}", page_size + 1));
        let rows: Vec<ChangeRow> = conn.load(sql.planned(Plan::Walk)).await?;
        let changes = paginate(
            rows,
            page_size,
            |r| Cursor::new(r.captured_at, r.id(), print),
            |r| Change::try_from(r).map(DiffedChange::new),
        )?;
        Ok(Incident { transaction, changes })
    })
    .await
}

async fn actor_history<C: Db>(
    conn: &mut C,
    scope: &Scope,
    actor: &ActorFilter,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Page<TransactionRecord>, Error> {
    telemetry::read("actor_history", async {
        let restriction = scope.restriction(Surface::ActorHistory)?;
        check_page_size(page_size)?;
        let print = fingerprint(&format!("actor\u{1e}{actor}"));
        let mut sql = transactions_with_actions();
        sql.push(" AND t.actor IS NOT NULL");
        actor.push_sql(&mut sql, "t.actor");
        restriction.push_transaction_sql(&mut sql);
        let after = cursor.map(|c| c.position(print)).transpose()?;
        sql.newest_first("t.occurred_at", "t.id", after, page_size + 1);
        let rows: Vec<TransactionRow> = conn.load(sql.planned(Plan::Walk)).await?;
        paginate(
            rows,
            page_size,
            |r| Cursor::new(r.occurred_at, r.id(), print),
            TransactionRecord::try_from,
        )
    })
    .await
}

async fn correlation_bundle<C: Db>(
    conn: &mut C,
    scope: &Scope,
    correlation_id: &str,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<CorrelationBundle, Error> {
    telemetry::read("correlation_bundle", async {
        let restriction = scope.restriction(Surface::Correlation)?;
        let filter = Filter::new().correlation_id(correlation_id)?;
        let query = ChangeQuery {
            columns: CHANGE_COLUMNS,
            filter: &filter,
            restriction: &restriction,
        };
        let page = |after, limit| query.newest_first(after, limit);
        let changes = change_page(conn, page, filter_print("correlation", &filter), cursor, page_size).await?;

        let mut sql = Sql::new(&format!(
            "SELECT {ACTION_COLUMNS} FROM threadline.audit_actions a WHERE a.correlation_id = "
        ));
        sql.bind(Bind::Text(correlation_id.trim().into()));
        restriction.push_party_sql(&mut sql, "a");
        if restriction.limits_tables() {
            sql.push(
                " AND EXISTS (SELECT 1 FROM threadline.audit_transactions t \
                 JOIN threadline.audit_changes c ON c.transaction_id = t.id WHERE t.action_id = a.id",
            );
            restriction.push_table_sql(&mut sql, "c");
            sql.push(")");
        }
        sql.push(&format!(
            " ORDER BY a.inserted_at, a.id LIMIT {}",
            MAX_BUNDLE_ACTIONS + 1
        ));
        let mut rows: Vec<ActionRow> = conn.load(sql).await?;
        let actions_truncated = rows.len() > MAX_BUNDLE_ACTIONS;
        rows.truncate(MAX_BUNDLE_ACTIONS);
        let actions = rows
            .into_iter()
            .filter_map(|r| r.into_record().transpose())
            .collect::<Result<Vec<_>, _>>()?;
        if cursor.is_none() && actions.is_empty() && changes.entries.is_empty() {
            return Err(Error::NotFound { what: "correlation id" });
        }
        Ok(CorrelationBundle {
            actions,
            actions_truncated,
            changes,
        })
    })
    .await
}
