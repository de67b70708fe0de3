//! The blog example: an Actix app whose writes are audited, with who did them, in which
//! request, and why.
//!
//! ```sh
//! cargo run --example blog                      # PORT=8080 by default; PORT=0 picks one
//! curl -s -X POST localhost:8080/posts -H 'x-user-id: 1' -H 'content-type: application/json' \
//!      -d '{"title":"Hello","body":"First"}'
//! curl -s localhost:8080/posts/1/history
//! ```
//!
//! With `DATABASE_URL` set it uses that database; without, it starts a private PostgreSQL
//! (Threadline's test helper) that goes away when the example stops. Either way it applies
//! the pending migrations of `migrations/` first. The README's "Walkthrough: the blog
//! example" follows it step by step.
//!
//! `x-user-id` is demo authentication: it names the acting user, unchecked.

mod app;

use std::time::Duration;

use actix_web::HttpServer;
use threadline::jobs::ExportWorker;
use threadline::testing::TestDatabase;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (_private, url) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => (None, url),
        _ => {
            let db = TestDatabase::empty()?;
            eprintln!("No DATABASE_URL: started a private PostgreSQL; it goes away when the example stops.");
            eprintln!("Its database: {}", db.url());
            let url = db.url().to_owned();
            (Some(db), url)
        }
    };
    let applied = app::run_migrations(&url)?;
    if applied.is_empty() {
        eprintln!("Migrations: all applied already");
    } else {
        eprintln!("Migrations: applied {}", applied.join(", "));
    }
    // DATABASE_POOLER=transaction: the URL reaches PgBouncer (or a pooler like it) in
    // transaction mode.
    let pool = match std::env::var("DATABASE_POOLER").as_deref() {
        Ok("transaction") => app::pool_behind_transaction_pooler(&url).await?,
        Ok(other) if !other.is_empty() => {
            return Err(format!("DATABASE_POOLER must be \"transaction\" or unset, not {other:?}").into());
        }
        _ => app::pool(&url).await?,
    };
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 8080,
    };
    // Bound first, so the line names the address in use: with `PORT=0`, the port the system
    // picked.
    // The audit pages' export queue and the worker that runs it.
    let jobs = app::export_jobs(&std::env::temp_dir().join("threadline-blog-exports"))?;
    let worker = ExportWorker::start(pool.clone(), jobs.clone(), "blog", Duration::from_secs(1));
    let surface = app::audit_surface(pool.clone(), jobs);
    let server = HttpServer::new(move || app::app_with(pool.clone(), surface.clone())).bind(("127.0.0.1", port))?;
    let address = server.addrs().first().copied().ok_or("bound to no address")?;
    eprintln!("Blog listening on http://{address} (demo auth: header x-user-id: 1, 2 or 3)");
    eprintln!("Audit pages: http://{address}/demo/sign-in?user=1 (demo operator: user 1)");
    server.run().await?;
    worker.stop().await;
    Ok(())
}
