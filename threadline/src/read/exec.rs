//! One implementation of every read for both connection kinds: reads are written once as
//! async code over [`Db`]; on a blocking `PgConnection` that code never waits, so its
//! future completes on the first poll.
//!
//! A query with a [`Plan`](super::sql::Plan) runs in a transaction of its own (a
//! savepoint when the caller is in one) that sets the plan's settings and is rolled back
//! after the rows are read: `SET LOCAL` lasts until that rollback, never longer. A read
//! cancelled on the way leaves the connection in the transaction, which the pool then
//! discards as broken.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::Pg;
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

impl Db for AsyncPgConnection {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        type Manager = diesel_async::AnsiTransactionManager;
        let settings = sql.plan().settings();
        let query = sql.into_query();
        let Some(settings) = settings else {
            return Ok(diesel_async::RunQueryDsl::load::<R>(query, self).await?);
        };
        <Manager as diesel_async::TransactionManager<_>>::begin_transaction(self).await?;
        let rows = match self.batch_execute(settings).await {
            Ok(()) => diesel_async::RunQueryDsl::load::<R>(query, self).await,
            Err(error) => Err(error),
        };
        let ended = <Manager as diesel_async::TransactionManager<_>>::rollback_transaction(self).await;
        Ok(read_then_ended(rows, ended)?)
    }
}

impl Db for PgConnection {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        let settings = sql.plan().settings();
        let query = sql.into_query();
        Ok(planned(self, settings, |conn| {
            diesel::RunQueryDsl::load::<R>(query, conn)
        })?)
    }
}

/// Runs `read` on `conn` under `settings` (in a transaction rolled back after it), or as
/// it is when there are none.
pub(crate) fn planned<T>(
    conn: &mut PgConnection,
    settings: Option<&str>,
    read: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    let Some(settings) = settings else {
        return read(conn);
    };
    AnsiTransactionManager::begin_transaction(conn)?;
    let rows = conn.batch_execute(settings).and_then(|()| read(conn));
    let ended = AnsiTransactionManager::rollback_transaction(conn);
    read_then_ended(rows, ended)
}

/// The rows of a read, or its error, or else the error of ending its transaction.
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
