//! Pages benchmark: the `/audit` pages against the read calls behind them, at a large trail.
//!
//! ```text
//! cargo bench -p threadline-web --bench pages
//! THREADLINE_BENCH_PAGES_ROWS=100000 cargo bench -p threadline-web --bench pages
//! ```
//!
//! One trail of `THREADLINE_BENCH_PAGES_ROWS` changes (default 1 000 000) is written through
//! the capture triggers: `bench_posts` rows inserted, then updated 4 times, in transactions
//! of `THREADLINE_BENCH_PAGES_BATCH` rows (default 10 000).
//!
//! Prints one JSON object per line and scenario. Nothing asserts on time: `target_met` says
//! whether the figure meets its target.
//!
//! - `timeline`, `transaction`, `row_history`: the median server time of a page (the
//!   request through actix's service, rendering included, socket excluded) against the
//!   median of the read call that backs it (`Reader::timeline_page` of 50 entries;
//!   `incident_bundle` of 100 changes; `row_history_page` of 50), each of
//!   `THREADLINE_BENCH_PAGES_LOOKUPS` runs (default 50), alternating. Target: ratio <= 1.5.
//!   The timeline page also counts the matches (capped at 10 000): its `read_ms` is
//!   `count_matching` and `timeline_page` one after the other, the two calls the page makes,
//!   and `page_read_ms` / `page_read_ratio` compare with `timeline_page` alone.
//! - `http_export`: the whole trail as CSV over a real socket (read and dropped by a client
//!   thread), in rows per second, against `psql -c "COPY (<the export's query>) TO STDOUT
//!   (FORMAT csv)"`; target ratio >= 0.5. And the server process's peak resident memory
//!   added during the export (`VmHWM` after a reset through `/proc/self/clear_refs`);
//!   target < 64 MiB.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpServer, web};
use diesel::connection::SimpleConnection;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use serde_json::json;
use threadline::ActorRef;
use threadline::read::{Filter, Reader, Restriction, RowKey, TableName};
use threadline::testing::TestDatabase;
use threadline_web::{AuditSurface, Operator};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `rows` changes: inserts of `rows / 5` posts, then 4 rounds of updates.
fn load(db: &TestDatabase, rows: u64, batch: u64) {
    let mut conn = db.connect().expect("connect");
    conn.batch_execute(
        "CREATE TABLE bench_posts (id bigint PRIMARY KEY, title text NOT NULL, n int NOT NULL);
         SELECT threadline.audit_table('bench_posts');",
    )
    .expect("schema");
    let keys = (rows / 5).max(1);
    let mut start = 1;
    while start <= keys {
        let end = (start + batch - 1).min(keys);
        conn.batch_execute(&format!(
            "SELECT threadline.begin_audit('{{\"actor\": {{\"type\": \"user\", \"id\": \"7\"}}, \"correlation_id\": \"load\"}}');
             INSERT INTO bench_posts SELECT g, 'post ' || g, 0 FROM generate_series({start}, {end}) g"
        ))
        .expect("insert");
        start = end + 1;
    }
    for round in 1..=4 {
        let mut start = 1;
        while start <= keys {
            let end = (start + batch - 1).min(keys);
            conn.batch_execute(&format!(
                "UPDATE bench_posts SET n = {round}, title = title || '.' WHERE id BETWEEN {start} AND {end}"
            ))
            .expect("update");
            start = end + 1;
        }
    }
    conn.batch_execute("ANALYZE").expect("analyze");
}

fn psql() -> PathBuf {
    threadline::testing::server_bindir()
        .map(|bin| bin.join("psql"))
        .ok()
        .filter(|psql| psql.exists())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

fn surface(pool: Pool<AsyncPgConnection>) -> AuditSurface {
    let operator = Operator::new(ActorRef::admin("bench").expect("actor"), Restriction::unrestricted()).grant_all();
    AuditSurface::builder(pool)
        .unauthenticated_i_accept_the_risk(operator)
        .export_row_cap(u64::MAX)
        .build()
}

#[actix_web::main]
async fn main() {
    let rows = env_number("THREADLINE_BENCH_PAGES_ROWS", 1_000_000);
    let batch = env_number("THREADLINE_BENCH_PAGES_BATCH", 10_000).max(1);
    let lookups = env_number("THREADLINE_BENCH_PAGES_LOOKUPS", 50).max(1);
    let db = TestDatabase::new().expect("test database");
    let started = Instant::now();
    load(&db, rows, batch);
    eprintln!("loaded {rows} changes in {:.1} s", started.elapsed().as_secs_f64());
    let pool = Pool::builder()
        .max_size(4)
        .build(AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url()))
        .await
        .expect("pool");
    let service = {
        let surface = surface(pool.clone());
        test::init_service(App::new().service(web::scope("/audit").configure(move |cfg| surface.configure(cfg)))).await
    };
    let reader = Reader::new();
    let table: TableName = "public.bench_posts".parse().expect("table");
    let middle_transaction = {
        let mut conn = pool.get().await.expect("conn");
        let page = reader
            .timeline_page(&mut conn, &Filter::new(), None, 1)
            .await
            .expect("timeline");
        page.entries[0].transaction_id
    };
    let keys = (rows / 5).max(1);
    let scenarios: [(&str, String); 3] = [
        ("timeline", "/audit/timeline?table=public.bench_posts".into()),
        ("transaction", format!("/audit/transactions/{middle_transaction}")),
        (
            "row_history",
            format!("/audit/rows?table=public.bench_posts&key={}", keys / 2),
        ),
    ];
    for (name, uri) in scenarios {
        let (mut page_ms, mut read_ms, mut page_read_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..lookups {
            let start = Instant::now();
            let resp = service
                .call(TestRequest::get().uri(&uri).to_request())
                .await
                .expect("page");
            assert!(resp.status().is_success(), "{uri}: {}", resp.status());
            let _ = test::read_body(resp).await;
            page_ms.push(ms_since(start));
            let mut conn = pool.get().await.expect("conn");
            let start = Instant::now();
            match name {
                "timeline" => {
                    let filter = Filter::new().table("public.bench_posts").expect("filter");
                    let page_start = Instant::now();
                    let page = reader
                        .timeline_page(&mut conn, &filter, None, threadline_web::TIMELINE_PAGE_SIZE)
                        .await;
                    page_read_ms.push(ms_since(page_start));
                    match page {
                        Ok(_) => reader
                            .count_matching(&mut conn, &filter, threadline_web::COUNT_CAP)
                            .await
                            .map(|_| ()),
                        Err(e) => Err(e),
                    }
                }
                "transaction" => reader
                    .incident_bundle(&mut conn, middle_transaction, None, 100)
                    .await
                    .map(|_| ()),
                _ => reader
                    .row_history_page(&mut conn, &table, &RowKey::from((keys / 2) as i64), None, 50)
                    .await
                    .map(|_| ()),
            }
            .expect("read");
            read_ms.push(ms_since(start));
        }
        let (page, read) = (median(page_ms), median(read_ms));
        let ratio = page / read;
        let mut line = json!({"scenario": name, "rows": rows, "page_ms": page, "read_ms": read, "ratio": ratio, "target": "<= 1.5", "target_met": ratio <= 1.5});
        if !page_read_ms.is_empty() {
            let page_read = median(page_read_ms);
            line["page_read_ms"] = json!(page_read);
            line["page_read_ratio"] = json!(page / page_read);
        }
        println!("{line}");
    }

    // The whole trail over a socket, against COPY.
    let surface = surface(pool.clone());
    let server = HttpServer::new(move || {
        let surface = surface.clone();
        App::new().service(web::scope("/audit").configure(move |cfg| surface.configure(cfg)))
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bind");
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let rss_before = status_kib("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    let client = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        write!(
            stream,
            "GET /audit/export?format=csv HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut buffer = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break total,
                Ok(n) => total += n as u64,
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    let bytes = web::block(move || client.join().expect("client")).await.expect("join");
    let http_ms = ms_since(start);
    let hwm = status_kib("VmHWM");
    handle.stop(true).await;
    let copy_start = Instant::now();
    let status = Command::new(psql())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db.url(), "-c"])
        .arg(format!(
            "COPY ({}) TO STDOUT (FORMAT csv)",
            threadline::export::unfiltered_query()
        ))
        .stdout(Stdio::null())
        .status()
        .expect("psql");
    assert!(status.success(), "COPY failed");
    let copy_ms = ms_since(copy_start);
    let ratio = copy_ms / http_ms;
    let added_mib = hwm.saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "{}",
        json!({"scenario": "http_export", "rows": rows, "bytes": bytes, "http_rows_per_s": rows as f64 / http_ms * 1000.0,
               "copy_rows_per_s": rows as f64 / copy_ms * 1000.0, "ratio": ratio, "target": ">= 0.5", "target_met": ratio >= 0.5,
               "added_mib": added_mib, "memory_reset": reset, "memory_target_met": added_mib < 64.0})
    );
}
