//! Lifecycle benchmark: a purge of a large trail while the app writes, and a background
//! export job against the direct export.
//!
//! ```text
//! cargo bench -p threadline --bench lifecycle --features testing,jobs
//! THREADLINE_BENCH_LIFECYCLE_ROWS=100000 cargo bench -p threadline --bench lifecycle --features testing,jobs
//! ```
//!
//! Writes `THREADLINE_BENCH_LIFECYCLE_ROWS` changes (default 1000000) through the capture
//! triggers, 100 000 per statement, into `bench_posts`. Prints one JSON object per line:
//!
//! - `background_export`: the trail exported as CSV, directly (`write_to` into a sink)
//!   and as an export job (`run_once` onto the local store), in rows per second;
//!   `ratio` is job / direct, target >= 0.5; `added_mib` is the peak resident memory the
//!   job added (`VmHWM` after `/proc/self/clear_refs`), target < 64.
//! - `purge`: `Purge::execute` of every seeded change (the cutoff is the end of the
//!   seeding) with the default batches and pause, in changes per second; meanwhile one connection runs single-row updates of an audited
//!   table in a loop, and `tps_ratio` is its rate during the purge over its rate before,
//!   target >= 0.5.
//! - `partition_drop`: the same purge of every seeded change, without a pause or a
//!   writer, on a store partitioned by day (the changes' partition dropped whole) and on
//!   one table (deleted in batches), each seeded alike in a database of its own; `ratio` is
//!   the batched time over the dropping time, target >= 100.
//!
//! Nothing asserts on time: `target_met` says whether the figure meets the target. The
//! database is `DATABASE_URL`'s server, or a private one as in `threadline::testing`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use threadline::export::{ExportOptions, Format};
use threadline::jobs::ExportJobs;
use threadline::read::{Filter, Reader};
use threadline::retention::{Purge, RetentionPolicy};
use threadline::testing::TestDatabase;

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A `kB` figure of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Single-row updates on a connection of its own until `stop`, counting them.
fn writer(url: String, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conn = PgConnection::establish(&url).expect("connect");
        while !stop.load(Ordering::Relaxed) {
            conn.batch_execute("UPDATE bench_counter SET n = n + 1 WHERE id = 1")
                .expect("update");
            count.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Updates per second over `run`, measured by a writer running alongside.
fn tps_during(url: &str, run: impl FnOnce()) -> (f64, Duration) {
    let (stop, count) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let handle = writer(url.to_owned(), stop.clone(), count.clone());
    let started = Instant::now();
    run();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    handle.join().expect("the writer");
    (count.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(), elapsed)
}

/// Writes `rows` changes of `bench_posts` through the capture triggers, 100 000 per
/// statement, then vacuums and analyzes the trail.
fn seed(conn: &mut PgConnection, rows: u64) {
    let mut written = 0;
    while written < rows {
        let n = (rows - written).min(100_000);
        conn.batch_execute(&format!(
            "INSERT INTO bench_posts SELECT g, 'title ' || g, repeat('body ', 8) FROM generate_series({}, {}) g",
            written + 1,
            written + n
        ))
        .expect("seed");
        written += n;
    }
    conn.batch_execute("VACUUM ANALYZE threadline.audit_changes, threadline.audit_transactions")
        .expect("analyze");
}

/// Seeds `rows` changes into a new database, partitioned by day when `partitioned`, and
/// times the purge of all of them.
fn timed_purge(rows: u64, partitioned: bool) -> (Duration, threadline::retention::RetentionRun) {
    let db = TestDatabase::empty().expect("test database");
    let mut conn = db.connect().expect("connect");
    threadline::migrations::install(&mut conn).expect("install");
    if partitioned {
        threadline::partitions::convert_blocking(&mut conn, threadline::partitions::Period::Day).expect("convert");
    }
    conn.batch_execute(
        "CREATE TABLE bench_posts (id bigint PRIMARY KEY, title text, body text);
         SELECT threadline.audit_table('bench_posts');",
    )
    .expect("tables");
    seed(&mut conn, rows);
    // Past the end of the seeded day's partition and of the two created ahead of it.
    let purge = Purge::new(RetentionPolicy::keep_days(1).expect("policy"))
        .as_of(Utc::now() + TimeDelta::days(4))
        .pause(Duration::ZERO);
    let started = Instant::now();
    let run = purge.execute_blocking(&mut conn, |_| {}).expect("purge").run;
    (started.elapsed(), run)
}

fn main() {
    let rows: u64 = std::env::var("THREADLINE_BENCH_LIFECYCLE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let db = TestDatabase::new().expect("test database");
    let mut conn = db.connect().expect("connect");
    conn.batch_execute(
        "CREATE TABLE bench_posts (id bigint PRIMARY KEY, title text, body text);
         CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO bench_counter VALUES (1, 0);
         SELECT threadline.audit_table('bench_posts'); SELECT threadline.audit_table('bench_counter');",
    )
    .expect("tables");
    seed(&mut conn, rows);
    // The cutoff: everything seeded goes, nothing the app writes during the benchmark.
    let seeded = Utc::now();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(db.url()).await.expect("connect");
        let filter = Filter::new().table("bench_posts").expect("filter");
        let started = Instant::now();
        let mut sink = std::io::sink();
        let direct = Reader::new()
            .export(&filter, ExportOptions::new(Format::Csv))
            .expect("export")
            .write_to(&mut conn, &mut sink, |_| {})
            .await
            .expect("direct export");
        let direct_rate = direct.rows as f64 / started.elapsed().as_secs_f64();
        let dir = std::env::temp_dir().join(format!("threadline-bench-jobs-{}", std::process::id()));
        let jobs = ExportJobs::local(&dir).expect("store");
        let owner = threadline::ActorRef::admin("bench").expect("actor");
        jobs.submit(&mut conn, &owner, &filter, Format::Csv, None)
            .await
            .expect("submit");
        let rss_before = status_kib("VmRSS");
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let started = Instant::now();
        let job = jobs.run_once(&mut conn, "bench").await.expect("run").expect("a job");
        let job_rate = job.rows_written as f64 / started.elapsed().as_secs_f64();
        let added_mib = status_kib("VmHWM").saturating_sub(rss_before) as f64 / 1024.0;
        let _ = std::fs::remove_dir_all(&dir);
        let ratio = job_rate / direct_rate;
        println!(
            "{}",
            json!({"scenario": "background_export", "rows": job.rows_written, "direct_rows_per_s": direct_rate.round(),
                   "job_rows_per_s": job_rate.round(), "ratio": round(ratio), "added_mib": round(added_mib),
                   "peak_reset": reset, "target": "ratio >= 0.5, added_mib < 64",
                   "target_met": ratio >= 0.5 && added_mib < 64.0})
        );
    });

    let (baseline, _) = tps_during(db.url(), || std::thread::sleep(Duration::from_secs(5)));
    let purge = Purge::new(RetentionPolicy::keep_days(1).expect("policy")).as_of(seeded + TimeDelta::days(1));
    let mut outcome = None;
    let (during, elapsed) = tps_during(db.url(), || {
        outcome = Some(purge.execute_blocking(&mut conn, |_| {}).expect("purge"));
    });
    let run = outcome.expect("the purge ran").run;
    let ratio = during / baseline;
    println!(
        "{}",
        json!({"scenario": "purge", "changes_deleted": run.changes_deleted, "batches": run.batches,
               "purge_rows_per_s": (run.changes_deleted as f64 / elapsed.as_secs_f64()).round(),
               "tps_before": baseline.round(), "tps_during": during.round(), "tps_ratio": round(ratio),
               "target": "tps_ratio >= 0.5", "target_met": ratio >= 0.5})
    );

    let (batched, deleted) = timed_purge(rows, false);
    let (dropped, drop_run) = timed_purge(rows, true);
    let ratio = batched.as_secs_f64() / dropped.as_secs_f64();
    println!(
        "{}",
        json!({"scenario": "partition_drop", "changes": drop_run.changes_deleted,
               "batched_ms": round(batched.as_secs_f64() * 1000.0), "batches": deleted.batches,
               "dropped_ms": round(dropped.as_secs_f64() * 1000.0), "partitions_dropped": drop_run.partitions_dropped,
               "counts_equal": deleted.changes_deleted == drop_run.changes_deleted
                   && deleted.transactions_deleted == drop_run.transactions_deleted,
               "ratio": round(ratio), "target": "ratio >= 100", "target_met": ratio >= 100.0})
    );
}
