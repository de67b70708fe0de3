//! PgBouncer in transaction mode in front of the test server: many clients' transactions
//! multiplexed over a few server connections must keep their own actors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use threadline::testing::TestDatabase;

use crate::trail::{Outcome, Writer, check_trail};

use crate::support::bouncer::{Bouncer, POOL_SIZE};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn transactions_of_many_actors_multiplexed_by_pgbouncer_keep_their_actors() {
    let db = TestDatabase::new().unwrap();
    let mut admin = db.connect().unwrap();
    sql_query("CREATE TABLE ledger (id int PRIMARY KEY, n int NOT NULL, note text)")
        .execute(&mut admin)
        .unwrap();
    sql_query("SELECT threadline.audit_table('ledger')")
        .execute(&mut admin)
        .unwrap();
    let bouncer = Bouncer::start(db.url());
    let url = bouncer.url(db.url());

    const CLIENTS: usize = 16;
    let load_end = Instant::now() + Duration::from_secs(3);
    let busiest = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let url = url.clone();
            thread::spawn(move || {
                let mut writer = Writer::new(n, 0xb0 + n as u64);
                let mut conn = PgConnection::establish(&url).expect("connect through pgbouncer");
                while Instant::now() < load_end {
                    assert_eq!(
                        writer.transaction(&mut conn),
                        Outcome::Usable,
                        "a pooled connection broke"
                    );
                }
                writer
            })
        })
        .collect();
    let watcher = {
        let (busiest, running, name) = (busiest.clone(), running.clone(), db.name().to_owned());
        thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                let backends: Count = sql_query(format!(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .get_result(&mut admin)
                .unwrap();
                busiest.fetch_max(backends.n as usize, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(50));
            }
            admin
        })
    };
    let writers: Vec<Writer> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    running.store(false, Ordering::Relaxed);
    let mut admin = watcher.join().unwrap();

    let report = check_trail(&mut admin, &writers);
    let committed: usize = writers.iter().map(|w| w.counts()[0].1).sum();
    println!(
        "pooler: {CLIENTS} clients over at most {} server connections, {committed} transactions committed; \
         trail: {} changes checked, {} lost, {} phantom, {} misattributed",
        busiest.load(Ordering::Relaxed),
        report.checked,
        report.lost,
        report.phantom,
        report.misattributed
    );
    assert!(busiest.load(Ordering::Relaxed) <= POOL_SIZE, "PgBouncer must multiplex");
    assert!(committed > 200, "the load must commit enough: {committed}");
    assert_eq!(
        (report.lost, report.phantom, report.misattributed),
        (0, 0, 0),
        "{report:?}"
    );
}
