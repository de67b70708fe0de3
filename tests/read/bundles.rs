use serde_json::json;
use threadline::read::{ActorFilter, FieldValue, Op, Reader};
use threadline::{Action, ActionStatus, ActorRef, ActorType, Error};

use crate::{ctx, seeded, write, write_action};

#[test]
fn an_incident_shows_the_transaction_its_action_and_per_field_diffs() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:42", "req-1", "flow-1", "acme");
    write(
        &mut conn,
        &c,
        "INSERT INTO posts (id, title, email) VALUES (1, 'old', 'a@example.com'), (2, 'gone', null);
         INSERT INTO notes VALUES (1, 'note')",
    );
    let tx = write_action(
        &mut conn,
        &c,
        "cleanup",
        "UPDATE posts SET title = 'new', email = 'b@example.com' WHERE id = 1;
         DELETE FROM posts WHERE id = 2;
         UPDATE notes SET body = 'edited' WHERE id = 1;
         INSERT INTO posts (id, title) VALUES (3, 'fresh')",
    );
    let incident = Reader::new()
        .incident_bundle_blocking(&mut conn, tx, None, 100)
        .unwrap();
    assert_eq!(incident.transaction.id, tx);
    assert_eq!(incident.transaction.actor, Some(ActorRef::user("42").unwrap()));
    assert_eq!(incident.transaction.request_id.as_deref(), Some("req-1"));
    let action = incident.transaction.action.as_ref().unwrap();
    assert_eq!((action.name.as_str(), action.status.as_str()), ("cleanup", "ok"));

    let changes = &incident.changes.entries;
    let ops: Vec<(Op, &str)> = changes
        .iter()
        .map(|d| (d.change.op, d.change.table_name.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (Op::Update, "posts"),
            (Op::Delete, "posts"),
            (Op::Update, "notes"),
            (Op::Insert, "posts")
        ],
        "capture order"
    );
    assert_eq!(
        incident.transaction.occurred_at, changes[0].change.captured_at,
        "a transaction occurs when its first change is captured"
    );
    let update = &changes[0].fields;
    assert_eq!(update.len(), 2);
    assert_eq!(update[0].name, "email");
    assert_eq!(update[0].before, FieldValue::Value(json!("[REDACTED]")));
    assert_eq!(update[1].name, "title");
    assert_eq!(
        (&update[1].before, &update[1].after),
        (&FieldValue::Value(json!("old")), &FieldValue::Value(json!("new")))
    );
    let delete = &changes[1].fields;
    assert!(
        delete
            .iter()
            .all(|f| f.after == FieldValue::Absent && matches!(f.before, FieldValue::Value(_)))
    );
    let note = &changes[2].fields;
    assert_eq!(
        note[0].before,
        FieldValue::NotKept,
        "changed_from: false keeps no prior value"
    );
    assert_eq!(note[0].after, FieldValue::Value(json!("edited")));
    let insert = &changes[3].fields;
    assert!(insert.iter().all(|f| f.before == FieldValue::Absent));

    let shown = serde_json::to_value(&incident).unwrap();
    assert_eq!(
        shown["changes"]["entries"][2]["fields"][0],
        json!({"name": "body", "after": "edited", "before_state": "not_kept"})
    );
}

#[test]
fn a_large_incident_opens_page_by_page() {
    let (_db, mut conn) = seeded();
    let tx = write(
        &mut conn,
        &ctx("user:1", "r", "f", "t"),
        "INSERT INTO posts (id, title) SELECT i, 't' || i FROM generate_series(1, 25) i",
    );
    let reader = Reader::new();
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let incident = reader
            .incident_bundle_blocking(&mut conn, tx, cursor.as_ref(), 10)
            .unwrap();
        ids.extend(incident.changes.entries.iter().map(|d| d.change.id));
        match incident.changes.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids.len(), 25);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(
        reader.incident_bundle_blocking(&mut conn, tx + 1000, None, 10),
        Err(Error::NotFound { what: "transaction" })
    ));
}

#[test]
fn actor_history_pages_an_actor_s_transactions() {
    let (_db, mut conn) = seeded();
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(write(
            &mut conn,
            &ctx("user:42", &format!("r{i}"), "f", "t"),
            &format!("INSERT INTO posts (id, title) VALUES ({i}, 't')"),
        ));
        write(
            &mut conn,
            &ctx("user:43", "r", "f", "t"),
            &format!("INSERT INTO notes VALUES ({i}, 'n')"),
        );
    }
    let reader = Reader::new();
    let actor = ActorFilter::Is(ActorRef::user("42").unwrap());
    let first = reader.actor_history_blocking(&mut conn, &actor, None, 3).unwrap();
    let rest = reader
        .actor_history_blocking(&mut conn, &actor, first.next_cursor.as_ref(), 3)
        .unwrap();
    assert!(!rest.has_more());
    let ids: Vec<i64> = first.entries.iter().chain(&rest.entries).map(|t| t.id).collect();
    mine.reverse();
    assert_eq!(ids, mine, "newest first");
    let users = reader
        .actor_history_blocking(&mut conn, &ActorFilter::OfType(ActorType::User), None, 100)
        .unwrap();
    assert_eq!(users.entries.len(), 10);
    let admins = reader
        .actor_history_blocking(&mut conn, &ActorFilter::OfType(ActorType::Admin), None, 100)
        .unwrap();
    assert!(admins.entries.is_empty());
}

#[test]
fn a_correlation_bundle_holds_failed_attempts_and_changes() {
    let (_db, mut conn) = seeded();
    let c = ctx("user:42", "req-1", "checkout-9", "acme");
    write_action(
        &mut conn,
        &c,
        "order_placed",
        "INSERT INTO posts (id, title) VALUES (1, 'order')",
    );
    threadline::record_action_blocking(
        &mut conn,
        &c,
        &Action::new("payment_captured")
            .unwrap()
            .with_status(ActionStatus::Error),
    )
    .unwrap();
    write(
        &mut conn,
        &ctx("job:mailer", "req-2", "checkout-9", "acme"),
        "INSERT INTO notes VALUES (1, 'mail sent')",
    );
    write(
        &mut conn,
        &ctx("user:1", "req-3", "other", "acme"),
        "INSERT INTO notes VALUES (2, 'other')",
    );

    let bundle = Reader::new()
        .correlation_bundle_blocking(&mut conn, "checkout-9", None, 100)
        .unwrap();
    let actions: Vec<(&str, &str)> = bundle
        .actions
        .iter()
        .map(|a| (a.name.as_str(), a.status.as_str()))
        .collect();
    assert_eq!(actions, [("order_placed", "ok"), ("payment_captured", "error")]);
    assert!(!bundle.actions_truncated);
    let tables: Vec<&str> = bundle.changes.entries.iter().map(|c| c.table_name.as_str()).collect();
    assert_eq!(tables, ["notes", "posts"]);
    assert!(matches!(
        Reader::new().correlation_bundle_blocking(&mut conn, "never", None, 100),
        Err(Error::NotFound { what: "correlation id" })
    ));
}
