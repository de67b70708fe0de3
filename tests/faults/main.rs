//! Capture under faults and poolers: concurrent writers with random rollbacks, backends
//! killed mid-transaction, a crash and restart of the server mid-load, and transactions
//! of many actors multiplexed over few server connections by PgBouncer. Each test keeps
//! its own ground truth and checks the trail against it: no change lost, none phantom,
//! none attributed to another actor.

#[path = "../support/mod.rs"]
mod support;

mod pooler;
mod trail;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};
use threadline::testing::PrivateServer;

use trail::{Outcome, Rng, Writer, check_trail};

const WRITERS: usize = 8;

/// Connects, retrying while the server is down or restarting, until the deadline.
fn connect_retrying(url: &str, deadline: Instant) -> Option<PgConnection> {
    while Instant::now() < deadline {
        if let Ok(conn) = PgConnection::establish(url) {
            return Some(conn);
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn no_change_is_lost_phantom_or_misattributed_under_kills_and_a_crash() {
    let server = PrivateServer::start().expect("private server");
    let admin_url = server.admin_url();
    let mut admin = PgConnection::establish(&admin_url).unwrap();
    threadline::migrations::install(&mut admin).unwrap();
    admin
        .batch_execute(
            "CREATE TABLE ledger (id int PRIMARY KEY, n int NOT NULL, note text);
             SELECT threadline.audit_table('ledger');",
        )
        .unwrap();
    let writer_url = format!("{admin_url}?application_name=faults_writer");

    let load_end = Instant::now() + Duration::from_secs(6);
    let kills = Arc::new(AtomicU64::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let url = writer_url.clone();
            thread::spawn(move || {
                let mut writer = Writer::new(n, 0x5eed + n as u64);
                while Instant::now() < load_end {
                    let Some(mut conn) = connect_retrying(&url, load_end) else {
                        break;
                    };
                    writer.reload(&mut conn);
                    while Instant::now() < load_end {
                        if writer.transaction(&mut conn) == Outcome::ConnectionLost {
                            break;
                        }
                    }
                }
                writer
            })
        })
        .collect();
    let killer = {
        let (url, kills, running) = (admin_url.clone(), kills.clone(), running.clone());
        thread::spawn(move || {
            let mut rng = Rng(7);
            while running.load(Ordering::Relaxed) {
                if let Ok(mut conn) = PgConnection::establish(&url) {
                    while running.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(40 + rng.below(60)));
                        let killed = sql_query(format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                              WHERE application_name = 'faults_writer' ORDER BY random() LIMIT 1 OFFSET {}",
                            rng.below(2)
                        ))
                        .execute(&mut conn);
                        match killed {
                            Ok(n) => kills.fetch_add(n as u64, Ordering::Relaxed),
                            Err(_) => break,
                        };
                    }
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    thread::sleep(Duration::from_secs(2));
    drop(admin);
    server.crash().expect("crash");
    thread::sleep(Duration::from_millis(300));
    server.restart().expect("restart");

    let writers: Vec<Writer> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    running.store(false, Ordering::Relaxed);
    killer.join().unwrap();

    let mut admin = PgConnection::establish(&admin_url).unwrap();
    let report = check_trail(&mut admin, &writers);
    let totals: BTreeMap<&str, usize> = writers.iter().fold(BTreeMap::new(), |mut totals, w| {
        for (outcome, n) in w.counts() {
            *totals.entry(outcome).or_default() += n;
        }
        totals
    });
    println!(
        "faults: {totals:?}, {} backends killed, 1 crash; trail: {} changes checked, {} lost, {} phantom, {} misattributed",
        kills.load(Ordering::Relaxed),
        report.checked,
        report.lost,
        report.phantom,
        report.misattributed
    );
    assert!(
        totals.get("committed").copied().unwrap_or(0) > 100,
        "the load must commit enough: {totals:?}"
    );
    assert!(totals.get("rolled back").copied().unwrap_or(0) > 10, "{totals:?}");
    assert!(kills.load(Ordering::Relaxed) > 5, "the killer must kill backends");
    assert_eq!(
        (report.lost, report.phantom, report.misattributed),
        (0, 0, 0),
        "{report:?}"
    );
}
