use serde_json::json;

use crate::support::{changes, exec, setup};

#[test]
fn writes_to_a_partitioned_table_are_captured_under_the_parent_name() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE events (id int, region int, body text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
         SELECT threadline.audit_table('events');
         CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
         CREATE TABLE events_3 (id int NOT NULL, region int NOT NULL, body text);
         ALTER TABLE events ATTACH PARTITION events_3 FOR VALUES IN (3);
         INSERT INTO events VALUES (1, 1, 'through the parent');
         INSERT INTO events_1 VALUES (2, 1, 'straight to a partition');
         INSERT INTO events_2 VALUES (3, 2, 'partition created later');
         INSERT INTO events_3 VALUES (4, 3, 'partition attached later');
         UPDATE events SET region = 2 WHERE id = 1;
         UPDATE events_2 SET body = 'edited' WHERE id = 3;
         DELETE FROM events_3;",
    );
    let recorded = changes(&mut conn);
    assert!(
        recorded
            .iter()
            .all(|c| c.table_name == "events" && c.table_schema == "public")
    );
    let mut summary: Vec<String> = recorded
        .iter()
        .map(|c| format!("{} {} {}", c.op, c.table_pk, c.from_update))
        .collect();
    let mut expected: Vec<String> = vec![
        ("insert", json!({"id": "1", "region": "1"}), false),
        ("insert", json!({"id": "2", "region": "1"}), false),
        ("insert", json!({"id": "3", "region": "2"}), false),
        ("insert", json!({"id": "4", "region": "3"}), false),
        // moving a row between partitions changes its key (region is part of it)
        ("insert", json!({"id": "1", "region": "2"}), true),
        ("delete", json!({"id": "1", "region": "1"}), true),
        ("update", json!({"id": "3", "region": "2"}), false),
        ("delete", json!({"id": "4", "region": "3"}), false),
    ]
    .into_iter()
    .map(|(op, pk, from_update)| format!("{op} {pk} {from_update}"))
    .collect();
    summary.sort();
    expected.sort();
    assert_eq!(summary, expected);
}

#[test]
fn truncating_a_partitioned_table_records_each_emptied_partition() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE events (id int, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
         CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
         SELECT threadline.audit_table('events');
         TRUNCATE events;
         TRUNCATE events_2;",
    );
    let partitions: Vec<_> = changes(&mut conn).into_iter().map(|c| (c.op, c.data)).collect();
    assert_eq!(
        partitions,
        vec![
            ("truncate".to_owned(), Some(json!({"partition": "public.events_1"}))),
            ("truncate".to_owned(), Some(json!({"partition": "public.events_2"}))),
            ("truncate".to_owned(), Some(json!({"partition": "public.events_2"}))),
        ]
    );
}

#[test]
fn a_detached_partition_is_no_longer_captured() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE events (id int, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
         SELECT threadline.audit_table('events');
         ALTER TABLE events DETACH PARTITION events_1;
         INSERT INTO events_1 VALUES (1, 1);",
    );
    assert!(changes(&mut conn).is_empty());
}

#[test]
fn auditing_a_partition_directly_is_refused() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE events (id int, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);",
    );
    let message = crate::support::exec_err(&mut conn, "SELECT threadline.audit_table('events_1')");
    assert!(
        message.contains("is a partition; audit its partitioned table"),
        "{message}"
    );
}
