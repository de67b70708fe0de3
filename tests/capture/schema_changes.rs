use serde_json::json;

use crate::support::{all_stored_text, changes, exec, exec_err, setup};

#[test]
fn writes_keep_working_and_capture_follows_the_new_shape() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text, views int, legacy text);
         SELECT threadline.audit_table('posts');
         INSERT INTO posts VALUES (1, 'a', 1, 'old');
         ALTER TABLE posts ADD COLUMN slug text;
         INSERT INTO posts (id, title, views, slug) VALUES (2, 'b', 2, 'b-slug');
         ALTER TABLE posts DROP COLUMN legacy;
         UPDATE posts SET views = views + 1 WHERE id = 1;
         ALTER TABLE posts RENAME COLUMN title TO headline;
         UPDATE posts SET headline = 'a2' WHERE id = 1;
         ALTER TABLE posts ALTER COLUMN views TYPE bigint;
         UPDATE posts SET views = 10000000000 WHERE id = 2;
         ALTER TABLE posts RENAME TO articles;
         DELETE FROM articles WHERE id = 2;",
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded.len(), 6, "{recorded:#?}");
    assert_eq!(
        recorded[1].data,
        Some(json!({"id": 2, "title": "b", "views": 2, "legacy": null, "slug": "b-slug"}))
    );
    assert_eq!(
        recorded[2].data,
        Some(json!({"id": 1, "title": "a", "views": 2, "slug": null}))
    );
    assert_eq!(recorded[3].changed_fields, Some(vec!["headline".to_owned()]));
    assert_eq!(recorded[3].changed_from, Some(json!({"headline": "a"})));
    assert_eq!(recorded[4].changed_from, Some(json!({"views": 2})));
    assert_eq!(recorded[4].data.as_ref().unwrap()["views"], json!(10000000000_i64));
    assert_eq!(
        recorded[5].table_name, "articles",
        "a renamed table is recorded under its new name"
    );
    assert_eq!(recorded[5].op, "delete");
}

#[test]
fn a_renamed_redacted_column_stays_redacted() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, name text);
           SELECT threadline.audit_table('users', '{"mask": ["email"], "exclude": ["password_hash"]}');
           ALTER TABLE users RENAME COLUMN email TO contact_email;
           ALTER TABLE users RENAME COLUMN password_hash TO secret_digest;
           INSERT INTO users VALUES (1, 'leak-me@example.com', 'leak-me-hash', 'Ada');
           UPDATE users SET contact_email = 'leak-me-too@example.com', secret_digest = 'leak-me-hash-2';"#,
    );
    let recorded = changes(&mut conn);
    assert_eq!(
        recorded[0].data,
        Some(json!({"id": 1, "contact_email": "[REDACTED]", "name": "Ada"}))
    );
    assert_eq!(recorded[1].changed_fields, Some(vec!["contact_email".to_owned()]));
    assert_eq!(recorded[1].changed_from, Some(json!({"contact_email": "[REDACTED]"})));
    let stored = all_stored_text(&mut conn);
    assert!(!stored.contains("leak-me"), "a redacted value was stored: {stored}");
}

#[test]
fn a_redacted_column_dropped_and_added_again_is_still_redacted() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE users (id int PRIMARY KEY, email text);
           SELECT threadline.audit_table('users', '{"mask": ["email"]}');
           ALTER TABLE users DROP COLUMN email;
           INSERT INTO users VALUES (1);
           ALTER TABLE users ADD COLUMN email text;
           INSERT INTO users VALUES (2, 'leak-me@example.com');"#,
    );
    let recorded = changes(&mut conn);
    assert_eq!(recorded[0].data, Some(json!({"id": 1})));
    assert_eq!(recorded[1].data, Some(json!({"id": 2, "email": "[REDACTED]"})));
}

#[test]
fn dropping_the_key_of_an_audited_table_is_refused() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         SELECT threadline.audit_table('posts');",
    );
    let message = exec_err(&mut conn, "ALTER TABLE posts DROP CONSTRAINT posts_pkey");
    assert!(message.contains("has no primary key"), "{message}");
    exec(&mut conn, "INSERT INTO posts VALUES (1, 'still captured')");
    assert_eq!(changes(&mut conn).len(), 1);
}
