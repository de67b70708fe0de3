// A mistake in the annotation is the only error: the accessors are still there (taking
// any key), so the code that reads a row's history does not fail too.
use diesel::prelude::*;
use threadline::Audited;

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
    }
}

#[derive(Queryable, Audited)]
#[audited(maks(email))]
pub struct User {
    pub id: i64,
    pub email: String,
}

async fn read(conn: &mut diesel_async::AsyncPgConnection) -> Result<usize, threadline::Error> {
    let page = User::history(conn, 1).await?;
    let at = User::as_of(conn, 1, chrono::Utc::now()).await;
    let _ = at;
    Ok(page.entries.len())
}

fn blocking(conn: &mut diesel::PgConnection) -> Result<usize, threadline::Error> {
    Ok(User::history_page_blocking(conn, 1, None, 10)?.entries.len())
}

fn main() {
    let _ = (read, blocking);
}
