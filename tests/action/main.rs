//! `#[audited_action]` on real PostgreSQL: plain async fns and Actix handlers run as one
//! audited transaction that records the named action.

#[path = "../support/mod.rs"]
mod support;

mod handlers;
mod plain;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use threadline::testing::TestDatabase;

/// The audited table every action test writes to.
const SCHEMA: &str = "CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL);
                      SELECT threadline.audit_table('posts');";

/// The pool type the annotated fns take.
type DbPool = Pool<AsyncPgConnection>;

/// A fresh database with [`SCHEMA`], a blocking connection to read the trail, and a pool
/// of at most one connection (so every action reuses the same one).
async fn setup() -> (TestDatabase, diesel::PgConnection, DbPool) {
    let (db, mut admin) = support::setup();
    support::exec(&mut admin, SCHEMA);
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
    let pool = Pool::builder().max_size(1).build(manager).await.expect("pool");
    (db, admin, pool)
}

/// The titles of the posts table, by id.
fn titles(conn: &mut diesel::PgConnection) -> Vec<String> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Title {
        #[diesel(sql_type = diesel::sql_types::Text)]
        title: String,
    }
    diesel::sql_query("SELECT title FROM posts ORDER BY id")
        .load::<Title>(conn)
        .expect("read posts")
        .into_iter()
        .map(|t| t.title)
        .collect()
}
