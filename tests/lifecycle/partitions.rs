//! The partitioned store: a live conversion under writers, the same table as before, the
//! default partition and its strays, retention by partition drop with exact counts, and
//! the refusals. Each test installs its own database, whatever layout the suite runs on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use threadline::health::HealthCheck;
use threadline::migrations;
use threadline::partitions::{self, Period};
use threadline::read::{Reader, RowKey};
use threadline::retention::{Purge, RetentionPolicy};
use threadline::testing::TestDatabase;

use crate::support::{exec, exec_err};

/// An unpartitioned install with an audited `posts` table the app role may write.
fn installed() -> (TestDatabase, PgConnection) {
    let db = TestDatabase::empty().unwrap();
    let mut conn = db.connect().unwrap();
    migrations::install(&mut conn).unwrap();
    db.app_url().unwrap();
    exec(
        &mut conn,
        &format!(
            "CREATE TABLE posts (id bigint PRIMARY KEY, title text);
             SELECT threadline.audit_table('posts');
             GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO {};",
            threadline::testing::APP_ROLE
        ),
    );
    (db, conn)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sql_query(sql).get_result::<Count>(conn).unwrap().n
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

fn lines(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    sql_query(sql)
        .load::<Line>(conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

fn codes(conn: &mut PgConnection) -> Vec<String> {
    HealthCheck::new()
        .run_blocking(conn)
        .unwrap()
        .findings
        .into_iter()
        .map(|f| f.code)
        .filter(|c| c.starts_with("partition"))
        .collect()
}

#[test]
fn a_live_conversion_loses_and_duplicates_no_change_while_writers_run() {
    let (db, mut conn) = installed();
    exec(
        &mut conn,
        "INSERT INTO posts SELECT g, 'before' FROM generate_series(1, 20000) g",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (url, stop) = (db.app_url().unwrap(), stop.clone());
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                let mut written = 0_i64;
                while !stop.load(Ordering::Relaxed) || written < 50 {
                    let id = 1_000_000 * (w + 1) + written;
                    sql_query(format!("INSERT INTO posts VALUES ({id}, 'during')"))
                        .execute(&mut conn)
                        .unwrap();
                    written += 1;
                }
                written
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let done = partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let written: i64 = writers.into_iter().map(|w| w.join().unwrap()).sum();

    assert_eq!(
        done.before,
        format!("audit_changes_before_{}", done.boundary.format("%Y%m%d"))
    );
    assert!(
        done.boundary > Utc::now() + TimeDelta::days(1),
        "the boundary is a full period ahead"
    );
    assert_eq!(partitions::period_blocking(&mut conn).unwrap(), Some(Period::Day));
    let posts = count(&mut conn, "SELECT count(*) AS n FROM posts");
    assert_eq!(posts, 20_000 + written);
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes"),
        posts,
        "no change lost"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT table_pk) AS n FROM threadline.audit_changes"
        ),
        posts,
        "no change twice"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(DISTINCT id) AS n FROM threadline.audit_changes"
        ),
        posts,
        "ids stay unique across the swap"
    );
    // Writes after the swap go through the partitioned table, as the app role.
    let mut app = PgConnection::establish(&db.app_url().unwrap()).unwrap();
    exec(&mut app, "UPDATE posts SET title = 'after' WHERE id = 1");
    let history = Reader::new()
        .row_history_blocking(&mut conn, &"posts".parse().unwrap(), &RowKey::from(1))
        .unwrap();
    assert_eq!(
        history.entries.len(),
        2,
        "the row's history spans the old table and the new one"
    );
    assert!(codes(&mut conn).is_empty(), "{:?}", codes(&mut conn));
    let err = partitions::convert_blocking(&mut conn, Period::Week)
        .unwrap_err()
        .to_string();
    assert!(err.contains("partitioned by day already"), "{err}");
}

#[test]
fn the_partitioned_table_is_the_table_it_replaced() {
    let (_plain_db, mut plain) = installed();
    let (_db, mut conn) = installed();
    partitions::convert_blocking(&mut conn, Period::Month).unwrap();
    // Columns with their types, collations, defaults and checks; indexes; grants.
    let shape = "SELECT format('%s %s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attcollation,
                              a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS line
                   FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                  WHERE a.attrelid = 'threadline.audit_changes'::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 UNION ALL SELECT format('identity %s', a.attidentity) FROM pg_attribute a
                  WHERE a.attrelid = 'threadline.audit_changes'::regclass AND a.attname = 'id'
                 UNION ALL SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k
                  WHERE k.conrelid = 'threadline.audit_changes'::regclass AND k.contype = 'c'
                 UNION ALL SELECT regexp_replace(pg_get_indexdef(i.indexrelid), ' ON (ONLY )?', ' ON ')
                   FROM pg_index i WHERE i.indrelid = 'threadline.audit_changes'::regclass AND NOT i.indisprimary
                 UNION ALL SELECT coalesce(c.relacl::text, '') FROM pg_class c
                  WHERE c.oid = 'threadline.audit_changes'::regclass
                 ORDER BY 1";
    assert_eq!(lines(&mut conn, shape), lines(&mut plain, shape));
    // Every partition has every index of the table.
    let missing = count(
        &mut conn,
        "SELECT count(*) AS n FROM pg_inherits p, pg_index t
          WHERE p.inhparent = 'threadline.audit_changes'::regclass AND t.indrelid = p.inhparent
            AND NOT EXISTS (SELECT 1 FROM pg_inherits ip JOIN pg_index pi ON pi.indexrelid = ip.inhrelid
                             WHERE ip.inhparent = t.indexrelid AND pi.indrelid = p.inhrelid)",
    );
    assert_eq!(missing, 0);
    let err = exec_err(&mut conn, migrations::UPGRADES[1].down);
    assert!(err.contains("the audit store is partitioned"), "{err}");
}

#[test]
fn a_change_no_partition_covers_lands_in_the_default_one_until_ensure_moves_it() {
    let (_db, mut conn) = installed();
    let done = partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    assert!(done.boundary <= Utc::now(), "an empty store is partitioned from today");
    assert_eq!(done.created, 3, "today and two days ahead");
    exec(
        &mut conn,
        "INSERT INTO posts VALUES (1, 'now');
         INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data, captured_at)
         SELECT transaction_id, table_schema, table_name, table_pk, 'update', data, now() + interval '30 days'
           FROM threadline.audit_changes;",
    );
    let list = partitions::list_blocking(&mut conn).unwrap();
    let default = list.iter().find(|p| p.is_default).unwrap();
    assert_eq!(default.name, "audit_changes_default");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes_default"),
        1
    );
    assert_eq!(codes(&mut conn), ["partition_default_rows"]);

    assert_eq!(partitions::ensure_blocking(&mut conn, 2).unwrap(), 1, "the stray's day");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes_default"),
        0
    );
    let day = (Utc::now() + TimeDelta::days(30)).format("%Y%m%d").to_string();
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM threadline.audit_changes_{day}")
        ),
        1
    );
    assert!(codes(&mut conn).is_empty());
    let history = Reader::new()
        .row_history_blocking(&mut conn, &"posts".parse().unwrap(), &RowKey::from(1))
        .unwrap();
    assert_eq!(history.entries.len(), 2);
    assert_eq!(
        partitions::ensure_blocking(&mut conn, 2).unwrap(),
        0,
        "ensure is idempotent"
    );
    assert!(partitions::ensure_blocking(&mut conn, 401).is_err());
}

#[test]
fn retention_drops_whole_partitions_and_deletes_only_what_straddles_the_cutoff() {
    let (_db, mut conn) = installed();
    partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    #[derive(QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        at: DateTime<Utc>,
    }
    let today = sql_query("SELECT threadline.period_start('day', now()) AS at")
        .get_result::<Now>(&mut conn)
        .unwrap()
        .at;
    // A change and its transaction at each offset (hours from today's start): before the
    // store's first day, today, the two days ahead, and two in the default partition on
    // either side of the cutoff at day 4.
    let hours = [-30, 1, 2, 25, 49, 50, 80, 100];
    for (i, h) in hours.iter().enumerate() {
        exec(
            &mut conn,
            &format!(
                "WITH t AS (INSERT INTO threadline.audit_transactions (xact_id, occurred_at)
                            VALUES ('{}'::xid8, '{today}'::timestamptz + interval '{h} hours') RETURNING id)
                 INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
                 SELECT t.id, 'public', 'posts', '{{\"id\": \"{i}\"}}', 'insert', '{today}'::timestamptz + interval '{h} hours'
                   FROM t",
                1000 + i
            ),
        );
    }
    let cutoff = today + TimeDelta::days(4);
    let purge = Purge::new(RetentionPolicy::keep_days(1).unwrap())
        .as_of(cutoff + TimeDelta::days(1))
        .pause(Duration::ZERO);
    let plan = purge.dry_run_blocking(&mut conn).unwrap();
    assert_eq!((plan.changes, plan.transactions, plan.partitions), (7, 7, 4));
    let mut seen = Vec::new();
    let done = purge
        .execute_blocking(&mut conn, |run| seen.push(run.partitions_dropped))
        .unwrap();
    assert_eq!(done.run.changes_deleted, 7, "counted exactly");
    assert_eq!(done.run.transactions_deleted, 7);
    assert_eq!(done.run.partitions_dropped, 4, "before, today and the two days ahead");
    assert_eq!(done.run.batches, 1, "one batch for the stray before the cutoff");
    assert_eq!(&seen[..4], [1, 2, 3, 4], "progress after each partition");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes"),
        1
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_transactions"),
        1
    );
    let day4 = (today + TimeDelta::days(4)).format("%Y%m%d");
    assert_eq!(
        count(
            &mut conn,
            &format!("SELECT count(*) AS n FROM threadline.audit_changes_{day4}")
        ),
        1,
        "the run created the partitions ahead of it and moved the survivor into its day's"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes_default"),
        0
    );
}

#[test]
fn a_conversion_that_fails_leaves_no_check_behind_and_health_names_one_left() {
    let (_db, mut conn) = installed();
    exec(
        &mut conn,
        "INSERT INTO posts VALUES (1, 'x');
         UPDATE threadline.audit_changes SET captured_at = now() + interval '400 days';",
    );
    let err = partitions::convert_blocking(&mut conn, Period::Day)
        .unwrap_err()
        .to_string();
    assert!(err.contains("audit_changes_partition_boundary"), "{err}");
    assert_eq!(partitions::period_blocking(&mut conn).unwrap(), None);
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = Bool)]
        flag: bool,
    }
    let left = sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'audit_changes_partition_boundary') AS flag",
    )
    .get_result::<Flag>(&mut conn)
    .unwrap();
    assert!(!left.flag, "the CHECK is gone");
    assert!(codes(&mut conn).is_empty());
    exec(
        &mut conn,
        "ALTER TABLE threadline.audit_changes ADD CONSTRAINT audit_changes_partition_boundary
             CHECK (captured_at < '2100-01-01') NOT VALID",
    );
    assert_eq!(codes(&mut conn), ["partition_boundary_left"]);
    let err = partitions::ensure_blocking(&mut conn, 2).unwrap_err().to_string();
    assert!(err.contains("not partitioned"), "{err}");
}

#[test]
fn a_write_waiting_while_ensure_creates_its_period_s_partition_lands_in_it() {
    let (db, mut conn) = installed();
    partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    // Today's partition lapsed: today's changes land in the default partition.
    let today = format!("audit_changes_{}", Utc::now().format("%Y%m%d"));
    exec(
        &mut conn,
        &format!(
            "ALTER TABLE threadline.audit_changes DETACH PARTITION threadline.{today}; DROP TABLE threadline.{today};
             INSERT INTO posts VALUES (1, 'stray');"
        ),
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes_default"),
        1
    );
    exec(&mut conn, "BEGIN; SELECT threadline.ensure_partitions();");
    let url = db.app_url().unwrap();
    let writer = std::thread::spawn(move || {
        let mut app = PgConnection::establish(&url).unwrap();
        sql_query("INSERT INTO posts VALUES (2, 'while ensure holds its locks')").execute(&mut app)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!writer.is_finished(), "the writer waits for the new partition");
    exec(&mut conn, "COMMIT");
    writer.join().unwrap().expect("the waiting write is not refused");
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM threadline.audit_changes_default"),
        0
    );
    assert_eq!(
        count(&mut conn, &format!("SELECT count(*) AS n FROM threadline.{today}")),
        2,
        "the stray moved, the waiting write routed to the new partition"
    );
}

#[test]
fn a_conversion_behind_a_long_reader_gives_up_instead_of_stalling_writers() {
    let (db, mut conn) = installed();
    exec(&mut conn, "INSERT INTO posts VALUES (1, 'x')");
    // A report that holds the audit table open for longer than the conversion will wait.
    let mut reader = db.connect().unwrap();
    exec(&mut reader, "BEGIN; SELECT count(*) FROM threadline.audit_changes;");
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        exec(&mut reader, "COMMIT");
    });
    let err = partitions::convert_blocking(&mut conn, Period::Day)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lock timeout"), "{err}");
    assert!(
        !release.is_finished(),
        "each wait for the table ends after lock_timeout, not when the reader does"
    );
    assert_eq!(partitions::period_blocking(&mut conn).unwrap(), None);
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM pg_constraint WHERE conname = 'audit_changes_partition_boundary'"
        ),
        0
    );
    release.join().unwrap();
    let done = partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    assert!(done.before.starts_with("audit_changes_before_"), "{done:?}");
}

#[test]
fn a_live_conversion_under_another_datestyle_validates_its_boundary() {
    let (_db, mut conn) = installed();
    exec(
        &mut conn,
        "INSERT INTO posts VALUES (1, 'x'); SET datestyle = 'German, DMY';",
    );
    let done = partitions::convert_blocking(&mut conn, Period::Day).unwrap();
    assert!(done.before.starts_with("audit_changes_before_"), "{done:?}");
}
