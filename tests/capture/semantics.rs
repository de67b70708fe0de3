use serde_json::json;

use crate::support::{changes, changes_of, exec, exec_err, setup, transactions};

const SCHEMA: &str = "
    CREATE TABLE posts (id int PRIMARY KEY, title text, body text, updated_at timestamptz DEFAULT now());
    CREATE TABLE comments (id int PRIMARY KEY, post_id int, body text);
    SELECT threadline.audit_table('posts', '{\"ignore_changes\": [\"updated_at\"]}');
    SELECT threadline.audit_table('comments');";

#[test]
fn one_audit_transaction_per_database_transaction() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "BEGIN;
         INSERT INTO posts (id, title) VALUES (1, 'a'), (2, 'b');
         UPDATE posts SET title = 'a2' WHERE id = 1;
         INSERT INTO comments VALUES (1, 1, 'hi');
         DELETE FROM posts WHERE id = 2;
         COMMIT;
         INSERT INTO posts (id, title) VALUES (3, 'c');",
    );
    let txs = transactions(&mut conn);
    assert_eq!(txs.len(), 2, "{txs:?}");
    let recorded = changes(&mut conn);
    let ops: Vec<(&str, &str, i64)> = recorded
        .iter()
        .map(|c| (c.table_name.as_str(), c.op.as_str(), c.transaction_id))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("posts", "insert", txs[0].id),
            ("posts", "insert", txs[0].id),
            ("posts", "update", txs[0].id),
            ("comments", "insert", txs[0].id),
            ("posts", "delete", txs[0].id),
            ("posts", "insert", txs[1].id),
        ]
    );
    assert_eq!(recorded[2].changed_fields, Some(vec!["title".to_owned()]));
    assert_eq!(recorded[2].changed_from, Some(json!({"title": "a"})));
    assert_eq!(
        recorded[4].data.as_ref().unwrap()["title"],
        "b",
        "a delete keeps the row as it was"
    );
}

#[test]
fn rollback_leaves_no_trace() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "BEGIN; INSERT INTO posts (id, title) VALUES (1, 'gone'); ROLLBACK;
         BEGIN;
         INSERT INTO posts (id, title) VALUES (2, 'kept');
         SAVEPOINT s1;
         UPDATE posts SET title = 'undone' WHERE id = 2;
         INSERT INTO comments VALUES (9, 2, 'undone');
         ROLLBACK TO SAVEPOINT s1;
         UPDATE posts SET title = 'kept too' WHERE id = 2;
         COMMIT;",
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(recorded[0].data.as_ref().unwrap()["title"], "kept");
    assert_eq!(recorded[1].changed_from, Some(json!({"title": "kept"})));
    assert_eq!(transactions(&mut conn).len(), 1);
}

#[test]
fn a_savepoint_that_opened_the_audit_transaction_can_be_rolled_back() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "BEGIN;
         SAVEPOINT s1;
         INSERT INTO posts (id, title) VALUES (1, 'undone');
         ROLLBACK TO SAVEPOINT s1;
         INSERT INTO posts (id, title) VALUES (2, 'kept');
         COMMIT;",
    );
    let recorded = changes(&mut conn);
    let txs = transactions(&mut conn);
    assert_eq!(recorded.len(), 1);
    assert_eq!(txs.len(), 1);
    assert_eq!(recorded[0].transaction_id, txs[0].id);
}

#[test]
fn no_op_updates_and_zero_row_statements_write_nothing() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(&mut conn, "INSERT INTO posts (id, title) VALUES (1, 'a'), (2, 'b')");
    let before = (changes(&mut conn).len(), transactions(&mut conn).len());
    exec(
        &mut conn,
        "UPDATE posts SET title = title;
         UPDATE posts SET updated_at = now() + interval '1 day';
         UPDATE posts SET title = 'x' WHERE id = 99;
         DELETE FROM posts WHERE id = 99;
         INSERT INTO posts SELECT * FROM posts WHERE false;",
    );
    assert_eq!((changes(&mut conn).len(), transactions(&mut conn).len()), before);
    exec(
        &mut conn,
        "UPDATE posts SET title = 'changed', updated_at = now() WHERE id = 1",
    );
    let last = changes(&mut conn).pop().unwrap();
    assert_eq!(
        last.changed_fields,
        Some(vec!["title".to_owned()]),
        "ignored columns are not listed"
    );
    assert_eq!(last.changed_from, Some(json!({"title": "a"})));
}

#[test]
fn an_update_of_many_rows_records_only_the_rows_that_changed() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "INSERT INTO posts (id, title, body) SELECT g, 't' || g, 'b' FROM generate_series(1, 50) g;
         UPDATE posts SET body = CASE WHEN id % 10 = 0 THEN 'changed' ELSE body END;",
    );
    let updates: Vec<_> = changes(&mut conn).into_iter().filter(|c| c.op == "update").collect();
    let keys: Vec<_> = updates
        .iter()
        .map(|c| c.table_pk["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 5);
    for key in ["10", "20", "30", "40", "50"] {
        assert!(keys.contains(&key.to_owned()), "{keys:?}");
    }
    assert!(updates.iter().all(|c| c.changed_from == Some(json!({"body": "b"}))));
}

#[test]
fn changed_from_can_be_turned_off() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE notes (id int PRIMARY KEY, body text);
         SELECT threadline.audit_table('notes', '{\"changed_from\": false}');
         INSERT INTO notes VALUES (1, 'a');
         UPDATE notes SET body = 'b';",
    );
    let update = changes(&mut conn).pop().unwrap();
    assert_eq!(update.changed_fields, Some(vec!["body".to_owned()]));
    assert_eq!(update.changed_from, None);
}

#[test]
fn truncate_is_recorded_as_one_change() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "INSERT INTO posts (id, title) SELECT g, 't' FROM generate_series(1, 20) g;
         TRUNCATE posts;",
    );
    let truncates: Vec<_> = changes_of(&mut conn, "posts")
        .into_iter()
        .filter(|c| c.op == "truncate")
        .collect();
    assert_eq!(truncates.len(), 1);
    assert_eq!(truncates[0].table_pk, json!({}));
    assert_eq!(truncates[0].data, None);
}

#[test]
fn writes_without_context_are_captured_with_no_actor() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(&mut conn, "INSERT INTO posts (id, title) VALUES (1, 'from psql')");
    let txs = transactions(&mut conn);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].actor, None);
    assert_eq!(txs[0].request_id, None);
    assert_eq!(txs[0].source, None);
}

#[test]
fn a_console_user_attributes_a_manual_fix_with_set_actor() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        r#"BEGIN;
           INSERT INTO posts (id, title) VALUES (1, 'before set_actor');
           SELECT threadline.set_actor('{"type": "admin", "id": "7"}');
           UPDATE posts SET title = 'fixed' WHERE id = 1;
           COMMIT;
           INSERT INTO posts (id, title) VALUES (2, 'next transaction');"#,
    );
    let txs = transactions(&mut conn);
    assert_eq!(txs.len(), 2);
    assert_eq!(
        txs[0].actor,
        Some(json!({"type": "admin", "id": "7"})),
        "the whole transaction is attributed"
    );
    assert_eq!(txs[0].source.as_deref(), Some("console"));
    assert_eq!(txs[1].actor, None, "set_actor lasts until commit");
    for (bad, expected) in [
        (r#"{"type": "wizard", "id": "1"}"#, "unknown actor type"),
        (r#"{"type": "user"}"#, "needs an \"id\" string"),
        (r#"{"type": "user", "id": ""}"#, "1 to 255 bytes"),
        (r#"{"type": "anonymous", "id": "1"}"#, "anonymous actor has no id"),
        (r#"{"type": "user", "id": "1", "name": "x"}"#, "only the keys"),
    ] {
        let message = exec_err(&mut conn, &format!("SELECT threadline.set_actor('{bad}')"));
        assert!(message.contains(expected), "{bad}: {message}");
    }
}

#[test]
fn strict_mode_refuses_writes_without_an_actor() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(&mut conn, "SELECT threadline.require_actor(true)");
    let message = exec_err(&mut conn, "INSERT INTO posts (id, title) VALUES (1, 'anonymous fix')");
    assert!(
        message.contains("has no actor and the database requires one"),
        "{message}"
    );
    exec(
        &mut conn,
        r#"BEGIN; SELECT threadline.set_actor('{"type": "user", "id": "3"}');
           INSERT INTO posts (id, title) VALUES (1, 'attributed'); COMMIT;"#,
    );
    assert_eq!(changes(&mut conn).len(), 1);
    exec(
        &mut conn,
        "SELECT threadline.require_actor(false); INSERT INTO posts (id, title) VALUES (2, 'ok again')",
    );
    assert_eq!(changes(&mut conn).len(), 2);
}

#[test]
fn captured_at_follows_the_order_of_writes_within_a_transaction() {
    let (_db, mut conn) = setup();
    exec(&mut conn, SCHEMA);
    exec(
        &mut conn,
        "BEGIN;
         INSERT INTO posts (id, title) VALUES (1, 'a');
         SELECT pg_sleep(0.01);
         UPDATE posts SET title = 'b';
         COMMIT;",
    );
    #[derive(diesel::QueryableByName)]
    struct Later {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        later: bool,
    }
    let rows: Vec<Later> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT (max(captured_at) FILTER (WHERE op = 'update')) > (max(captured_at) FILTER (WHERE op = 'insert')) AS later
               FROM threadline.audit_changes",
        ),
        &mut conn,
    )
    .unwrap();
    assert!(
        rows[0].later,
        "captured_at is the clock at capture, not the transaction start"
    );
}
