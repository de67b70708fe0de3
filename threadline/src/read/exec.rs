//! One implementation of every read for both connection kinds: reads are written once as
//! async code over [`Db`]; on a blocking `PgConnection` that code never waits, so its
//! future completes on the first poll.
//!
//! Every statement runs in a transaction of its own (a savepoint when the caller is in
//! one) that sets its [`Plan`](super::sql::Plan)'s settings, the pinned `search_path`
//! among them: `SET LOCAL` lasts until that transaction ends, never longer. A read is
//! rolled back after its rows are read. A write is committed (its savepoint released),
//! after which the caller's `search_path` is put back, since a released savepoint keeps
//! its settings for the rest of the caller's transaction. A statement cancelled on the
//! way leaves the connection in the transaction, which the pool then discards as broken.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel::{PgConnection, QueryResult, QueryableByName};
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};

use super::sql::Sql;
use crate::Error;

/// A connection reads can run on.
pub(crate) trait Db {
    /// Runs `sql` and returns every row.
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static;
}

/// The session's `search_path`, read through names no role but a superuser can shadow.
const CALLER_PATH: &str = "SELECT pg_catalog.current_setting('search_path') AS path";
/// Puts a `search_path` back for the rest of the caller's transaction; outside of one it
/// changes nothing.
const RESTORE_PATH: &str = "SELECT pg_catalog.set_config('search_path', $1, true) AS path";

#[derive(QueryableByName)]
struct PathRow {
    #[diesel(sql_type = Text)]
    path: String,
}

impl Db for AsyncPgConnection {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        use diesel_async::RunQueryDsl;
        type Manager = diesel_async::AnsiTransactionManager;
        let (settings, writes) = (sql.plan().settings(), sql.writes());
        let query = sql.into_query();
        let caller_path = match writes {
            true => Some(diesel::sql_query(CALLER_PATH).get_result::<PathRow>(self).await?.path),
            false => None,
        };
        <Manager as diesel_async::TransactionManager<_>>::begin_transaction(self).await?;
        let rows = match self.batch_execute(settings).await {
            Ok(()) => query.load::<R>(self).await,
            Err(error) => Err(error),
        };
        let ended = match writes && rows.is_ok() {
            true => <Manager as diesel_async::TransactionManager<_>>::commit_transaction(self).await,
            false => <Manager as diesel_async::TransactionManager<_>>::rollback_transaction(self).await,
        };
        let rows = read_then_ended(rows, ended)?;
        if let Some(path) = caller_path {
            // The write is committed, so it is reported as done whatever this returns; a
            // caller's transaction left with the pinned path fails closed.
            let _ = diesel::sql_query(RESTORE_PATH)
                .bind::<Text, _>(path)
                .execute(self)
                .await;
        }
        Ok(rows)
    }
}

impl Db for PgConnection {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        let (settings, writes) = (sql.plan().settings(), sql.writes());
        let query = sql.into_query();
        Ok(guarded(self, settings, writes, |conn| {
            diesel::RunQueryDsl::load::<R>(query, conn)
        })?)
    }
}

/// Runs `statement` on `conn` under `settings`, in a transaction that is committed when
/// it `writes` and succeeded, rolled back otherwise.
fn guarded<T>(
    conn: &mut PgConnection,
    settings: &str,
    writes: bool,
    statement: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::RunQueryDsl;
    let caller_path = match writes {
        true => Some(diesel::sql_query(CALLER_PATH).get_result::<PathRow>(conn)?.path),
        false => None,
    };
    AnsiTransactionManager::begin_transaction(conn)?;
    let rows = conn.batch_execute(settings).and_then(|()| statement(conn));
    let ended = match writes && rows.is_ok() {
        true => AnsiTransactionManager::commit_transaction(conn),
        false => AnsiTransactionManager::rollback_transaction(conn),
    };
    let rows = read_then_ended(rows, ended)?;
    if let Some(path) = caller_path {
        // As for the async twin: the write is done whatever this returns.
        let _ = diesel::sql_query(RESTORE_PATH).bind::<Text, _>(path).execute(conn);
    }
    Ok(rows)
}

/// The rows of a statement, or its error, or else the error of ending its transaction.
fn read_then_ended<T>(rows: QueryResult<T>, ended: QueryResult<()>) -> QueryResult<T> {
    rows.and_then(|rows| ended.map(|()| rows))
}

/// Runs a read on a blocking connection: its future is ready on the first poll.
pub(crate) fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("a read on a blocking connection never waits"),
    }
}
