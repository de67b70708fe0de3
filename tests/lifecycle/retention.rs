//! Retention: the cutoff to the microsecond, dry runs, batches, the runs log, one run at a
//! time, a run whose session died, and the trail read after a purge.

use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{BigInt, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl, sql_query};
use threadline::read::{AsOf, Reader, RowKey};
use threadline::retention::{Purge, RetentionPolicy, RunStatus};
use threadline::testing::TestDatabase;
use threadline::{Action, ActorRef, AuditContext, Error};

use crate::support::{actions, changes, exec, setup, transactions};

/// The cutoff of every test: changes captured before it go.
fn cutoff() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T12:00:00.000000Z")
        .unwrap()
        .to_utc()
}

/// A purge keeping 30 days, as of 30 days after [`cutoff`], with no pause.
fn purge() -> Purge {
    Purge::new(RetentionPolicy::keep_days(30).unwrap())
        .as_of(cutoff() + TimeDelta::days(30))
        .pause(Duration::ZERO)
}

/// Writes post `id` in a transaction of its own, with an action, and dates its change and
/// transaction `offset` from the cutoff.
fn post_at(conn: &mut PgConnection, id: i32, offset: TimeDelta) {
    let ctx = AuditContext::new()
        .with_actor(ActorRef::user("1").unwrap())
        .with_action(Action::new("post_created").unwrap());
    let committed = threadline::transaction_blocking(conn, &ctx, |conn| {
        sql_query(format!("INSERT INTO posts VALUES ({id}, 'title {id}')")).execute(conn)?;
        Ok::<_, Error>(())
    })
    .unwrap();
    let at = (cutoff() + offset).to_rfc3339();
    let tx = committed.transaction_id.unwrap();
    exec(
        conn,
        &format!(
            "UPDATE threadline.audit_changes SET captured_at = '{at}' WHERE transaction_id = {tx};
             UPDATE threadline.audit_transactions SET occurred_at = '{at}' WHERE id = {tx};"
        ),
    );
}

fn setup_posts() -> (TestDatabase, PgConnection) {
    let (db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text); SELECT threadline.audit_table('posts');",
    );
    (db, conn)
}

fn micros(n: i64) -> TimeDelta {
    TimeDelta::microseconds(n)
}

#[test]
fn the_cutoff_is_exclusive_to_the_microsecond_and_a_dry_run_deletes_nothing() {
    let (_db, mut conn) = setup_posts();
    for (id, offset) in [
        (1, TimeDelta::days(-3)),
        (2, micros(-1)),
        (3, micros(0)),
        (4, micros(1)),
    ] {
        post_at(&mut conn, id, offset);
    }
    let plan = purge().dry_run_blocking(&mut conn).unwrap();
    assert_eq!((plan.cutoff, plan.changes, plan.transactions), (cutoff(), 2, 2));
    assert_eq!(changes(&mut conn).len(), 4, "a dry run deletes nothing");

    let mut seen = Vec::new();
    let done = purge()
        .batch_size(1)
        .unwrap()
        .execute_blocking(&mut conn, |run| seen.push(run.changes_deleted))
        .unwrap();
    assert_eq!(seen, [1, 2, 2], "two batches of one, then an empty one");
    let run = &done.run;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!((run.changes_deleted, run.transactions_deleted, run.batches), (2, 2, 3));
    assert_eq!((run.cutoff, run.more_left, done.abandoned.len()), (cutoff(), false, 0));
    let left: Vec<String> = changes(&mut conn)
        .iter()
        .map(|c| c.table_pk["id"].to_string())
        .collect();
    assert_eq!(left, ["\"3\"", "\"4\""], "the change at the cutoff stays");
    assert_eq!(transactions(&mut conn).len(), 2);
    assert_eq!(actions(&mut conn).len(), 4, "actions are never pruned");
    let plan = purge().dry_run_blocking(&mut conn).unwrap();
    assert_eq!((plan.changes, plan.transactions), (0, 0));
}

#[test]
fn a_transaction_with_changes_after_the_cutoff_stays_and_max_batches_says_more_is_left() {
    let (_db, mut conn) = setup_posts();
    for id in 1..=5 {
        post_at(&mut conn, id, TimeDelta::days(-id64(id)));
    }
    // One transaction whose two changes straddle the cutoff.
    post_at(&mut conn, 10, TimeDelta::days(-1));
    exec(
        &mut conn,
        &format!(
            "INSERT INTO posts VALUES (11, 'same transaction');
             UPDATE threadline.audit_changes SET transaction_id = (SELECT transaction_id FROM threadline.audit_changes
                    WHERE table_pk = '{{\"id\": \"10\"}}'), captured_at = '{}'
              WHERE table_pk = '{{\"id\": \"11\"}}';
             DELETE FROM threadline.audit_transactions t
              WHERE NOT EXISTS (SELECT 1 FROM threadline.audit_changes c WHERE c.transaction_id = t.id);",
            (cutoff() + TimeDelta::days(1)).to_rfc3339()
        ),
    );
    let plan = purge().dry_run_blocking(&mut conn).unwrap();
    assert_eq!(
        (plan.changes, plan.transactions),
        (6, 5),
        "the straddling transaction stays"
    );
    let first = purge()
        .batch_size(2)
        .unwrap()
        .max_batches(1)
        .unwrap()
        .execute_blocking(&mut conn, |_| {})
        .unwrap();
    assert_eq!((first.run.changes_deleted, first.run.more_left), (2, true));
    let rest = purge().execute_blocking(&mut conn, |_| {}).unwrap();
    assert_eq!(
        (
            rest.run.changes_deleted,
            rest.run.transactions_deleted,
            rest.run.more_left
        ),
        (4, 3, false)
    );
    assert_eq!(
        transactions(&mut conn).len(),
        1,
        "the straddling transaction keeps its later change"
    );
    assert_eq!(changes(&mut conn).len(), 1);
    let runs = threadline::retention::runs_blocking(&mut conn, 10).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [rest.run.id, first.run.id]
    );
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Completed && r.finished_at.is_some())
    );
}

fn id64(id: i32) -> i64 {
    i64::from(id)
}

#[test]
fn a_second_purge_is_refused_while_one_runs_and_neither_deletes_twice() {
    let (db, mut conn) = setup_posts();
    for id in 1..=6 {
        post_at(&mut conn, id, TimeDelta::days(-1));
    }
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    let url = db.url().to_owned();
    let first = std::thread::spawn(move || {
        let mut conn = diesel::Connection::establish(&url).unwrap();
        let mut batches = 0;
        purge()
            .batch_size(2)
            .unwrap()
            .execute_blocking(&mut conn, |_| {
                batches += 1;
                if batches == 1 {
                    paused_tx.send(()).unwrap();
                    resume_rx.recv().unwrap();
                }
            })
            .unwrap()
    });
    paused_rx.recv().unwrap();
    let refused = purge().execute_blocking(&mut conn, |_| {}).unwrap_err();
    assert!(matches!(refused, Error::Locked(_)), "{refused}");
    let message = refused.to_string();
    assert!(
        message.starts_with("another retention run holds the lock (run ") && message.ends_with("nothing was deleted"),
        "{message}"
    );
    assert_eq!(changes(&mut conn).len(), 4, "the refused run deleted nothing");
    resume_tx.send(()).unwrap();
    let done = first.join().unwrap();
    assert_eq!(done.run.changes_deleted, 6);
    assert_eq!(changes(&mut conn).len(), 0);
    assert_eq!(
        threadline::retention::runs_blocking(&mut conn, 10).unwrap().len(),
        1,
        "the refused run left no row"
    );
}

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = BigInt)]
    pid: i64,
}

#[test]
fn a_run_whose_session_dies_is_abandoned_and_the_next_one_finishes_the_job() {
    let (db, mut conn) = setup_posts();
    for id in 1..=6 {
        post_at(&mut conn, id, TimeDelta::days(-1));
    }
    let mut doomed: PgConnection = diesel::Connection::establish(db.url()).unwrap();
    let pid = sql_query("SELECT pg_backend_pid()::bigint AS pid")
        .get_result::<Pid>(&mut doomed)
        .unwrap()
        .pid;
    let mut killer: PgConnection = diesel::Connection::establish(db.url()).unwrap();
    let failed = purge().batch_size(2).unwrap().execute_blocking(&mut doomed, |_| {
        exec(&mut killer, &format!("SELECT pg_terminate_backend({pid}, 5000)"));
    });
    assert!(failed.is_err(), "the killed session's run cannot finish");
    let runs = threadline::retention::runs_blocking(&mut conn, 10).unwrap();
    assert_eq!(
        (runs[0].status, runs[0].changes_deleted),
        (RunStatus::Running, 2),
        "{runs:?}"
    );

    let next = purge().execute_blocking(&mut conn, |_| {}).unwrap();
    assert_eq!(next.abandoned, [runs[0].id]);
    assert_eq!(next.run.changes_deleted, 4, "it finishes the job");
    let runs = threadline::retention::runs_blocking(&mut conn, 10).unwrap();
    assert_eq!(runs[1].status, RunStatus::Abandoned);
    assert_eq!(
        runs[1].error.as_deref(),
        Some("its session ended before the run finished")
    );
}

#[test]
fn reads_after_a_purge_say_where_the_trail_begins() {
    let (_db, mut conn) = setup_posts();
    post_at(&mut conn, 1, TimeDelta::days(-2));
    exec(&mut conn, "UPDATE posts SET title = 'renamed' WHERE id = 1");
    assert_eq!(threadline::retention::horizon_blocking(&mut conn).unwrap(), None);
    purge().execute_blocking(&mut conn, |_| {}).unwrap();
    assert_eq!(
        threadline::retention::horizon_blocking(&mut conn).unwrap(),
        Some(cutoff())
    );
    let reader = Reader::new();
    let posts = "posts".parse().unwrap();
    let history = reader
        .row_history_blocking(&mut conn, &posts, &RowKey::from(1))
        .unwrap();
    assert_eq!(history.entries.len(), 1, "only the update after the cutoff is left");
    let before = reader.as_of_blocking(&mut conn, &posts, &RowKey::from(1), cutoff() - TimeDelta::days(1));
    assert!(matches!(before, Ok(AsOf::BeforeHorizon)), "{before:?}");
}

#[derive(QueryableByName)]
struct Status {
    #[diesel(sql_type = Text)]
    status: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pruner_purges_on_its_interval_until_stopped() {
    let (db, mut conn) = setup_posts();
    post_at(&mut conn, 1, TimeDelta::days(-2));
    let manager =
        diesel_async::pooled_connection::AsyncDieselConnectionManager::<diesel_async::AsyncPgConnection>::new(db.url());
    let pool = diesel_async::pooled_connection::bb8::Pool::builder()
        .max_size(2)
        .build(manager)
        .await
        .unwrap();
    let pruner = threadline::retention::Pruner::start(pool, purge(), Duration::from_millis(50));
    let mut completed = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        completed = sql_query("SELECT status FROM threadline.retention_runs")
            .load::<Status>(&mut conn)
            .unwrap()
            .iter()
            .filter(|r| r.status == "completed")
            .count();
        if completed >= 2 {
            break;
        }
    }
    pruner.stop().await;
    assert!(completed >= 2, "two runs on the interval, got {completed}");
    assert_eq!(changes(&mut conn).len(), 0);
    let after = sql_query("SELECT status FROM threadline.retention_runs")
        .load::<Status>(&mut conn)
        .unwrap()
        .len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let later = sql_query("SELECT status FROM threadline.retention_runs")
        .load::<Status>(&mut conn)
        .unwrap()
        .len();
    assert_eq!(after, later, "a stopped pruner runs no more");
}
