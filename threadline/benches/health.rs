//! Health benchmark: whether coverage, findings and policy drift stay fast as the number
//! of audited tables grows.
//!
//! ```text
//! cargo bench -p threadline --bench health --features testing
//! THREADLINE_BENCH_HEALTH_TABLES=5000 cargo bench -p threadline --bench health --features testing
//! ```
//!
//! Two databases: one with 10 audited tables, one with `THREADLINE_BENCH_HEALTH_TABLES`
//! (default 1000), each table with a key, a text, a timestamp and a jsonb column, a masked
//! column and a second unique index. Prints one JSON object per line and scenario, the
//! median of `THREADLINE_BENCH_HEALTH_RUNS` runs (default 9) on each database, the two
//! alternating so that noise hits both:
//!
//! - `health`: `HealthCheck::all_schemas().run_blocking` (one catalog snapshot for every
//!   finding); `large_ms`, target < 1000, and `per_table_ratio`, the large database's time
//!   per table over the small one's (below 1 when the fixed cost dominates).
//! - `policy`: `PolicyCheck` with every table declared, same figures.
//!
//! Nothing asserts on time: `target_met` says whether the figure meets the target. The
//! database is `DATABASE_URL`'s server, or a private one as in `threadline::testing`.

use std::time::Instant;

use diesel::PgConnection;
use diesel::connection::SimpleConnection;
use serde_json::{Value, json};
use threadline::health::HealthCheck;
use threadline::policy::PolicyCheck;
use threadline::read::TableName;
use threadline::testing::TestDatabase;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A database with `tables` audited tables, and the policy each is declared with.
fn database(tables: usize) -> (TestDatabase, PgConnection, PolicyCheck) {
    let db = TestDatabase::new().expect("test database");
    let mut conn = db.connect().expect("connect");
    let mut check = PolicyCheck::new();
    for chunk in (0..tables).collect::<Vec<_>>().chunks(100) {
        let mut sql = String::new();
        for i in chunk {
            sql.push_str(&format!(
                "CREATE TABLE t{i} (id bigint PRIMARY KEY, code text UNIQUE, title text, email text,
                                    at timestamptz, doc jsonb);
                 SELECT threadline.audit_table('t{i}', '{{\"mask\": [\"email\"]}}');"
            ));
            let policy = json!({"exclude": [], "mask": ["email"], "mask_placeholder": "[REDACTED]",
                                "ignore_changes": [], "primary_key": ["id"], "changed_from": true});
            check = check.declare(&TableName::new("public", format!("t{i}")).unwrap(), policy);
        }
        conn.batch_execute(&sql).expect("create the tables");
    }
    conn.batch_execute("ANALYZE").expect("analyze");
    (db, conn, check)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn timed(run: &mut impl FnMut()) -> f64 {
    let started = Instant::now();
    run();
    started.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let (large_n, runs) = (
        env_number("THREADLINE_BENCH_HEALTH_TABLES", 1000),
        env_number("THREADLINE_BENCH_HEALTH_RUNS", 9),
    );
    let small_n = 10;
    let (_small_db, mut small, small_check) = database(small_n);
    let (_large_db, mut large, large_check) = database(large_n);
    let health = HealthCheck::new().all_schemas();
    let report = health.run_blocking(&mut large).expect("health");
    assert_eq!(report.counts().0, large_n, "every table covered");
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(!large_check.run_blocking(&mut large).expect("policy").drifted());

    let lines = [
        measure("health", runs, small_n, large_n, &mut |on_large| {
            let conn = if on_large { &mut large } else { &mut small };
            health.run_blocking(conn).expect("health");
        }),
        measure("policy", runs, small_n, large_n, &mut |on_large| {
            if on_large {
                large_check.run_blocking(&mut large).expect("policy");
            } else {
                small_check.run_blocking(&mut small).expect("policy");
            }
        }),
    ];
    for line in lines {
        println!("{line}");
    }
}

/// Times `run` on the small (`false`) and the large (`true`) database, alternating.
fn measure(name: &str, runs: usize, small_n: usize, large_n: usize, run: &mut dyn FnMut(bool)) -> Value {
    run(false);
    run(true);
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        small.push(timed(&mut || run(false)));
        large.push(timed(&mut || run(true)));
    }
    let (small_ms, large_ms) = (median(small), median(large));
    let per_table_ratio = (large_ms / large_n as f64) / (small_ms / small_n as f64);
    json!({"scenario": name, "tables": large_n, "small_tables": small_n,
           "small_ms": (small_ms * 100.0).round() / 100.0, "large_ms": (large_ms * 100.0).round() / 100.0,
           "per_table_ratio": (per_table_ratio * 1000.0).round() / 1000.0,
           "target": "large_ms < 1000", "target_met": large_ms < 1000.0})
}
