use diesel::sql_types::{Jsonb, Nullable};
use diesel::{RunQueryDsl, select};
use serde_json::{Value, json};

use crate::support::{changes, exec, exec_err, setup};

fn table_policy(conn: &mut diesel::PgConnection, table: &str) -> Option<Value> {
    select(diesel::dsl::sql::<Nullable<Jsonb>>(&format!(
        "threadline.table_policy('{table}')"
    )))
    .get_result(conn)
    .unwrap()
}

const POSTS: &str =
    "CREATE TABLE posts (id bigint PRIMARY KEY, title text, email text, password_hash text, updated_at timestamptz);";

#[test]
fn table_policy_reads_back_the_deployed_policy() {
    let (_db, mut conn) = setup();
    exec(&mut conn, POSTS);
    assert_eq!(table_policy(&mut conn, "posts"), None, "not audited yet");
    exec(
        &mut conn,
        r#"SELECT threadline.audit_table('public.posts', '{"mask": ["email"], "exclude": ["password_hash"],
           "ignore_changes": ["updated_at"], "changed_from": false, "mask_placeholder": "***"}');"#,
    );
    assert_eq!(
        table_policy(&mut conn, "public.posts"),
        Some(json!({
            "exclude": ["password_hash"], "mask": ["email"], "mask_placeholder": "***",
            "ignore_changes": ["updated_at"], "primary_key": ["id"], "changed_from": false
        }))
    );
}

#[test]
fn rerunning_audit_table_replaces_the_policy_without_a_gap() {
    let (_db, mut conn) = setup();
    exec(&mut conn, POSTS);
    exec(
        &mut conn,
        r#"SELECT threadline.audit_table('posts', '{"mask": ["email"]}')"#,
    );
    exec(
        &mut conn,
        "INSERT INTO posts (id, title, email) VALUES (1, 'a', 'a@example.com')",
    );
    exec(
        &mut conn,
        r#"BEGIN;
           SELECT threadline.audit_table('posts', '{"exclude": ["email"]}');
           INSERT INTO posts (id, title, email) VALUES (2, 'b', 'b@example.com');
           COMMIT;"#,
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].data.as_ref().unwrap()["email"], "[REDACTED]");
    assert!(
        recorded[1].data.as_ref().unwrap().get("email").is_none(),
        "the new policy excludes email"
    );
    let triggers: i64 = select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal)",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(triggers, 4, "insert, update, delete and truncate triggers, once each");
}

#[test]
fn bad_policies_are_refused_with_a_clear_message() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        &format!(
            "{POSTS}
             CREATE TABLE nokey (a int, b text);
             CREATE TABLE floaty (f float8 PRIMARY KEY);
             CREATE TABLE stamped (at timestamptz PRIMARY KEY);"
        ),
    );
    let cases: &[(&str, &str)] = &[
        (
            r#"SELECT threadline.audit_table('posts', '{"masks": ["email"]}')"#,
            r#"unknown policy key "masks""#,
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"pk": ["id"]}')"#,
            "Did you mean \"primary_key\"?",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask": "email"}')"#,
            "must be an array of column names",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask": [1]}')"#,
            "non-empty column names",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"changed_from": "yes"}')"#,
            "must be true or false",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask_placeholder": ""}')"#,
            "1 to 200 characters",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '[]')"#,
            "must be a JSON object",
        ),
        (
            "SELECT threadline.audit_table('public.missing')",
            r#"relation "public.missing" does not exist"#,
        ),
        ("SELECT threadline.audit_table('nokey')", "has no primary key"),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask": ["emial"]}')"#,
            "has no column emial",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask": ["email"], "exclude": ["email"]}')"#,
            "both masks and excludes email",
        ),
        (
            r#"SELECT threadline.audit_table('posts', '{"mask": ["id"]}')"#,
            "key column id of public.posts cannot be masked",
        ),
        (
            "SELECT threadline.audit_table('threadline.audit_changes')",
            "is a Threadline table",
        ),
        (
            "SELECT threadline.audit_table('floaty')",
            "type capture cannot render stably",
        ),
        (
            "SELECT threadline.audit_table('stamped')",
            "type capture cannot render stably",
        ),
        (
            r#"SELECT threadline.audit_table('nokey', '{"primary_key": ["a"]}')"#,
            "no unique index",
        ),
        ("SELECT threadline.unaudit_table('posts')", "is not audited"),
    ];
    for (sql, expected) in cases {
        let message = exec_err(&mut conn, sql);
        assert!(
            message.contains(expected),
            "{sql}\n  said: {message}\n  expected it to say: {expected}"
        );
    }
    assert_eq!(
        table_policy(&mut conn, "posts"),
        None,
        "nothing was deployed by the refused calls"
    );
}

#[test]
fn a_unique_index_over_not_null_columns_can_stand_in_for_a_primary_key() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE uniq (a int NOT NULL, b text NOT NULL, c text, UNIQUE (b, a));
           SELECT threadline.audit_table('uniq', '{"primary_key": ["a", "b"]}');
           INSERT INTO uniq VALUES (1, 'x', 'c');"#,
    );
    assert_eq!(changes(&mut conn)[0].table_pk, json!({"a": "1", "b": "x"}));
}

#[test]
fn unaudit_stops_capture_and_keeps_the_trail() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        &format!(
            "{POSTS}
             SELECT threadline.audit_table('posts');
             INSERT INTO posts (id, title) VALUES (1, 'kept');
             SELECT threadline.unaudit_table('posts');
             INSERT INTO posts (id, title) VALUES (2, 'not captured');"
        ),
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].table_pk, json!({"id": "1"}));
    assert_eq!(table_policy(&mut conn, "posts"), None);
}

#[test]
fn dropping_an_audited_table_forgets_its_policy_and_function() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        &format!("{POSTS} SELECT threadline.audit_table('posts'); DROP TABLE posts;"),
    );
    let leftovers: i64 = select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM threadline.audited_tables)
         + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'threadline'::regnamespace AND proname LIKE 'capture\\_%')",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(leftovers, 0);
}
