use std::collections::HashSet;

use serde_json::json;
use threadline::read::{Change, Filter, Op, Page, Reader};
use threadline::{ActorRef, ActorType, Error};

use crate::{ctx, seeded, write, write_action};

/// Every change of the timeline, following cursors with `page_size`.
fn all_pages(conn: &mut diesel::PgConnection, filter: &Filter, page_size: usize) -> Vec<Change> {
    let reader = Reader::new();
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page: Page<Change> = reader
            .timeline_page_blocking(conn, filter, cursor.as_ref(), page_size)
            .unwrap();
        assert!(page.entries.len() <= page_size);
        out.extend(page.entries);
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string().parse().unwrap()),
            None => return out,
        }
    }
}

#[test]
fn the_timeline_is_newest_first_with_each_change_s_context() {
    let (_db, mut conn) = seeded();
    let first = write_action(
        &mut conn,
        &ctx("user:42", "req-1", "flow-1", "acme"),
        "post_created",
        "INSERT INTO posts (id, title, email, secret) VALUES (1, 'hello', 'a@example.com', 's3cret')",
    );
    let second = write(
        &mut conn,
        &ctx("admin:7", "req-2", "flow-2", "globex"),
        "UPDATE posts SET title = 'hi', email = 'b@example.com' WHERE id = 1;
         INSERT INTO memberships VALUES ('acme', 5, 'owner')",
    );
    let page = Reader::new().timeline_blocking(&mut conn, &Filter::new()).unwrap();
    assert!(!page.has_more());
    let ops: Vec<(i64, Op, &str)> = page
        .entries
        .iter()
        .map(|c| (c.transaction_id, c.op, c.table_name.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (second, Op::Insert, "memberships"),
            (second, Op::Update, "posts"),
            (first, Op::Insert, "posts")
        ]
    );
    let update = &page.entries[1];
    assert_eq!(update.actor, Some(ActorRef::admin("7").unwrap()));
    assert_eq!(update.request_id.as_deref(), Some("req-2"));
    assert_eq!(update.correlation_id.as_deref(), Some("flow-2"));
    assert_eq!(update.tenant_id.as_deref(), Some("globex"));
    assert_eq!(update.action, None);
    assert_eq!(update.changed_fields, ["email", "title"]);
    assert_eq!(
        update.changed_from.clone().map(serde_json::Value::Object),
        Some(json!({"title": "hello", "email": "[REDACTED]"}))
    );
    let insert = &page.entries[2];
    assert_eq!(insert.action.as_deref(), Some("post_created"));
    assert_eq!(insert.table_pk.get("id"), Some(&json!("1")));
    assert_eq!(
        insert.data,
        Some(json!({"id": 1, "title": "hello", "body": null, "email": "[REDACTED]"}))
    );
    let ordered = page
        .entries
        .windows(2)
        .all(|w| (w[0].captured_at, w[0].id) > (w[1].captured_at, w[1].id));
    assert!(ordered, "captured_at DESC, id DESC");
}

#[test]
fn every_filter_selects_what_it_names() {
    let (_db, mut conn) = seeded();
    write_action(
        &mut conn,
        &ctx("user:42", "req-1", "flow-1", "acme"),
        "post_created",
        "INSERT INTO posts (id, title) VALUES (1, 'a'), (2, 'b')",
    );
    write(
        &mut conn,
        &ctx("user:43", "req-2", "flow-1", "acme"),
        "UPDATE posts SET title = 'c' WHERE id = 1",
    );
    write(
        &mut conn,
        &ctx("admin:7", "req-3", "flow-2", "globex"),
        "DELETE FROM posts WHERE id = 2; INSERT INTO memberships VALUES ('acme', 1, 'member')",
    );
    conn_exec(&mut conn, "INSERT INTO notes VALUES (1, 'from psql')");
    let count = |conn: &mut diesel::PgConnection, filter: Filter| all_pages(conn, &filter, 100).len();

    assert_eq!(count(&mut conn, Filter::new()), 6);
    assert_eq!(count(&mut conn, Filter::new().table("posts").unwrap()), 4);
    assert_eq!(count(&mut conn, Filter::new().table("public.memberships").unwrap()), 1);
    assert_eq!(count(&mut conn, Filter::new().table("other.posts").unwrap()), 0);
    assert_eq!(count(&mut conn, Filter::new().actor(ActorRef::user("42").unwrap())), 2);
    assert_eq!(count(&mut conn, Filter::new().actor(ActorType::User)), 3);
    assert_eq!(count(&mut conn, Filter::new().request_id("req-3").unwrap()), 2);
    assert_eq!(count(&mut conn, Filter::new().correlation_id("flow-1").unwrap()), 3);
    assert_eq!(count(&mut conn, Filter::new().action("post_created").unwrap()), 2);
    assert_eq!(count(&mut conn, Filter::new().op(Op::Delete)), 1);
    assert_eq!(count(&mut conn, Filter::new().tenant_id("globex").unwrap()), 2);
    let combined = Filter::new()
        .table("posts")
        .unwrap()
        .tenant_id("acme")
        .unwrap()
        .op(Op::Insert);
    assert_eq!(count(&mut conn, combined), 2);

    let everything = all_pages(&mut conn, &Filter::new(), 100);
    let middle = &everything[3];
    let exact = Filter::new()
        .from(middle.captured_at)
        .unwrap()
        .to(middle.captured_at)
        .unwrap();
    let hits = all_pages(&mut conn, &exact, 100);
    assert!(hits.iter().any(|c| c.id == middle.id), "both bounds are inclusive");
    assert!(hits.iter().all(|c| c.captured_at == middle.captured_at));
    let after = Filter::new()
        .from(middle.captured_at + chrono::Duration::microseconds(1))
        .unwrap();
    assert!(
        all_pages(&mut conn, &after, 100)
            .iter()
            .all(|c| c.captured_at > middle.captured_at)
    );
}

fn conn_exec(conn: &mut diesel::PgConnection, sql: &str) {
    crate::support::exec(conn, sql);
}

#[test]
fn pages_cover_the_timeline_without_gaps_or_duplicates() {
    let (_db, mut conn) = seeded();
    for i in 0..7 {
        write(
            &mut conn,
            &ctx("user:1", &format!("req-{i}"), "flow", "acme"),
            &format!(
                "INSERT INTO posts (id, title) VALUES ({}, 'a'), ({}, 'b'), ({}, 'c')",
                i * 3,
                i * 3 + 1,
                i * 3 + 2
            ),
        );
    }
    let whole = all_pages(&mut conn, &Filter::new(), 1000);
    assert_eq!(whole.len(), 21);
    for size in [1, 2, 7, 20, 21, 22] {
        let paged = all_pages(&mut conn, &Filter::new(), size);
        assert_eq!(
            paged.iter().map(|c| c.id).collect::<Vec<_>>(),
            whole.iter().map(|c| c.id).collect::<Vec<_>>(),
            "page size {size}"
        );
    }
    let exact = Reader::new()
        .timeline_page_blocking(&mut conn, &Filter::new(), None, 21)
        .unwrap();
    assert_eq!(exact.entries.len(), 21);
    assert!(!exact.has_more(), "has_more is exact when the last page is full");
}

#[test]
fn paging_while_changes_are_written_loses_and_repeats_nothing() {
    let (db, mut conn) = seeded();
    for i in 0..30 {
        write(
            &mut conn,
            &ctx("user:1", "req", "flow", "acme"),
            &format!("INSERT INTO posts (id, title) VALUES ({i}, 't')"),
        );
    }
    let before: HashSet<i64> = all_pages(&mut conn, &Filter::new(), 1000)
        .iter()
        .map(|c| c.id)
        .collect();
    // In lockstep: after each page the writer commits an insert and an update of a row
    // already paged or not yet paged, and the next page is read only once it has.
    let (go, orders) = std::sync::mpsc::channel::<()>();
    let (written, acks) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn({
        let url = db.url().to_owned();
        move || {
            use diesel::Connection;
            let mut conn = diesel::PgConnection::establish(&url).unwrap();
            let mut i = 100;
            while orders.recv().is_ok() {
                write(
                    &mut conn,
                    &ctx("user:2", "req", "flow", "acme"),
                    &format!(
                        "INSERT INTO posts (id, title) VALUES ({i}, 'new'); UPDATE posts SET title = 'x' WHERE id = {}",
                        i % 30
                    ),
                );
                i += 1;
                written.send(()).unwrap();
            }
            i - 100
        }
    });
    let reader = Reader::new();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = reader
            .timeline_page_blocking(&mut conn, &Filter::new(), cursor.as_ref(), 4)
            .unwrap();
        seen.extend(page.entries.iter().map(|c| c.id));
        go.send(()).unwrap();
        acks.recv().unwrap();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    drop(go);
    let writes = writer.join().unwrap();
    assert!(writes >= 8, "a write between every two pages: {writes}");
    let after: HashSet<i64> = all_pages(&mut conn, &Filter::new(), 1000)
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(after.len(), before.len() + 2 * writes, "the writes landed while paging");
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no change twice");
    assert_eq!(
        unique, before,
        "every change that existed when paging began, and none written since (they are newer)"
    );
}

#[test]
fn bad_cursors_and_page_sizes_are_refused() {
    let (_db, mut conn) = seeded();
    for i in 0..3 {
        write(
            &mut conn,
            &ctx("user:1", "req", "flow", "acme"),
            &format!("INSERT INTO posts (id, title) VALUES ({i}, 't')"),
        );
    }
    let reader = Reader::new();
    let posts = Filter::new().table("posts").unwrap();
    let first = reader.timeline_page_blocking(&mut conn, &posts, None, 1).unwrap();
    let cursor = first.next_cursor.unwrap();
    let other = Filter::new().table("notes").unwrap();
    let err = reader
        .timeline_page_blocking(&mut conn, &other, Some(&cursor), 1)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidCursor(_)), "{err}");
    assert!(matches!(
        "c1.garbage".parse::<threadline::read::Cursor>(),
        Err(Error::InvalidCursor(_))
    ));
    for size in [0, threadline::read::MAX_PAGE_SIZE + 1] {
        let err = reader
            .timeline_page_blocking(&mut conn, &posts, None, size)
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
    }
}

#[tokio::test]
async fn the_async_reads_match_the_blocking_ones() {
    let (db, mut conn) = seeded();
    write(
        &mut conn,
        &ctx("user:1", "req", "flow", "acme"),
        "INSERT INTO posts (id, title) VALUES (1, 'a'), (2, 'b')",
    );
    let mut async_conn = db.connect_async().await.unwrap();
    let reader = Reader::new();
    let filter = Filter::new().table("posts").unwrap();
    let blocking = reader.timeline_blocking(&mut conn, &filter).unwrap();
    let page = reader.timeline_page(&mut async_conn, &filter, None, 1).await.unwrap();
    let rest = reader
        .timeline_page(&mut async_conn, &filter, page.next_cursor.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!([page.entries, rest.entries].concat(), blocking.entries);
}
