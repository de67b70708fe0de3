//! Read benchmark: whether reads stay flat as the audit trail grows.
//!
//! ```text
//! cargo bench -p threadline --bench read --features testing,parquet
//! THREADLINE_BENCH_READ_ROWS=50000 cargo bench -p threadline --bench read --features testing,parquet
//! ```
//!
//! Two trails are written through the real capture triggers, each into its own database:
//! a small one of `THREADLINE_BENCH_READ_SMALL_ROWS` audit rows (default 10000) and a
//! large one of `THREADLINE_BENCH_READ_ROWS` (default 1000000). Each trail audits
//! `bench_posts` (90% of the keys) and `bench_comments` (10%); every key is inserted and
//! then updated 4 times, one round after another, so a key's 5 changes are spread over
//! the whole history. Writes run `THREADLINE_BENCH_READ_BATCH` posts (default 100) per
//! database transaction; every third transaction carries an actor, a request id and a
//! correlation id from `threadline.begin_audit`, every sixth an action as well.
//!
//! Prints one JSON object per line and scenario. Latencies are medians (with p90) of
//! `THREADLINE_BENCH_READ_LOOKUPS` reads (default 200), the two sides of a ratio
//! alternating so that noise on a shared machine hits both. Nothing asserts on time:
//! `target_met` says whether the figure meets the target in `target`.
//!
//! - `row_history`: `row_history` (first page) of a random-ish `bench_posts` key (each
//!   lookup a different key), on the small trail (`small_ms`) and on the large one
//!   (`large_ms`); `ratio` is large / small, target <= 1.5. A read is the whole call,
//!   `threadline.render_key` round trip included.
//! - `as_of`: `as_of` of such a key at the time of its middle change; same figures.
//! - `timeline_page`: a 100-entry timeline page with no filter, the first page
//!   (`first_ms`) and one 90% of the way down the large trail (`deep_ms`, from a cursor
//!   reached by paging); `ratio` is deep / first, target <= 1.5.
//! - `timeline_page_table`: the same with a filter on `bench_comments` (10% of the rows).
//! - `export`, one line per format (`csv`, `ndjson`): a full export of the large trail
//!   with `write_to_blocking` into `std::io::sink()`, in rows per second, against
//!   `psql -c "COPY (<the export's query>) TO STDOUT (FORMAT csv)"` into `/dev/null`:
//!   the same columns and joins in the same order, in one statement instead of keyset
//!   pages (the psql process timed from start to exit); median of
//!   `THREADLINE_BENCH_READ_REPEAT` runs (default 3). `ratio` is export / COPY rows per
//!   second, target >= 0.5.
//! - `export` of `parquet`: the same, as a Parquet folder written to a temporary folder
//!   (removed after each run); `csv_ratio` is its rows per second over the CSV export's,
//!   target >= 1.
//! - `export_unanalyzed`: a CSV export of one statement of
//!   `THREADLINE_BENCH_READ_STATEMENT_ROWS` changes (default 300000), read right after the
//!   statement commits, with autovacuum off on the audit tables so that none has
//!   statistics (`analyzed` says so at the end), against `COPY` of the same rows; the
//!   median of `THREADLINE_BENCH_READ_REPEAT` runs of each, target `ratio` >= 0.5.
//! - `export_memory`, one line per format (`parquet` too): the peak resident memory a full export of the
//!   large trail adds, measured in a fresh child process of this benchmark (so earlier
//!   scenarios' heap does not hide it): `VmRSS` before, the peak reset through
//!   `/proc/self/clear_refs`, `VmHWM` after; target `added_mib` < 64.
//!
//! The database is `DATABASE_URL`'s server, or a private one as in `threadline::testing`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::{Value, json};
use threadline::export::parquet::ParquetOptions;
use threadline::export::{ExportOptions, Format};
use threadline::read::{AsOf, Cursor, Filter, MAX_PAGE_SIZE, Reader, RowKey, TableName};
use threadline::testing::TestDatabase;

/// Changes per key: an insert and 4 updates.
const CHANGES_PER_KEY: u64 = 5;
/// Entries per timed timeline page.
const PAGE_SIZE: usize = 100;
/// Set in the child process that measures an export's memory: the format.
const MEMORY_CHILD: &str = "THREADLINE_BENCH_READ_MEMORY_CHILD";
/// The database URL the memory child exports from.
const MEMORY_URL: &str = "THREADLINE_BENCH_READ_MEMORY_URL";

const SCHEMA: &str = "
CREATE TABLE bench_posts (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, n int NOT NULL);
CREATE TABLE bench_comments (id bigint PRIMARY KEY, post_id bigint NOT NULL, body text NOT NULL, n int NOT NULL);
SELECT threadline.audit_table('bench_posts');
SELECT threadline.audit_table('bench_comments');
";

fn run(conn: &mut PgConnection, sql: &str) {
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> u64 {
    let rows: Vec<Count> = diesel::sql_query(sql)
        .load(conn)
        .unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
    rows[0].n as u64
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The `q`-quantile of `samples` (0.5 for the median).
fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Milliseconds `f` takes, with its result.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let started = Instant::now();
    let value = f();
    (started.elapsed().as_secs_f64() * 1000.0, value)
}

/// Distinct random-ish keys of `1..=keys`: a walk with a stride coprime to `keys`, so
/// no key repeats before every key was drawn.
struct Keys {
    keys: u64,
    stride: u64,
    next: u64,
}

impl Keys {
    fn new(keys: u64, seed: u64) -> Keys {
        let gcd = |mut a: u64, mut b: u64| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let mut stride = (keys * 618 / 1000).max(1);
        while gcd(stride, keys) != 1 {
            stride += 1;
        }
        Keys {
            keys,
            stride,
            next: seed % keys,
        }
    }

    fn key(&mut self) -> i64 {
        self.next = (self.next + self.stride) % self.keys;
        (self.next + 1) as i64
    }
}

/// A trail written through the capture triggers, in its own database.
struct Trail {
    db: TestDatabase,
    conn: PgConnection,
    /// Rows of `threadline.audit_changes`.
    rows: u64,
    /// Keys of `bench_posts`.
    posts: u64,
}

/// The SQL of one round of writes: `round` 0 inserts every key, later rounds update them.
fn round_sql(round: u64, posts: u64, comments: u64, batch: u64) -> String {
    let batches = posts.div_ceil(batch);
    let (post_sql, comment_sql) = if round == 0 {
        (
            "INSERT INTO bench_posts SELECT g, 'post ' || g, repeat('lorem ipsum ', 16), 0 FROM generate_series(lo, hi) g"
                .to_owned(),
            "INSERT INTO bench_comments SELECT g, g * 9, repeat('comment ', 8), 0 FROM generate_series(clo, chi) g"
                .to_owned(),
        )
    } else {
        (
            format!(
                "UPDATE bench_posts SET n = n + 1, title = 'post ' || id || ' v{round}' WHERE id BETWEEN lo AND hi"
            ),
            "UPDATE bench_comments SET n = n + 1 WHERE id BETWEEN clo AND chi".to_owned(),
        )
    };
    format!(
        "DO $$
DECLARE
    lo bigint; hi bigint; clo bigint; chi bigint;
BEGIN
    FOR b IN 0..{last} LOOP
        lo := b::bigint * {posts} / {batches} + 1;
        hi := (b::bigint + 1) * {posts} / {batches};
        clo := b::bigint * {comments} / {batches} + 1;
        chi := (b::bigint + 1) * {comments} / {batches};
        IF b % 3 = 0 THEN
            PERFORM threadline.begin_audit(jsonb_strip_nulls(jsonb_build_object(
                'actor', jsonb_build_object('type', 'user', 'id', (b % 50)::text),
                'request_id', format('req-{round}-%s', b),
                'correlation_id', format('flow-%s', b % 997),
                'action', CASE WHEN b % 6 = 0 THEN jsonb_build_object('name', 'bench_edit') END)));
        END IF;
        {post_sql};
        IF clo <= chi THEN
            {comment_sql};
        END IF;
        COMMIT;
    END LOOP;
END
$$",
        last = batches - 1,
    )
}

impl Trail {
    /// Writes a trail of about `target_rows` audit rows.
    fn load(target_rows: u64, batch: u64) -> Trail {
        let db = TestDatabase::new().expect("benchmark database");
        let mut conn = db.connect().expect("connect");
        let keys = (target_rows / CHANGES_PER_KEY).max(20);
        let comments = keys / 10;
        let posts = keys - comments;
        run(&mut conn, SCHEMA);
        for round in 0..CHANGES_PER_KEY {
            run(&mut conn, &round_sql(round, posts, comments, batch));
        }
        for table in [
            "threadline.audit_changes",
            "threadline.audit_transactions",
            "threadline.audit_actions",
            "bench_posts",
            "bench_comments",
        ] {
            run(&mut conn, &format!("VACUUM ANALYZE {table}"));
        }
        run(&mut conn, "CHECKPOINT");
        let rows = count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes");
        Trail { db, conn, rows, posts }
    }
}

fn posts_table() -> TableName {
    "public.bench_posts".parse().expect("table name")
}

/// Milliseconds of one `row_history` of a random key, checking what it returned.
fn row_history_ms(trail: &mut Trail, keys: &mut Keys) -> f64 {
    let (table, key) = (posts_table(), RowKey::from(keys.key()));
    let (ms, page) = timed(|| Reader::new().row_history_blocking(&mut trail.conn, &table, &key));
    let page = page.expect("row history");
    assert_eq!(
        page.entries.len() as u64,
        CHANGES_PER_KEY,
        "every key has {CHANGES_PER_KEY} changes"
    );
    ms
}

/// A random key and the time of its middle change.
fn as_of_target(trail: &mut Trail, keys: &mut Keys) -> (RowKey, DateTime<Utc>) {
    let key = RowKey::from(keys.key());
    let page = Reader::new()
        .row_history_blocking(&mut trail.conn, &posts_table(), &key)
        .expect("row history");
    let at = page.entries[page.entries.len() / 2].captured_at;
    (key, at)
}

/// Milliseconds of one `as_of`, checking it found the row.
fn as_of_ms(trail: &mut Trail, key: &RowKey, at: DateTime<Utc>) -> f64 {
    let table = posts_table();
    let (ms, found) = timed(|| Reader::new().as_of_blocking(&mut trail.conn, &table, key, at));
    match found.expect("as of") {
        AsOf::Found(change) => assert_eq!(change.captured_at, at, "as_of returns the change at `at`"),
        other => panic!("as_of in the middle of a history found {other:?}"),
    }
    ms
}

/// A latency figure: median and p90 of each side, their ratio, and the target.
fn latency_line(scenario: &str, sizes: Value, names: [&str; 2], a: &[f64], b: &[f64], target: f64) -> Value {
    let (ma, mb) = (quantile(a, 0.5), quantile(b, 0.5));
    let ratio = mb / ma;
    let mut line = json!({ "scenario": scenario });
    let object = line.as_object_mut().expect("object");
    object.extend(sizes.as_object().expect("sizes").clone());
    object.insert("lookups".into(), json!(a.len()));
    object.insert(format!("{}_ms", names[0]), json!(round(ma)));
    object.insert(format!("{}_ms", names[1]), json!(round(mb)));
    object.insert(format!("{}_p90_ms", names[0]), json!(round(quantile(a, 0.9))));
    object.insert(format!("{}_p90_ms", names[1]), json!(round(quantile(b, 0.9))));
    object.insert("ratio".into(), json!(round(ratio)));
    object.insert("target".into(), json!(format!("ratio <= {target}")));
    object.insert("target_met".into(), json!(ratio <= target));
    line
}

fn row_history(small: &mut Trail, large: &mut Trail, lookups: u64) -> Value {
    let (mut small_keys, mut large_keys) = (Keys::new(small.posts, 17), Keys::new(large.posts, 17));
    for _ in 0..10 {
        row_history_ms(small, &mut small_keys);
        row_history_ms(large, &mut large_keys);
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..lookups {
        a.push(row_history_ms(small, &mut small_keys));
        b.push(row_history_ms(large, &mut large_keys));
    }
    let sizes = json!({ "small_rows": small.rows, "large_rows": large.rows, "changes_per_key": CHANGES_PER_KEY });
    latency_line("row_history", sizes, ["small", "large"], &a, &b, 1.5)
}

fn as_of(small: &mut Trail, large: &mut Trail, lookups: u64) -> Value {
    let (mut small_keys, mut large_keys) = (Keys::new(small.posts, 911), Keys::new(large.posts, 911));
    let targets: Vec<_> = (0..lookups + 10)
        .map(|_| {
            (
                as_of_target(small, &mut small_keys),
                as_of_target(large, &mut large_keys),
            )
        })
        .collect();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, ((small_key, small_at), (large_key, large_at))) in targets.iter().enumerate() {
        let (ms_small, ms_large) = (
            as_of_ms(small, small_key, *small_at),
            as_of_ms(large, large_key, *large_at),
        );
        if i >= 10 {
            a.push(ms_small);
            b.push(ms_large);
        }
    }
    let sizes = json!({ "small_rows": small.rows, "large_rows": large.rows, "changes_per_key": CHANGES_PER_KEY });
    latency_line("as_of", sizes, ["small", "large"], &a, &b, 1.5)
}

/// The cursor after the first `skip` entries of the timeline of `filter`, reached by
/// paging with the largest page size.
fn deep_cursor(conn: &mut PgConnection, filter: &Filter, skip: u64) -> Cursor {
    let reader = Reader::new();
    let mut cursor: Option<Cursor> = None;
    let mut skipped = 0;
    while skipped < skip {
        let size = (skip - skipped).min(MAX_PAGE_SIZE as u64) as usize;
        let page = reader
            .timeline_page_blocking(conn, filter, cursor.as_ref(), size)
            .expect("timeline page");
        skipped += page.entries.len() as u64;
        cursor = Some(page.next_cursor.expect("the timeline goes deeper"));
    }
    cursor.expect("skip at least one entry")
}

fn timeline(scenario: &str, trail: &mut Trail, filter: &Filter, matching: u64, lookups: u64) -> Value {
    let depth = matching * 9 / 10;
    let deep = deep_cursor(&mut trail.conn, filter, depth);
    let reader = Reader::new();
    let mut page_ms = |cursor: Option<&Cursor>| {
        let (ms, page) = timed(|| reader.timeline_page_blocking(&mut trail.conn, filter, cursor, PAGE_SIZE));
        assert_eq!(page.expect("timeline page").entries.len(), PAGE_SIZE);
        ms
    };
    for _ in 0..10 {
        page_ms(None);
        page_ms(Some(&deep));
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..lookups {
        a.push(page_ms(None));
        b.push(page_ms(Some(&deep)));
    }
    let sizes = json!({ "rows": trail.rows, "matching_rows": matching, "page_size": PAGE_SIZE, "depth": depth });
    latency_line(scenario, sizes, ["first", "deep"], &a, &b, 1.5)
}

/// A fresh database whose audit tables are never analyzed, holding one statement of
/// `rows` changes with a full context.
fn unanalyzed_statement(rows: u64) -> (TestDatabase, PgConnection) {
    let db = TestDatabase::new().expect("benchmark database");
    let mut conn = db.connect().expect("connect");
    run(&mut conn, SCHEMA);
    run(
        &mut conn,
        &format!(
            "ALTER TABLE threadline.audit_changes SET (autovacuum_enabled = false);
ALTER TABLE threadline.audit_transactions SET (autovacuum_enabled = false);
ALTER TABLE threadline.audit_actions SET (autovacuum_enabled = false);
BEGIN;
SELECT threadline.begin_audit('{{\"actor\": {{\"type\": \"user\", \"id\": \"7\"}}, \"request_id\": \"req-bulk\", \"correlation_id\": \"flow-bulk\", \"action\": {{\"name\": \"bench_import\"}}}}');
INSERT INTO bench_posts SELECT g, 'post ' || g, repeat('lorem ipsum ', 16), 0 FROM generate_series(1, {rows}) g;
COMMIT;"
        ),
    );
    (db, conn)
}

/// Whether any audit table has statistics.
fn audit_tables_analyzed(conn: &mut PgConnection) -> bool {
    count(
        conn,
        "SELECT count(*) AS n FROM pg_stat_all_tables WHERE schemaname = 'threadline' \
         AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
    ) > 0
}

fn export_unanalyzed(rows: u64, repeat: u64) -> Value {
    let (db, mut conn) = unanalyzed_statement(rows);
    let psql = psql();
    let (mut times, mut copy) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let (ms, exported, _) = export_ms(&mut conn, Format::Csv);
        assert_eq!(exported, rows, "the export writes every change");
        times.push(ms);
        copy.push(copy_ms(&psql, db.url()));
    }
    let analyzed = audit_tables_analyzed(&mut conn);
    let head = json!({ "scenario": "export_unanalyzed", "format": "csv", "rows": rows, "analyzed": analyzed });
    versus_copy(head, rows, repeat, &times, &copy)
}

/// An export's figure against `COPY` of the same rows: `head` with the medians of the
/// timed runs, both rates and their ratio.
fn versus_copy(head: Value, rows: u64, repeat: u64, export: &[f64], copy: &[f64]) -> Value {
    let (ms, copy_ms) = (quantile(export, 0.5), quantile(copy, 0.5));
    let (rate, copy_rate) = (rows as f64 / ms * 1000.0, rows as f64 / copy_ms * 1000.0);
    let ratio = rate / copy_rate;
    let mut line = head;
    line.as_object_mut().expect("object").extend(
        json!({
            "repeat": repeat,
            "export_ms": round(ms),
            "export_rows_per_s": rate.round(),
            "copy_ms": round(copy_ms),
            "copy_rows_per_s": copy_rate.round(),
            "ratio": round(ratio),
            "target": "ratio >= 0.5",
            "target_met": ratio >= 0.5,
        })
        .as_object()
        .expect("object")
        .clone(),
    );
    line
}

/// The psql of the server the benchmark runs on.
fn psql() -> PathBuf {
    threadline::testing::server_bindir()
        .map(|bin| bin.join("psql"))
        .ok()
        .filter(|psql| psql.exists())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// Milliseconds of `COPY (<the export's query>) TO STDOUT (FORMAT csv)` through psql into
/// `/dev/null`.
fn copy_ms(psql: &Path, url: &str) -> f64 {
    let (ms, status) = timed(|| {
        Command::new(psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c"])
            .arg(format!(
                "COPY ({}) TO STDOUT (FORMAT csv)",
                threadline::export::unfiltered_query()
            ))
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", psql.display()))
    });
    assert!(status.success(), "psql COPY failed: {status}");
    ms
}

/// Milliseconds of a full export of the trail in `format`, with its rows and bytes.
fn export_ms(conn: &mut PgConnection, format: Format) -> (f64, u64, u64) {
    let mut export = Reader::new()
        .export(&Filter::new(), ExportOptions::new(format))
        .expect("export");
    let (ms, summary) = timed(|| export.write_to_blocking(conn, &mut std::io::sink(), |_| {}));
    let summary = summary.expect("export");
    (ms, summary.rows, summary.bytes)
}

/// Milliseconds of a full Parquet export of the trail into a temporary folder, with its
/// rows and bytes.
fn parquet_ms(conn: &mut PgConnection) -> (f64, u64, u64) {
    let dir = std::env::temp_dir().join(format!("threadline-bench-parquet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let export = Reader::new()
        .export_parquet(&Filter::new(), ParquetOptions::new())
        .expect("export");
    let (ms, summary) = timed(|| export.write_dir_blocking(conn, &dir, |_| {}));
    let summary = summary.expect("Parquet export");
    std::fs::remove_dir_all(&dir).expect("remove the Parquet folder");
    (ms, summary.rows, summary.bytes)
}

/// A full export in `format` (`csv`, `ndjson` or `parquet`): milliseconds, rows, bytes.
fn any_export_ms(conn: &mut PgConnection, format: &str) -> (f64, u64, u64) {
    match format {
        "parquet" => parquet_ms(conn),
        other => export_ms(conn, other.parse().expect("format")),
    }
}

fn export(trail: &mut Trail, repeat: u64) -> Vec<Value> {
    let psql = psql();
    let url = trail.db.url().to_owned();
    let formats = ["csv", "ndjson", "parquet"];
    let mut times = vec![Vec::new(); formats.len()];
    let mut sizes = vec![(0, 0); formats.len()];
    let mut copy = Vec::new();
    for _ in 0..repeat {
        for (i, format) in formats.into_iter().enumerate() {
            let (ms, rows, bytes) = any_export_ms(&mut trail.conn, format);
            assert_eq!(rows, trail.rows, "the export writes every change");
            times[i].push(ms);
            sizes[i] = (rows, bytes);
        }
        copy.push(copy_ms(&psql, &url));
    }
    let csv_ms = quantile(&times[0], 0.5);
    formats
        .into_iter()
        .enumerate()
        .map(|(i, format)| {
            let (rows, bytes) = sizes[i];
            let head = json!({ "scenario": "export", "format": format, "rows": rows, "bytes": bytes });
            let mut line = versus_copy(head, rows, repeat, &times[i], &copy);
            if format == "parquet" {
                let csv_ratio = csv_ms / quantile(&times[i], 0.5);
                line["csv_ratio"] = json!(round(csv_ratio));
                line["target"] = json!("csv_ratio >= 1");
                line["target_met"] = json!(csv_ratio >= 1.0);
            }
            line
        })
        .collect()
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

/// The memory child: one export from a fresh process, its memory figures on stdout.
fn memory_child(format: &str) {
    let url = std::env::var(MEMORY_URL).expect("the database URL");
    let mut conn = PgConnection::establish(&url).expect("connect");
    let rss_before = status_kib("VmRSS");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (ms, rows, _) = any_export_ms(&mut conn, format);
    let hwm = status_kib("VmHWM");
    println!(
        "{}",
        json!({ "rss_before_kib": rss_before, "hwm_kib": hwm, "reset": reset, "rows": rows, "ms": ms })
    );
}

fn export_memory(trail: &Trail) -> Vec<Value> {
    let exe = std::env::current_exe().expect("the benchmark's path");
    ["csv", "ndjson", "parquet"]
        .into_iter()
        .map(|format| {
            let output = Command::new(&exe)
                .env(MEMORY_CHILD, format)
                .env(MEMORY_URL, trail.db.url())
                .stderr(Stdio::inherit())
                .output()
                .expect("run the memory child");
            assert!(output.status.success(), "the memory child failed: {}", output.status);
            let figures: Value = serde_json::from_slice(&output.stdout).expect("the memory child's figures");
            let kib = |name: &str| figures[name].as_u64().expect("a figure");
            let added_mib = kib("hwm_kib").saturating_sub(kib("rss_before_kib")) as f64 / 1024.0;
            json!({
                "scenario": "export_memory",
                "format": format,
                "rows": figures["rows"],
                "rss_before_mib": round(kib("rss_before_kib") as f64 / 1024.0),
                "peak_mib": round(kib("hwm_kib") as f64 / 1024.0),
                "added_mib": round(added_mib),
                "peak_reset": figures["reset"],
                "target": "added_mib < 64",
                "target_met": added_mib < 64.0,
            })
        })
        .collect()
}

fn main() {
    if let Ok(format) = std::env::var(MEMORY_CHILD) {
        memory_child(&format);
        return;
    }
    let large_rows = env_number("THREADLINE_BENCH_READ_ROWS", 1_000_000);
    let small_rows = env_number("THREADLINE_BENCH_READ_SMALL_ROWS", 10_000);
    let lookups = env_number("THREADLINE_BENCH_READ_LOOKUPS", 200).max(1);
    let repeat = env_number("THREADLINE_BENCH_READ_REPEAT", 3).max(1);
    let batch = env_number("THREADLINE_BENCH_READ_BATCH", 100).max(1);
    let statement_rows = env_number("THREADLINE_BENCH_READ_STATEMENT_ROWS", 300_000).max(1);
    println!("{}", export_unanalyzed(statement_rows, repeat));

    let (small_load_ms, mut small) = timed(|| Trail::load(small_rows, batch));
    let (large_load_ms, mut large) = timed(|| Trail::load(large_rows, batch));
    eprintln!(
        "loaded {} and {} audit rows in {:.1} s and {:.1} s",
        small.rows,
        large.rows,
        small_load_ms / 1000.0,
        large_load_ms / 1000.0
    );

    println!("{}", row_history(&mut small, &mut large, lookups));
    println!("{}", as_of(&mut small, &mut large, lookups));
    let rows = large.rows;
    println!(
        "{}",
        timeline("timeline_page", &mut large, &Filter::new(), rows, lookups)
    );
    let comments = count(
        &mut large.conn,
        "SELECT count(*) AS n FROM threadline.audit_changes WHERE table_name = 'bench_comments'",
    );
    let filter = Filter::new().table("public.bench_comments").expect("filter");
    println!(
        "{}",
        timeline("timeline_page_table", &mut large, &filter, comments, lookups)
    );
    for line in export(&mut large, repeat) {
        println!("{line}");
    }
    for line in export_memory(&large) {
        println!("{line}");
    }
}
