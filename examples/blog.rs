//! The blog example, capture edition: audits a `posts` table, writes to it through
//! `threadline::transaction` with an actor, request id and action, writes once more with no
//! context (as psql would), and prints the trail.
//!
//! ```sh
//! cargo run --example blog
//! ```
//!
//! With `DATABASE_URL` set it uses that database; without, it starts a private PostgreSQL.
//! The Actix version of this app (HTTP routes, middleware, macros) comes with the Actix
//! integration.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use threadline::{Action, ActorRef, AuditContext, Source};

#[derive(QueryableByName)]
struct TrailRow {
    #[diesel(sql_type = BigInt)]
    transaction_id: i64,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    actor: Option<serde_json::Value>,
    #[diesel(sql_type = Nullable<Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    data: Option<serde_json::Value>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_private, url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let db = threadline::testing::TestDatabase::empty()?;
            println!("No DATABASE_URL: started a private PostgreSQL, database {}", db.name());
            let url = db.url().to_owned();
            (Some(db), url)
        }
    };
    let mut setup = PgConnection::establish(&url)?;
    threadline::schema::install(&mut setup)?;
    setup.batch_execute(
        r#"CREATE TABLE IF NOT EXISTS posts (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               title text NOT NULL,
               author_email text NOT NULL,
               published boolean NOT NULL DEFAULT false);
           SELECT threadline.audit_table('posts', '{"mask": ["author_email"]}');"#,
    )?;

    let mut conn = AsyncPgConnection::establish(&url).await?;
    let ctx = AuditContext::new()
        .with_actor(ActorRef::user("42")?)
        .with_request_id("req-0001")?
        .with_correlation_id("launch-week")?
        .with_source(Source::Request);

    let created = threadline::transaction(
        &mut conn,
        &ctx.clone().with_action(Action::new("post_created")?),
        async |conn| {
            diesel::sql_query("INSERT INTO posts (title, author_email) VALUES ('Hello', 'ada@example.com')")
                .execute(conn)
                .await?;
            Ok::<_, threadline::Error>(())
        },
    )
    .await?;
    println!(
        "post_created: audit transaction {:?}, action {:?}",
        created.transaction_id, created.action_id
    );

    let published = threadline::transaction(
        &mut conn,
        &ctx.with_request_id("req-0002")?
            .with_action(Action::new("post_published")?),
        async |conn| {
            diesel::sql_query("UPDATE posts SET published = true WHERE title = 'Hello'")
                .execute(conn)
                .await?;
            Ok::<_, threadline::Error>(())
        },
    )
    .await?;
    println!("post_published: audit transaction {:?}", published.transaction_id);

    setup.batch_execute("UPDATE posts SET title = 'Hello, world' WHERE title = 'Hello'")?;
    println!("a console write with no context was captured too\n");

    let trail: Vec<TrailRow> = diesel::sql_query(
        "SELECT c.transaction_id, c.op, c.table_pk ->> 'id' AS key, t.actor, t.request_id, a.name AS action, c.data
           FROM threadline.audit_changes c
           JOIN threadline.audit_transactions t ON t.id = c.transaction_id
           LEFT JOIN threadline.audit_actions a ON a.id = t.action_id
          WHERE c.table_name = 'posts'
          ORDER BY c.captured_at, c.id",
    )
    .load(&mut conn)
    .await?;
    println!(
        "{:<4} {:<7} {:<4} {:<30} {:<9} {:<15} data",
        "tx", "op", "id", "actor", "request", "action"
    );
    for row in trail {
        println!(
            "{:<4} {:<7} {:<4} {:<30} {:<9} {:<15} {}",
            row.transaction_id,
            row.op,
            row.key,
            row.actor.map_or("(none)".into(), |a| a.to_string()),
            row.request_id.unwrap_or_else(|| "-".into()),
            row.action.unwrap_or_else(|| "-".into()),
            row.data.map_or(String::new(), |d| d.to_string()),
        );
    }
    Ok(())
}
