use serde_json::json;
use threadline::Error;
use threadline::read::{DEFAULT_HISTORY_LIMIT, Op, Reader, RowKey};

use crate::{ctx, seeded, table, write, write_action};

#[test]
fn a_row_s_history_is_newest_first_and_redacted_as_captured() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:42", "req-1", "flow-1", "acme");
    write_action(
        &mut conn,
        &c,
        "post_created",
        "INSERT INTO posts VALUES (7, 'draft', 'b', 'a@example.com', 'hunter2'), (8, 'other', null, null, null)",
    );
    write(&mut conn, &c, "UPDATE posts SET title = 'final' WHERE id = 7");
    write(
        &mut conn,
        &c,
        "UPDATE posts SET email = 'b@example.com', secret = 'hunter3' WHERE id = 7",
    );
    write_action(&mut conn, &c, "post_deleted", "DELETE FROM posts WHERE id = 7");

    let history = Reader::new()
        .row_history_blocking(&mut conn, &table("posts"), &RowKey::from(7))
        .unwrap();
    let ops: Vec<Op> = history.entries.iter().map(|c| c.op).collect();
    assert_eq!(ops, [Op::Delete, Op::Update, Op::Update, Op::Insert]);
    assert!(
        history
            .entries
            .iter()
            .all(|c| c.table_pk.get("id") == Some(&json!("7")))
    );
    assert_eq!(history.entries[0].action.as_deref(), Some("post_deleted"));
    assert_eq!(history.entries[3].action.as_deref(), Some("post_created"));
    assert_eq!(history.entries[2].changed_fields, ["title"]);
    assert_eq!(
        history.entries[2].changed_from.clone().map(serde_json::Value::Object),
        Some(json!({"title": "draft"}))
    );
    assert_eq!(
        history.entries[1].changed_fields,
        ["email"],
        "the excluded column is not a field at all"
    );
    assert_eq!(history.entries[1].data.as_ref().unwrap()["email"], json!("[REDACTED]"));
    let text = serde_json::to_string(&history).unwrap();
    assert!(!text.contains("hunter") && !text.contains("@example.com"), "{text}");
}

#[test]
fn keys_are_matched_as_capture_rendered_them() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:1", "r", "f", "t");
    write(
        &mut conn,
        &c,
        "INSERT INTO posts (id, title) VALUES (42, 'x');
         INSERT INTO memberships VALUES ('acme', 5, 'owner'), ('acme', 6, 'member');
         UPDATE memberships SET role = 'admin' WHERE member = 5",
    );
    let reader = Reader::new();
    let history = |conn: &mut diesel::PgConnection, t: &str, key: &str| {
        reader.row_history_blocking(conn, &table(t), &key.parse::<RowKey>().unwrap())
    };
    assert_eq!(history(&mut conn, "posts", "0042").unwrap().entries.len(), 1);
    assert_eq!(history(&mut conn, "posts", "id=42").unwrap().entries.len(), 1);
    let member = history(&mut conn, "memberships", "member=5,org=acme").unwrap();
    assert_eq!(member.entries.len(), 2);
    assert_eq!(
        member.entries[0].table_pk,
        json!({"org": "acme", "member": "5"}).as_object().unwrap().clone()
    );
    assert_eq!(
        history(&mut conn, "memberships", r#"{"org": "acme", "member": 6}"#)
            .unwrap()
            .entries
            .len(),
        1
    );

    for (t, key, says) in [
        ("memberships", "org=acme", "has the columns (org, member)"),
        ("memberships", "acme", "composite key"),
        ("memberships", "org=acme,member=5,role=x", "got"),
        ("posts", "forty-two", "not a valid bigint"),
        ("posts", "99999999999999999999", "not a valid bigint"),
    ] {
        match history(&mut conn, t, key) {
            Err(Error::Invalid {
                field: "row key",
                reason,
            }) => assert!(reason.contains(says), "{key}: {reason}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert!(matches!(
        history(&mut conn, "posts", "43"),
        Err(Error::NotFound { what: "row" })
    ));
    assert!(matches!(
        history(&mut conn, "nowhere", "1"),
        Err(Error::NotFound { what: "audited table" })
    ));
    assert!("a=1,,b=2".parse::<RowKey>().is_err());
    assert!("a=1,a=2".parse::<RowKey>().is_err());
}

#[test]
fn history_is_bounded_by_default_and_pages_the_rest() {
    let (_db, mut conn) = seeded();
    let updates: String = (0..DEFAULT_HISTORY_LIMIT + 4)
        .map(|i| format!("UPDATE posts SET title = 't{i}' WHERE id = 1;"))
        .collect();
    write(
        &mut conn,
        &ctx("user:1", "r", "f", "t"),
        &format!("INSERT INTO posts (id, title) VALUES (1, 'start'), (2, 'other'); {updates}"),
    );
    let reader = Reader::new();
    let key = RowKey::from(1);
    let first = reader.row_history_blocking(&mut conn, &table("posts"), &key).unwrap();
    assert_eq!(first.entries.len(), DEFAULT_HISTORY_LIMIT);
    assert!(first.has_more());
    let rest = reader
        .row_history_page_blocking(&mut conn, &table("posts"), &key, first.next_cursor.as_ref(), 1000)
        .unwrap();
    assert_eq!(rest.entries.len(), 5);
    assert!(!rest.has_more());
    assert_eq!(rest.entries.last().unwrap().op, Op::Insert);
    let other = reader.row_history_page_blocking(
        &mut conn,
        &table("posts"),
        &RowKey::from(2),
        first.next_cursor.as_ref(),
        10,
    );
    assert!(
        matches!(other, Err(Error::InvalidCursor(_))),
        "a cursor belongs to its row"
    );
}

#[test]
fn a_table_no_longer_audited_keeps_a_readable_history() {
    let (_db, mut conn) = seeded();
    write(
        &mut conn,
        &ctx("user:1", "r", "f", "t"),
        "INSERT INTO notes VALUES (3, 'kept')",
    );
    crate::support::exec(&mut conn, "SELECT threadline.unaudit_table('notes'); DROP TABLE notes;");
    let history = Reader::new()
        .row_history_blocking(&mut conn, &table("notes"), &RowKey::from(3))
        .unwrap();
    assert_eq!(history.entries[0].data, Some(json!({"id": 3, "body": "kept"})));
}
