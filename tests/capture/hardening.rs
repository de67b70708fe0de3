//! The application role as an attacker: it owns its audited tables and may create types,
//! casts, operators and functions. Each test plays one attack and checks that it fails.

use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use serde_json::{Value, json};
use threadline::testing::{APP_ROLE, TestDatabase};

use crate::support::{changes, changes_of, exec, exec_err, setup, transactions};

/// A database, an admin connection and a connection as the app role, which owns a probe
/// table that its own functions write `current_user` into whenever they run.
fn attacker() -> (TestDatabase, PgConnection, PgConnection) {
    let (db, admin) = setup();
    let mut app = PgConnection::establish(&db.app_url().unwrap()).unwrap();
    exec(
        &mut app,
        "CREATE TABLE probe (who text, what text);
         GRANT INSERT ON probe TO PUBLIC;",
    );
    (db, admin, app)
}

/// Who ran the app role's functions, and which.
fn probe(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        line: String,
    }
    sql_query("SELECT who || ' ran ' || what AS line FROM public.probe")
        .load::<Row>(conn)
        .unwrap()
        .into_iter()
        .map(|r| r.line)
        .collect()
}

fn one<T: QueryableByName<diesel::pg::Pg> + 'static>(conn: &mut PgConnection, sql: &str) -> T {
    sql_query(sql).get_result(conn).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    b: bool,
}

#[derive(QueryableByName)]
struct Json {
    #[diesel(sql_type = Nullable<Jsonb>)]
    j: Option<Value>,
}

/// The hostile toolkit: an enum, a composite, a range and a checked domain, each with casts
/// to json, jsonb and text and an `=` operator whose functions record who ran them and
/// try to make the app role a superuser.
const TOOLKIT: &str = r#"
    CREATE FUNCTION payload(what text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.probe VALUES (current_user, what);
        BEGIN
            EXECUTE format('ALTER ROLE %I SUPERUSER', session_user);
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END $$;
    CREATE TYPE mood AS ENUM ('calm', 'angry');
    CREATE TYPE pair AS (n int, m mood);
    CREATE TYPE moodrange AS RANGE (subtype = mood);
    CREATE FUNCTION checked_ok(text) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('domain check'); RETURN true; END $$;
    CREATE DOMAIN checked AS text CHECK (checked_ok(VALUE));

    CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('mood to json'); RETURN '"forged"'; END $$;
    CREATE FUNCTION mood_jsonb(mood) RETURNS jsonb LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('mood to jsonb'); RETURN '"forged"'; END $$;
    CREATE FUNCTION mood_text(mood) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('mood to text'); RETURN 'forged'; END $$;
    CREATE FUNCTION text_mood(text) RETURNS mood LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('text to mood'); RETURN 'calm'; END $$;
    CREATE FUNCTION mood_eq(mood, mood) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('mood ='); RETURN true; END $$;
    CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
    CREATE CAST (mood AS jsonb) WITH FUNCTION mood_jsonb(mood);
    CREATE CAST (mood AS text) WITH FUNCTION mood_text(mood);
    CREATE CAST (text AS mood) WITH FUNCTION text_mood(text);
    CREATE OPERATOR public.= (LEFTARG = mood, RIGHTARG = mood, FUNCTION = mood_eq);

    CREATE FUNCTION pair_json(pair) RETURNS json LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('pair to json'); RETURN '"forged"'; END $$;
    CREATE FUNCTION pair_eq(pair, pair) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('pair ='); RETURN true; END $$;
    CREATE CAST (pair AS json) WITH FUNCTION pair_json(pair);
    CREATE OPERATOR public.= (LEFTARG = pair, RIGHTARG = pair, FUNCTION = pair_eq);

    CREATE FUNCTION range_json(moodrange) RETURNS json LANGUAGE plpgsql AS $$
        BEGIN PERFORM payload('range to json'); RETURN '"forged"'; END $$;
    CREATE CAST (moodrange AS json) WITH FUNCTION range_json(moodrange);
"#;

#[test]
fn capture_never_runs_code_the_table_owner_defined() {
    let (_db, mut admin, mut app) = attacker();
    exec(&mut app, TOOLKIT);
    exec(
        &mut app,
        "CREATE TABLE things (id int PRIMARY KEY, m mood, p pair, r moodrange, c checked, ms mood[], note text);",
    );
    exec(&mut admin, "SELECT threadline.audit_table('things')");
    exec(
        &mut app,
        "INSERT INTO things (id, m, p, r, ms, note) VALUES (1, 'calm', ROW(1, 'calm'), '[calm,angry]', '{calm}', 'n');
         UPDATE things SET m = 'angry', p = ROW(2, 'angry'), note = 'x';
         UPDATE things SET r = '[angry,angry]';
         UPDATE things SET note = note;
         DELETE FROM things;",
    );
    // The app's own INSERT runs its domain check on the missing value, as the app role;
    // nothing else of the toolkit may have run.
    let own = format!("{APP_ROLE} ran domain check");
    let ran: Vec<_> = probe(&mut admin).into_iter().filter(|line| *line != own).collect();
    assert_eq!(ran, Vec::<String>::new(), "capture ran owner code");
    let superuser: Flag = one(
        &mut admin,
        &format!("SELECT rolsuper AS b FROM pg_roles WHERE rolname = '{APP_ROLE}'"),
    );
    assert!(!superuser.b, "the app role became a superuser");

    let recorded = changes_of(&mut admin, "things");
    let ops: Vec<_> = recorded.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(
        ops,
        ["insert", "update", "update", "delete"],
        "the no-op update is skipped"
    );
    assert_eq!(
        recorded[0].data,
        Some(
            json!({"id": 1, "m": "calm", "p": "(1,calm)", "r": "[calm,angry]", "c": null,
                    "ms": "{calm}", "note": "n"})
        ),
        "owner-defined types are stored as their text output"
    );
    assert_eq!(
        recorded[1].changed_fields,
        Some(vec!["m".to_owned(), "note".to_owned(), "p".to_owned()])
    );
    assert_eq!(recorded[2].changed_fields, Some(vec!["r".to_owned()]));
    let owner: Json = one(
        &mut admin,
        "SELECT to_jsonb(array_agg(DISTINCT proowner::regrole::text)) AS j FROM pg_proc
          WHERE pronamespace = 'threadline'::regnamespace AND proname LIKE 'capture\\_%'",
    );
    assert_eq!(owner.j, Some(json!(["threadline_capture"])));
}

#[test]
fn reading_keys_and_partitions_never_runs_code_the_table_owner_defined() {
    let (_db, mut admin, mut app) = attacker();
    exec(&mut app, TOOLKIT);
    exec(
        &mut app,
        "CREATE TABLE tickets (m mood, c checked, note text, PRIMARY KEY (m, c));
         CREATE TABLE shards (m mood, id int, note checked, PRIMARY KEY (m, id)) PARTITION BY LIST (m);
         CREATE TABLE shards_calm PARTITION OF shards FOR VALUES IN ('calm');
         CREATE TABLE shards_angry PARTITION OF shards FOR VALUES IN ('angry');",
    );
    exec(
        &mut admin,
        "SELECT threadline.audit_table('tickets'); SELECT threadline.audit_table('shards');",
    );
    exec(
        &mut app,
        "INSERT INTO tickets VALUES ('angry', 'k', 'n');
         INSERT INTO shards (m, id) VALUES ('calm', 1), ('angry', 2);
         TRUNCATE shards_calm;",
    );
    exec(&mut admin, "TRUNCATE probe");

    let key: Json = one(
        &mut admin,
        r#"SELECT threadline.render_key('public', 'tickets', '{"m": "angry", "c": "k"}') AS j"#,
    );
    assert_eq!(key.j, Some(json!({"m": "angry", "c": "k"})));
    let bad = exec_err(
        &mut admin,
        r#"SELECT threadline.render_key('public', 'tickets', '{"m": "sulky", "c": "k"}')"#,
    );
    assert!(bad.contains("is not a valid public.mood"), "{bad}");
    for (data, expected) in [
        (json!({"m": "calm", "id": 1}), true),
        (json!({"m": "angry", "id": 2}), false),
    ] {
        let inside: Flag = one(
            &mut admin,
            &format!("SELECT threadline.row_in_partition('public', 'shards', 'public.shards_calm', '{data}') AS b"),
        );
        assert_eq!(inside.b, expected, "{data}");
    }
    assert_eq!(probe(&mut admin), Vec::<String>::new(), "a read ran owner code");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    one::<Count>(conn, sql).n
}

/// An audited table the app role writes, with grants as an app usually has.
fn app_table(admin: &mut PgConnection, app: &mut PgConnection) {
    exec(app, "CREATE TABLE posts (id int PRIMARY KEY, title text);");
    exec(admin, "SELECT threadline.audit_table('posts')");
}

#[test]
fn forged_context_settings_refuse_the_write() {
    let (_db, mut admin, mut app) = attacker();
    app_table(&mut admin, &mut app);
    exec(
        &mut app,
        r#"BEGIN; SELECT threadline.begin_audit('{"actor": {"type": "user", "id": "1"}, "action": {"name": "post_created"}}');
           INSERT INTO posts VALUES (1, 'a'); COMMIT;"#,
    );
    let foreign_action = count(&mut admin, "SELECT max(id) AS n FROM threadline.audit_actions");
    for (setting, value, says) in [
        ("actor", r#"{"type": "root", "id": "1"}"#, "unknown actor type"),
        ("actor", r#""alice""#, "must be a JSON object"),
        ("actor", "{}", "\"type\" must be a string"),
        ("actor", "{not json", "invalid input syntax"),
        ("request_id", "a\nforged: line", "request_id"),
        ("correlation_id", &"x".repeat(300), "correlation_id"),
        ("meta", "[1, 2]", "\"meta\" must be a JSON object"),
        ("action_id", &foreign_action.to_string(), "did not record"),
        ("action_id", "1; DROP", "did not record"),
    ] {
        let message = exec_err(
            &mut app,
            &format!(
                "BEGIN; SELECT set_config('threadline.{setting}', $v${value}$v$, true);
                 INSERT INTO posts VALUES (2, 'forged');"
            ),
        );
        exec(&mut app, "ROLLBACK");
        assert!(message.contains(says), "{setting} = {value}: {message}");
    }
    assert_eq!(changes_of(&mut admin, "posts").len(), 1, "no forged change was stored");
    assert_eq!(transactions(&mut admin).len(), 1);
}

#[test]
fn strict_mode_holds_for_every_change_of_the_transaction() {
    let (_db, mut admin, mut app) = attacker();
    app_table(&mut admin, &mut app);
    exec(&mut admin, "SELECT threadline.require_actor(true)");
    for forged in ["null", "{}"] {
        let message = exec_err(
            &mut app,
            &format!(
                "BEGIN; SELECT set_config('threadline.actor', '{forged}', true); INSERT INTO posts VALUES (1, 'x');"
            ),
        );
        exec(&mut app, "ROLLBACK");
        assert!(
            message.contains("no actor") || message.contains("\"type\" must be a string"),
            "{forged}: {message}"
        );
    }
    let cleared = exec_err(
        &mut app,
        r#"BEGIN; SELECT threadline.set_actor('{"type": "user", "id": "5"}');
           INSERT INTO posts VALUES (1, 'x');
           SELECT threadline.begin_audit('{}');"#,
    );
    exec(&mut app, "ROLLBACK");
    assert!(cleared.contains("cannot change its actor"), "{cleared}");
    let before_write = exec_err(
        &mut app,
        r#"BEGIN; SELECT threadline.set_actor('{"type": "user", "id": "5"}');
           SELECT threadline.begin_audit('{}');
           INSERT INTO posts VALUES (1, 'x');"#,
    );
    exec(&mut app, "ROLLBACK");
    assert!(before_write.contains("no actor"), "{before_write}");
    assert_eq!(changes(&mut admin).len(), 0);

    exec(
        &mut app,
        r#"BEGIN; SELECT threadline.set_actor('{"type": "user", "id": "5"}');
           INSERT INTO posts VALUES (1, 'x'); COMMIT;"#,
    );
    let switched = exec_err(
        &mut app,
        r#"BEGIN; SELECT threadline.set_actor('{"type": "user", "id": "5"}');
           UPDATE posts SET title = 'y';
           SELECT threadline.set_actor('{"type": "admin", "id": "6"}');"#,
    );
    exec(&mut app, "ROLLBACK");
    assert!(switched.contains("cannot change its actor"), "{switched}");
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].actor, Some(json!({"type": "user", "id": "5"})));
}

#[test]
fn the_table_owner_cannot_stop_or_double_capture() {
    let (_db, mut admin, mut app) = attacker();
    app_table(&mut admin, &mut app);
    for trigger in [
        "threadline_insert",
        "threadline_update",
        "threadline_delete",
        "threadline_truncate",
    ] {
        let dropped = exec_err(&mut app, &format!("DROP TRIGGER {trigger} ON posts"));
        assert!(dropped.contains("cannot be dropped"), "{trigger}: {dropped}");
        let renamed = exec_err(&mut app, &format!("ALTER TRIGGER {trigger} ON posts RENAME TO mine"));
        assert!(renamed.contains("cannot be altered"), "{trigger}: {renamed}");
    }
    exec(
        &mut app,
        "ALTER TABLE posts DISABLE TRIGGER ALL;
         ALTER TABLE posts ADD COLUMN body text;
         INSERT INTO posts VALUES (1, 'a', 'b');
         UPDATE posts SET body = 'c';
         DELETE FROM posts;",
    );
    let ops: Vec<_> = changes_of(&mut admin, "posts").into_iter().map(|c| c.op).collect();
    assert_eq!(ops, ["insert", "update", "delete"], "each change once, none lost");
    let events = count(
        &mut admin,
        "SELECT count(*) AS n FROM threadline.schema_events WHERE command = 'ALTER TABLE' AND acting_role = 'threadline_app'",
    );
    assert_eq!(events, 2, "both ALTER TABLEs are in the trail");
}

#[test]
fn long_multibyte_names_keep_capture_apart() {
    let (_db, mut conn) = setup();
    let name = format!("{}_a", "ä".repeat(28));
    exec(
        &mut conn,
        &format!(
            r#"CREATE SCHEMA second;
               CREATE TABLE "{name}" (id int PRIMARY KEY, v text);
               CREATE TABLE second."{name}" (id int PRIMARY KEY, v text);
               SELECT threadline.audit_table('"{name}"');
               SELECT threadline.audit_table('second."{name}"');
               INSERT INTO "{name}" VALUES (1, 'first');
               INSERT INTO second."{name}" VALUES (1, 'second');
               ALTER TABLE "{name}" ADD COLUMN extra int;
               ALTER TABLE "{name}" RENAME COLUMN v TO w;
               INSERT INTO "{name}" VALUES (2, 'after', 7);"#
        ),
    );
    let recorded = changes(&mut conn);
    let seen: Vec<_> = recorded
        .iter()
        .map(|c| (c.table_schema.as_str(), c.data.clone().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("public", json!({"id": 1, "v": "first"})),
            ("second", json!({"id": 1, "v": "second"})),
            ("public", json!({"id": 2, "w": "after", "extra": 7})),
        ]
    );
    assert!(recorded.iter().all(|c| c.table_name == name));
}

#[test]
fn layouts_capture_cannot_follow_are_refused() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE parent (id int PRIMARY KEY, v text);
         CREATE TABLE child () INHERITS (parent);
         CREATE TEMP TABLE scratch (id int PRIMARY KEY);
         CREATE TABLE audited (id int PRIMARY KEY, v text);
         SELECT threadline.audit_table('audited');
         CREATE TABLE holder (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE loner (id int PRIMARY KEY, v text);",
    );
    for (sql, says) in [
        ("SELECT threadline.audit_table('parent')", "inheritance"),
        ("SELECT threadline.audit_table('child')", "inheritance"),
        ("SELECT threadline.audit_table('scratch')", "temporary"),
        ("CREATE TABLE heir () INHERITS (audited)", "inheritance"),
        ("ALTER TABLE loner INHERIT audited", "inheritance"),
        (
            "ALTER TABLE holder ATTACH PARTITION audited FOR VALUES FROM (0) TO (10)",
            "partition",
        ),
        (
            "CREATE TABLE deferred (id int PRIMARY KEY DEFERRABLE); SELECT threadline.audit_table('deferred')",
            "DEFERRABLE",
        ),
    ] {
        let message = exec_err(&mut conn, sql);
        assert!(message.contains(says), "{sql}: {message}");
    }
}

#[test]
fn the_index_behind_a_policy_key_cannot_go() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE events (seq bigserial, code text NOT NULL, v text);
           CREATE UNIQUE INDEX events_code ON events (code);
           CREATE TABLE tagged (id int NOT NULL, v text, CONSTRAINT tagged_id UNIQUE (id));
           SELECT threadline.audit_table('events', '{"primary_key": ["code"]}');
           SELECT threadline.audit_table('tagged', '{"primary_key": ["id"]}');"#,
    );
    for sql in [
        "DROP INDEX events_code",
        "ALTER TABLE tagged DROP CONSTRAINT tagged_id",
        "ALTER TABLE events ALTER COLUMN code DROP NOT NULL",
    ] {
        let message = exec_err(&mut conn, sql);
        assert!(message.contains("covers exactly the key"), "{sql}: {message}");
    }
}

#[test]
fn policy_column_names_are_exact() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE logins (id int PRIMARY KEY, secret text, " pw" text);"#,
    );
    let trimmed = exec_err(
        &mut conn,
        r#"SELECT threadline.audit_table('logins', '{"mask": ["secret "]}')"#,
    );
    assert!(trimmed.contains("has no column"), "{trimmed}");
    exec(
        &mut conn,
        r#"SELECT threadline.audit_table('logins', '{"mask": ["secret"], "exclude": [" pw"]}');
           INSERT INTO logins VALUES (1, 'hunter2', 'swordfish');"#,
    );
    assert_eq!(
        changes(&mut conn)[0].data,
        Some(json!({"id": 1, "secret": "[REDACTED]"}))
    );
}

#[test]
fn a_changed_stored_value_is_a_change() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE amounts (id int PRIMARY KEY, n numeric, f float8, t text COLLATE "C", j jsonb);
           SELECT threadline.audit_table('amounts');
           INSERT INTO amounts VALUES (1, 1, 0, 'a', '{"x": 1}');
           UPDATE amounts SET n = 1.000;
           UPDATE amounts SET f = '-0';
           UPDATE amounts SET j = '{"x": 1.0}';
           UPDATE amounts SET n = 1.000, f = '-0', j = '{"x": 1.0}';"#,
    );
    let fields: Vec<_> = changes(&mut conn)
        .into_iter()
        .skip(1)
        .map(|c| c.changed_fields.unwrap())
        .collect();
    assert_eq!(
        fields,
        [vec!["n"], vec!["f"], vec!["j"]],
        "the last update stored nothing new"
    );
}

#[test]
fn schema_changes_and_drops_of_audited_tables_are_recorded() {
    let (_db, mut admin, mut app) = attacker();
    app_table(&mut admin, &mut app);
    exec(
        &mut app,
        "INSERT INTO posts VALUES (1, 'a');
         ALTER TABLE posts ALTER COLUMN title TYPE varchar(40) USING upper(title);
         DROP TABLE posts;",
    );
    #[derive(QueryableByName)]
    struct Event {
        #[diesel(sql_type = Text)]
        command: String,
        #[diesel(sql_type = Text)]
        acting_role: String,
    }
    let events: Vec<Event> =
        sql_query("SELECT command, acting_role FROM threadline.schema_events WHERE table_name = 'posts' ORDER BY id")
            .load(&mut admin)
            .unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.command.as_str(), e.acting_role.as_str()))
        .collect();
    assert_eq!(seen[0].0, "AUDIT TABLE");
    assert_eq!(seen[1..], [("ALTER TABLE", APP_ROLE), ("DROP TABLE", APP_ROLE)]);
    let stored = count(
        &mut admin,
        "SELECT count(*) AS n FROM threadline.schema_events WHERE objects::text LIKE '%upper%'",
    );
    assert_eq!(stored, 0, "no statement text or value is kept");
}

#[test]
fn renames_under_any_command_name_are_followed() {
    let (_db, mut admin, mut app) = attacker();
    exec(
        &mut app,
        "CREATE TABLE t2 (id int PRIMARY KEY, secret text, note text);",
    );
    exec(
        &mut admin,
        r#"SELECT threadline.audit_table('t2', '{"exclude": ["secret"]}')"#,
    );
    // ALTER INDEX renames a table too; a decoy of the old name is then dropped
    exec(
        &mut app,
        "ALTER INDEX t2 RENAME TO t2x;
         CREATE TABLE t2 (x int); DROP TABLE t2;
         ALTER TABLE t2x RENAME TO t2;
         INSERT INTO t2 VALUES (1, 'hunter2', 'hello');",
    );
    // ALTER VIEW renames a table's columns too: the excluded value must follow its column
    exec(
        &mut app,
        "ALTER VIEW t2 RENAME COLUMN secret TO tmp;
         ALTER VIEW t2 RENAME COLUMN note TO secret;
         ALTER VIEW t2 RENAME COLUMN tmp TO note;
         INSERT INTO t2 VALUES (2, 'hunter3', 'hello again');",
    );
    let data: Vec<_> = changes_of(&mut admin, "t2")
        .into_iter()
        .map(|c| c.data.unwrap())
        .collect();
    assert_eq!(
        data,
        [
            json!({"id": 1, "note": "hello"}),
            json!({"id": 2, "secret": "hello again"})
        ],
        "the excluded column is the one that held the secret, under its new name"
    );
}

#[test]
fn schema_level_commands_cannot_escape_capture() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE SCHEMA s9;
         CREATE TABLE s9.p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
         CREATE TABLE s9.p1 PARTITION OF s9.p FOR VALUES FROM (0) TO (100);
         SELECT threadline.audit_table('s9.p');
         CREATE SCHEMA s10 CREATE TABLE p2 PARTITION OF s9.p FOR VALUES FROM (100) TO (200);
         INSERT INTO s10.p2 VALUES (150, 'via a schema-created partition');
         ALTER SCHEMA s9 RENAME TO s9b;
         CREATE SCHEMA s9 CREATE TABLE p (x int);
         DROP SCHEMA s9 CASCADE;
         INSERT INTO s9b.p VALUES (1, 'after the schema rename');
         CREATE EXTENSION IF NOT EXISTS hstore;",
    );
    let dropped = exec_err(
        &mut conn,
        "ALTER TRIGGER threadline_insert ON s9b.p1 DEPENDS ON EXTENSION hstore",
    );
    assert!(dropped.contains("cannot be altered"), "{dropped}");
    let recorded: Vec<_> = changes(&mut conn)
        .into_iter()
        .map(|c| (c.table_schema, c.table_name, c.data.unwrap()["v"].clone()))
        .collect();
    assert_eq!(
        recorded,
        [
            ("s9".into(), "p".into(), json!("via a schema-created partition")),
            ("s9b".into(), "p".into(), json!("after the schema rename")),
        ]
    );
}

#[test]
fn keys_must_compare_as_capture_does() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
           CREATE TABLE t1 (k text COLLATE ci NOT NULL, v int);
           CREATE UNIQUE INDEX t1_k ON t1 (k COLLATE "C");
           CREATE TABLE t3 (k text COLLATE ci PRIMARY KEY, v int);"#,
    );
    let by_index = exec_err(
        &mut conn,
        r#"SELECT threadline.audit_table('t1', '{"primary_key": ["k"]}')"#,
    );
    assert!(by_index.contains("covers exactly the key"), "{by_index}");
    let by_primary_key = exec_err(&mut conn, "SELECT threadline.audit_table('t3')");
    assert!(by_primary_key.contains("does not compare"), "{by_primary_key}");
}

#[test]
fn session_settings_cannot_change_what_the_trail_says() {
    let (_db, mut admin, mut app) = attacker();
    exec(&mut app, TOOLKIT);
    exec(
        &mut app,
        "CREATE TABLE t7 (id int PRIMARY KEY, amount float8, at timestamptz, p pair);",
    );
    exec(&mut admin, "SELECT threadline.audit_table('t7')");
    exec(
        &mut app,
        "INSERT INTO t7 VALUES (1, 1000000, '2026-01-01 00:00:00+00', ROW(1, 'calm'));
         SET extra_float_digits = -15;
         SET TimeZone = 'Asia/Kolkata';
         UPDATE t7 SET amount = 1490000;",
    );
    let update = changes_of(&mut admin, "t7").pop().unwrap();
    assert_eq!(update.data.as_ref().unwrap()["amount"].as_f64(), Some(1490000.0));
    assert_eq!(update.changed_from.unwrap()["amount"].as_f64(), Some(1000000.0));
    assert_eq!(
        update.data.unwrap()["at"],
        json!("2026-01-01T00:00:00+00:00"),
        "with a composite column every setting is pinned"
    );

    // PostgreSQL's own types alone: floats exact, times the same instant in any zone
    exec(
        &mut app,
        "RESET ALL; CREATE TABLE t8 (id int PRIMARY KEY, amount float8, at timestamptz);",
    );
    exec(&mut admin, "SELECT threadline.audit_table('t8')");
    exec(
        &mut app,
        "SET extra_float_digits = -15; SET TimeZone = 'Asia/Kolkata';
         INSERT INTO t8 VALUES (1, 1490000.25, '2026-01-01 00:00:00+00');",
    );
    let insert = changes_of(&mut admin, "t8").pop().unwrap().data.unwrap();
    assert_eq!(insert["amount"].as_f64(), Some(1490000.25));
    let at = chrono::DateTime::parse_from_rfc3339(insert["at"].as_str().unwrap()).unwrap();
    assert_eq!(
        at,
        chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
    );
}

#[test]
fn an_implicit_cast_of_an_enum_key_breaks_nothing() {
    let (_db, mut admin, mut app) = attacker();
    exec(
        &mut app,
        "CREATE TYPE e AS ENUM ('a', 'b');
         CREATE FUNCTION e2i(e) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;
         CREATE CAST (e AS int) WITH FUNCTION e2i(e) AS IMPLICIT;
         CREATE TABLE te (k e PRIMARY KEY, v int);",
    );
    exec(&mut admin, "SELECT threadline.audit_table('te')");
    exec(
        &mut app,
        "INSERT INTO te VALUES ('a', 1), ('b', 2); UPDATE te SET v = v + 1; UPDATE te SET k = 'b' WHERE false;",
    );
    let ops: Vec<_> = changes_of(&mut admin, "te").into_iter().map(|c| c.op).collect();
    assert_eq!(ops, ["insert", "insert", "update", "update"]);

    // a partition bound over such an enum cannot be evaluated: the answer is "unknown"
    exec(
        &mut app,
        "CREATE TABLE tp (k e, id int, PRIMARY KEY (k, id)) PARTITION BY LIST (k);
         CREATE TABLE tp_a PARTITION OF tp FOR VALUES IN ('a');",
    );
    exec(&mut admin, "SELECT threadline.audit_table('tp')");
    #[derive(QueryableByName)]
    struct Maybe {
        #[diesel(sql_type = Nullable<Bool>)]
        inside: Option<bool>,
    }
    let inside: Maybe = one(
        &mut admin,
        r#"SELECT threadline.row_in_partition('public', 'tp', 'public.tp_a', '{"k": "a", "id": 1}') AS inside"#,
    );
    assert_ne!(
        inside.inside,
        Some(false),
        "an unknown answer never claims the row was elsewhere"
    );
}
