use serde_json::json;

use crate::support::{changes, changes_of, exec, setup};

#[test]
fn composite_keys_are_objects_of_every_key_column() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE memberships (org_id int, user_id text, role text, PRIMARY KEY (org_id, user_id));
         SELECT threadline.audit_table('memberships');
         INSERT INTO memberships VALUES (1, 'u1', 'admin');
         UPDATE memberships SET role = 'member';
         DELETE FROM memberships;",
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded.len(), 3);
    for change in &recorded {
        assert_eq!(
            change.table_pk,
            json!({"org_id": "1", "user_id": "u1"}),
            "{}",
            change.op
        );
    }
}

#[test]
fn key_values_render_as_text_whatever_the_session_settings() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE DOMAIN small_id AS int;
         CREATE TABLE typed (
             i2 smallint, i8 bigint, t text, v varchar(10), u uuid, d date, ts timestamp, m mood, s small_id,
             payload text,
             PRIMARY KEY (i2, i8, t, v, u, d, ts, m, s));
         SELECT threadline.audit_table('typed');
         SET DateStyle = 'SQL, DMY';
         SET TimeZone = 'Asia/Kolkata';
         INSERT INTO typed VALUES (-2, 9007199254740993, 'tëxt', 'v', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                                   '2026-01-31', '2026-01-31 13:45:06.5', 'sad', 7, 'x');",
    );
    assert_eq!(
        changes(&mut conn)[0].table_pk,
        json!({
            "i2": "-2", "i8": "9007199254740993", "t": "tëxt", "v": "v",
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "d": "2026-01-31",
            "ts": "2026-01-31T13:45:06.5", "m": "sad", "s": "7"
        }),
        "rendered as to_jsonb(col) #>> '{{}}' renders it"
    );
}

/// An UPDATE that changes keys is matched by key: a key present before and after is an
/// update of that key; a key that leaves is a delete and one that arrives an insert, both
/// marked `from_update`. (Keys are checked row by row, as capture requires: a deferrable
/// key is refused, so two rows cannot swap keys in one statement.)
#[test]
fn key_changing_updates_are_identified_by_key() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE slots (k int PRIMARY KEY, v text);
         SELECT threadline.audit_table('slots');
         INSERT INTO slots VALUES (1, 'one'), (2, 'two');",
    );
    exec(&mut conn, "UPDATE slots SET v = 'deux' WHERE k = 2");
    let same_key: Vec<_> = changes_of(&mut conn, "slots").into_iter().skip(2).collect();
    assert_eq!(same_key.len(), 1);
    assert_eq!(same_key[0].op, "update");
    assert!(!same_key[0].from_update);
    assert_eq!(same_key[0].changed_fields, Some(vec!["v".to_owned()]));
    assert_eq!(same_key[0].changed_from, Some(json!({"v": "two"})));

    exec(&mut conn, "UPDATE slots SET v = 'two' WHERE k = 2");
    exec(&mut conn, "UPDATE slots SET k = 10 WHERE k = 1");
    let rekey: Vec<_> = changes_of(&mut conn, "slots").into_iter().skip(4).collect();
    let summary: Vec<_> = rekey
        .iter()
        .map(|c| (c.op.as_str(), c.table_pk["k"].as_str().unwrap(), c.from_update))
        .collect();
    assert_eq!(summary.len(), 2);
    assert!(summary.contains(&("delete", "1", true)), "{summary:?}");
    assert!(summary.contains(&("insert", "10", true)), "{summary:?}");
    let arriving = rekey.iter().find(|c| c.op == "insert").unwrap();
    assert_eq!(arriving.data, Some(json!({"k": 10, "v": "one"})));
}
