//! One implementation of every read for both connection kinds: reads are written once as
//! async code over [`Db`]; on a blocking `PgConnection` that code never waits, so its
//! future completes on the first poll.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use diesel::PgConnection;
use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel_async::AsyncPgConnection;

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
        let query = sql.into_query();
        Ok(diesel_async::RunQueryDsl::load::<R>(query, self).await?)
    }
}

impl Db for PgConnection {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        let query = sql.into_query();
        Ok(diesel::RunQueryDsl::load::<R>(query, self)?)
    }
}

/// Runs a read on a blocking connection: its future is ready on the first poll.
pub(crate) fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("a read on a blocking connection never waits"),
    }
}
