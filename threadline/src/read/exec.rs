//! One implementation of every read for both connection kinds: reads are written once as
//! async code over [`Db`]; on a blocking `PgConnection` that code never waits, so its
//! future completes on the first poll.
//!
//! Every statement runs in a transaction of its own (a savepoint when the caller is in
//! one) that sets its [`Plan`](super::sql::Plan)'s settings, the pinned `search_path`
//! among them: `SET LOCAL` lasts until that transaction ends, never longer. A read is
//! rolled back after its rows are read. A write is committed (its savepoint released); in
//! the caller's transaction the caller's `search_path` is then put back, since a released
//! savepoint keeps its settings for the rest of that transaction. Outside of one, a
//! statement costs two round trips more than it would alone: `BEGIN` with the settings,
//! and the end. A statement cancelled on the way leaves the connection in the transaction,
//! which the pool then discards as broken.

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
        use diesel_async::TransactionManager as _;
        type Manager = diesel_async::AnsiTransactionManager;
        let (settings, writes) = (sql.plan().settings(), sql.writes());
        let query = sql.into_query();
        // Outside the caller's transaction, one round trip begins ours and sets it up.
        let caller_path = match Manager::begin_transaction_sql(self, &format!("BEGIN; {settings}")).await {
            Ok(()) => None,
            Err(diesel::result::Error::AlreadyInTransaction) => {
                let path = match writes {
                    true => Some(diesel::sql_query(CALLER_PATH).get_result::<PathRow>(self).await?.path),
                    false => None,
                };
                Manager::begin_transaction(self).await?;
                if let Err(error) = self.batch_execute(settings).await {
                    let _ = Manager::rollback_transaction(self).await;
                    return Err(error.into());
                }
                path
            }
            Err(error) => {
                // BEGIN may have run before the settings failed: leave no transaction
                // behind that diesel does not know of.
                let _ = self.batch_execute("ROLLBACK").await;
                return Err(error.into());
            }
        };
        let rows = query.load::<R>(self).await;
        let ended = match writes && rows.is_ok() {
            true => Manager::commit_transaction(self).await,
            false => Manager::rollback_transaction(self).await,
        };
        let rows = read_then_ended(rows, ended)?;
        if let Some(path) = caller_path {
            // The caller's transaction commits the write later; if the path cannot be put
            // back, that transaction is aborted, and the caller must hear of it.
            diesel::sql_query(RESTORE_PATH)
                .bind::<Text, _>(path)
                .execute(self)
                .await?;
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
/// it `writes` and succeeded, rolled back otherwise: the blocking twin of the async
/// `load`, step for step.
fn guarded<T>(
    conn: &mut PgConnection,
    settings: &str,
    writes: bool,
    statement: impl FnOnce(&mut PgConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::RunQueryDsl;
    let caller_path = match AnsiTransactionManager::begin_transaction_sql(conn, &format!("BEGIN; {settings}")) {
        Ok(()) => None,
        Err(diesel::result::Error::AlreadyInTransaction) => {
            let path = match writes {
                true => Some(diesel::sql_query(CALLER_PATH).get_result::<PathRow>(conn)?.path),
                false => None,
            };
            AnsiTransactionManager::begin_transaction(conn)?;
            if let Err(error) = conn.batch_execute(settings) {
                let _ = AnsiTransactionManager::rollback_transaction(conn);
                return Err(error);
            }
            path
        }
        Err(error) => {
            // As for the async twin: no transaction left behind that diesel does not know of.
            let _ = conn.batch_execute("ROLLBACK");
            return Err(error);
        }
    };
    let rows = statement(conn);
    let ended = match writes && rows.is_ok() {
        true => AnsiTransactionManager::commit_transaction(conn),
        false => AnsiTransactionManager::rollback_transaction(conn),
    };
    let rows = read_then_ended(rows, ended)?;
    if let Some(path) = caller_path {
        // As for the async twin: the caller's transaction must hear of a failure here.
        diesel::sql_query(RESTORE_PATH).bind::<Text, _>(path).execute(conn)?;
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
