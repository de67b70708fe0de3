use chrono::Duration;
use serde_json::json;
use threadline::Error;
use threadline::read::{AsOf, Change, Reader, RowKey};

use crate::{ctx, seeded, table, write};

fn history(conn: &mut diesel::PgConnection, t: &str, key: &RowKey) -> Vec<Change> {
    let mut changes = Reader::new()
        .row_history_blocking(conn, &table(t), key)
        .unwrap()
        .entries;
    changes.reverse();
    changes
}

fn as_of(conn: &mut diesel::PgConnection, t: &str, key: &RowKey, at: chrono::DateTime<chrono::Utc>) -> AsOf {
    Reader::new().as_of_blocking(conn, &table(t), key, at).unwrap()
}

fn title(state: &AsOf) -> Option<String> {
    match state {
        AsOf::Found(change) => Some(change.data.as_ref().unwrap()["title"].as_str().unwrap().to_owned()),
        _ => None,
    }
}

#[test]
fn as_of_is_exact_to_the_microsecond() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:1", "r", "f", "t");
    write(&mut conn, &c, "INSERT INTO posts (id, title) VALUES (1, 'one')");
    write(&mut conn, &c, "UPDATE posts SET title = 'two' WHERE id = 1");
    write(&mut conn, &c, "DELETE FROM posts WHERE id = 1");
    let key = RowKey::from(1);
    let steps = history(&mut conn, "posts", &key);
    let [insert, update, delete] = [&steps[0], &steps[1], &steps[2]];
    let us = Duration::microseconds(1);

    assert_eq!(
        as_of(&mut conn, "posts", &key, insert.captured_at - us),
        AsOf::BeforeHorizon
    );
    assert_eq!(
        title(&as_of(&mut conn, "posts", &key, insert.captured_at)).as_deref(),
        Some("one")
    );
    assert_eq!(
        title(&as_of(&mut conn, "posts", &key, update.captured_at - us)).as_deref(),
        Some("one")
    );
    assert_eq!(
        title(&as_of(&mut conn, "posts", &key, update.captured_at)).as_deref(),
        Some("two")
    );
    assert_eq!(
        title(&as_of(&mut conn, "posts", &key, delete.captured_at - us)).as_deref(),
        Some("two")
    );
    assert_eq!(
        as_of(&mut conn, "posts", &key, delete.captured_at),
        AsOf::Deleted { at: delete.captured_at }
    );
    assert_eq!(
        as_of(&mut conn, "posts", &key, delete.captured_at + Duration::days(1)),
        AsOf::Deleted { at: delete.captured_at }
    );
}

#[test]
fn a_later_truncate_counts_as_a_deletion() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:1", "r", "f", "t");
    write(
        &mut conn,
        &c,
        "INSERT INTO posts (id, title) VALUES (1, 'one'), (2, 'two')",
    );
    write(&mut conn, &c, "TRUNCATE posts");
    write(&mut conn, &c, "INSERT INTO posts (id, title) VALUES (2, 'again')");
    let truncate = Reader::new()
        .timeline_blocking(
            &mut conn,
            &threadline::read::Filter::new().op(threadline::read::Op::Truncate),
        )
        .unwrap()
        .entries
        .remove(0);
    let us = Duration::microseconds(1);
    assert_eq!(
        title(&as_of(&mut conn, "posts", &RowKey::from(1), truncate.captured_at - us)).as_deref(),
        Some("one")
    );
    assert_eq!(
        as_of(&mut conn, "posts", &RowKey::from(1), truncate.captured_at),
        AsOf::Deleted {
            at: truncate.captured_at
        }
    );
    let now = chrono::Utc::now() + Duration::seconds(1);
    assert_eq!(
        title(&as_of(&mut conn, "posts", &RowKey::from(2), now)).as_deref(),
        Some("again")
    );
}

#[test]
fn as_of_returns_the_row_as_captured_and_refuses_unknown_rows() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:1", "r", "f", "t");
    write(
        &mut conn,
        &c,
        "INSERT INTO posts VALUES (1, 'one', 'body', 'a@example.com', 'secret')",
    );
    write(&mut conn, &c, "INSERT INTO memberships VALUES ('acme', 1, 'member')");
    let now = chrono::Utc::now() + Duration::seconds(1);
    let AsOf::Found(change) = as_of(&mut conn, "posts", &RowKey::from(1), now) else {
        panic!("found")
    };
    assert_eq!(
        change.data,
        Some(json!({"id": 1, "title": "one", "body": "body", "email": "[REDACTED]"}))
    );
    let member = RowKey::columns([("org", "acme"), ("member", "1")]).unwrap();
    assert!(matches!(as_of(&mut conn, "memberships", &member, now), AsOf::Found(_)));
    let missing = Reader::new().as_of_blocking(&mut conn, &table("posts"), &RowKey::from(2), now);
    assert!(matches!(missing, Err(Error::NotFound { what: "row" })));
}

#[test]
fn a_truncated_partition_deletes_only_its_own_rows() {
    let (_db, mut conn) = seeded();
    crate::support::exec(
        &mut conn,
        "CREATE TABLE m (region text, id int, title text, PRIMARY KEY (region, id)) PARTITION BY LIST (region);
         CREATE TABLE m_eu PARTITION OF m FOR VALUES IN ('eu');
         CREATE TABLE m_us PARTITION OF m FOR VALUES IN ('us');
         CREATE TABLE m_rest PARTITION OF m DEFAULT;
         SELECT threadline.audit_table('m');",
    );
    let c = ctx("user:1", "r", "f", "t");
    write(
        &mut conn,
        &c,
        "INSERT INTO m VALUES ('eu', 1, 'eu one'), ('us', 2, 'us two'), ('apac', 3, 'apac three')",
    );
    write(&mut conn, &c, "TRUNCATE m_eu");
    let later = chrono::Utc::now() + Duration::seconds(1);
    let key = |region: &str, id: &str| RowKey::columns([("region", region), ("id", id)]).unwrap();
    assert!(matches!(
        as_of(&mut conn, "m", &key("eu", "1"), later),
        AsOf::Deleted { .. }
    ));
    assert_eq!(
        title(&as_of(&mut conn, "m", &key("us", "2"), later)).as_deref(),
        Some("us two")
    );
    assert_eq!(
        title(&as_of(&mut conn, "m", &key("apac", "3"), later)).as_deref(),
        Some("apac three")
    );
    write(&mut conn, &c, "TRUNCATE m");
    let later = chrono::Utc::now() + Duration::seconds(1);
    for (region, id) in [("eu", "1"), ("us", "2"), ("apac", "3")] {
        assert!(
            matches!(as_of(&mut conn, "m", &key(region, id), later), AsOf::Deleted { .. }),
            "{region}"
        );
    }
}
