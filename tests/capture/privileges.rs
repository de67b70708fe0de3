use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use serde_json::json;
use threadline::testing::APP_ROLE;

use crate::support::{changes, exec, exec_err, setup, transactions};

#[test]
fn an_application_role_writes_audited_tables_but_cannot_touch_the_trail() {
    let (db, mut admin) = setup();
    let app_url = db.app_url().unwrap();
    exec(
        &mut admin,
        &format!(
            r#"CREATE TABLE posts (id int PRIMARY KEY, title text, secret text);
               SELECT threadline.audit_table('posts', '{{"exclude": ["secret"]}}');
               GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON posts TO {APP_ROLE};"#
        ),
    );
    let mut app = PgConnection::establish(&app_url).unwrap();
    exec(
        &mut app,
        r#"BEGIN;
           SELECT threadline.set_actor('{"type": "user", "id": "5"}');
           INSERT INTO posts VALUES (1, 'by the app', 'hidden');
           UPDATE posts SET title = 'edited';
           COMMIT;
           DELETE FROM posts;"#,
    );
    assert_eq!(changes(&mut admin).len(), 3);
    assert_eq!(
        transactions(&mut admin)[0].actor,
        Some(json!({"type": "user", "id": "5"}))
    );

    for sql in [
        "SELECT * FROM threadline.audit_changes",
        "SELECT * FROM threadline.audit_transactions",
        "SELECT * FROM threadline.audit_actions",
        "SELECT * FROM threadline.audited_tables",
        "INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
             VALUES (1, 'public', 'posts', '{}', 'insert', now())",
        "UPDATE threadline.audit_changes SET data = '{}'",
        "DELETE FROM threadline.audit_changes",
        "UPDATE threadline.audit_transactions SET actor = NULL",
        "TRUNCATE threadline.audit_changes",
        "SELECT threadline.unaudit_table('posts')",
        "SELECT threadline.audit_table('posts', '{}')",
        "SELECT threadline.require_actor(false)",
        "SELECT threadline.transaction_for_capture(now())",
    ] {
        let message = exec_err(&mut app, sql);
        assert!(message.contains("permission denied"), "{sql}: {message}");
    }
    assert_eq!(changes(&mut admin).len(), 3, "the trail is intact");
}

#[test]
fn the_application_role_is_no_superuser_and_owns_nothing_in_threadline() {
    let (db, mut admin) = setup();
    let _ = db.app_url().unwrap();
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let owned: Count = sql_query(format!(
        "SELECT count(*) AS n FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
          WHERE c.relnamespace = 'threadline'::regnamespace AND r.rolname = '{APP_ROLE}'"
    ))
    .get_result(&mut admin)
    .unwrap();
    assert_eq!(owned.n, 0);
    let superuser: Count = sql_query(format!(
        "SELECT count(*) AS n FROM pg_roles WHERE rolname = '{APP_ROLE}' AND rolsuper"
    ))
    .get_result(&mut admin)
    .unwrap();
    assert_eq!(superuser.n, 0);
}

/// Every function runs with `search_path = pg_catalog, pg_temp`, except the one helper that
/// only capture functions may call (EXECUTE is revoked from everyone else, as the test
/// above shows) and that runs inside their fixed search_path, to keep a GUC switch off
/// the hot path.
#[test]
fn every_threadline_function_runs_with_a_fixed_search_path() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY); SELECT threadline.audit_table('posts');",
    );
    #[derive(QueryableByName, Debug)]
    struct Loose {
        #[diesel(sql_type = Text)]
        proname: String,
    }
    let loose: Vec<String> = sql_query(
        "SELECT proname::text FROM pg_proc
          WHERE pronamespace = 'threadline'::regnamespace
            AND proname <> 'transaction_for_capture'
            AND NOT coalesce(proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']",
    )
    .load::<Loose>(&mut conn)
    .unwrap()
    .into_iter()
    .map(|l| l.proname)
    .collect();
    assert!(loose.is_empty(), "functions without a fixed search_path: {loose:?}");
}

#[test]
fn a_hostile_search_path_cannot_redirect_capture() {
    let (db, mut admin) = setup();
    let app_url = db.app_url().unwrap();
    exec(
        &mut admin,
        &format!(
            "CREATE TABLE posts (id int PRIMARY KEY, title text);
             SELECT threadline.audit_table('posts');
             GRANT INSERT ON posts TO {APP_ROLE};"
        ),
    );
    let mut app = PgConnection::establish(&app_url).unwrap();
    exec(
        &mut app,
        "CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$;
         SET search_path = public, pg_catalog;
         INSERT INTO posts VALUES (1, 'real');",
    );
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let forged: Count =
        sql_query("SELECT count(*) AS n FROM threadline.audit_changes WHERE captured_at < '2001-01-01'")
            .get_result(&mut admin)
            .unwrap();
    assert_eq!(forged.n, 0, "capture used the caller's clock_timestamp()");
    assert_eq!(changes(&mut admin).len(), 1);
}

/// Who may do what, one row an operation: the application role (owner of its audited
/// tables), a member of `threadline_reader`, the capture role the triggers run as, and the
/// installing role. The context functions are open to every role, so the capture role has
/// them too. The README's privileges table is rendered from this one.
const MATRIX: &[(&str, &str, [bool; 4])] = &[
    (
        "write an audited table",
        "UPDATE public.posts SET title = 'x'",
        [true, false, false, true],
    ),
    (
        "attach a context: `begin_audit`, `set_actor`",
        r#"SELECT threadline.set_actor('{"type": "user", "id": "1"}')"#,
        [true, true, true, true],
    ),
    (
        "record an action: `record_action`",
        r#"SELECT threadline.record_action('{"name": "n", "actor": {"type": "user", "id": "1"}}')"#,
        [true, true, true, true],
    ),
    (
        "read the trail: `audit_changes`, `audit_transactions`, `audit_actions`",
        "SELECT 1 FROM threadline.audit_changes, threadline.audit_transactions, threadline.audit_actions",
        [false, true, false, true],
    ),
    (
        "read policies and schema events",
        "SELECT 1 FROM threadline.audited_tables, threadline.schema_events",
        [false, true, false, true],
    ),
    (
        "read helpers: `render_key`, `row_in_partition`, `table_policy`",
        "SELECT threadline.render_key('public', 'posts', '1'), threadline.row_in_partition('public', 'posts', 'public.posts', '{}'), threadline.table_policy('public.posts')",
        [false, true, false, true],
    ),
    (
        "check health: `health_findings`",
        "SELECT * FROM threadline.health_findings()",
        [false, true, false, true],
    ),
    (
        "insert audit changes",
        "INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at) VALUES (1, 'public', 'posts', '{}', 'insert', now())",
        [false, false, true, true],
    ),
    (
        "insert audit transactions",
        "INSERT INTO threadline.audit_transactions (xact_id) VALUES (pg_current_xact_id())",
        [false, false, true, true],
    ),
    (
        "insert actions directly",
        "INSERT INTO threadline.audit_actions (name, actor) VALUES ('n', '{}')",
        [false, false, false, true],
    ),
    (
        "rewrite audit rows",
        "UPDATE threadline.audit_changes SET data = '{}'; UPDATE threadline.audit_transactions SET actor = NULL",
        [false, false, false, true],
    ),
    (
        "delete audit rows",
        "DELETE FROM threadline.audit_changes; DELETE FROM threadline.audit_transactions",
        [false, false, false, true],
    ),
    (
        "truncate audit tables",
        "TRUNCATE threadline.audit_changes",
        [false, false, false, true],
    ),
    (
        "rewrite schema events",
        "DELETE FROM threadline.schema_events",
        [false, false, false, true],
    ),
    (
        "change policies: `audit_table`, `unaudit_table`, `refresh_table`",
        "SELECT threadline.audit_table('public.posts', '{}'); SELECT threadline.refresh_table('public.posts'); SELECT threadline.unaudit_table('public.posts')",
        [false, false, false, true],
    ),
    (
        "switch strict mode: `require_actor`",
        "SELECT threadline.require_actor(false)",
        [false, false, false, true],
    ),
    (
        "call the capture helper `transaction_for_capture`",
        "SELECT threadline.transaction_for_capture(now())",
        [false, false, true, true],
    ),
    (
        "record evidence: `record_evidence`",
        r#"SELECT threadline.record_evidence('check', 's', 'c', 'proven', '{}', '{"type": "user", "id": "1"}')"#,
        [true, true, true, true],
    ),
    (
        "read retention runs and evidence",
        "SELECT 1 FROM threadline.retention_runs, threadline.evidence_records, threadline.evidence_maintenance",
        [false, true, false, true],
    ),
    (
        "queue export jobs and save views: `export_jobs`, `saved_views`",
        r#"INSERT INTO threadline.export_jobs (owner, filter, format) VALUES ('{"type": "admin", "id": "1"}', '', 'csv');
           INSERT INTO threadline.saved_views (owner, name, query) VALUES ('{"type": "admin", "id": "1"}', 'v', '')"#,
        [false, true, false, true],
    ),
    (
        "purge the trail: `purge_batch`",
        "SELECT * FROM threadline.purge_batch(0, now() - interval '100 years', 1)",
        [false, false, false, true],
    ),
    (
        "remove evidence: `prune_evidence`",
        "SELECT threadline.prune_evidence(now() - interval '100 years', 'test')",
        [false, false, false, true],
    ),
    (
        "create objects in schema `threadline`",
        "CREATE TABLE threadline.mine (id int)",
        [false, false, false, true],
    ),
];

const ROLES: [&str; 4] = [
    "application role",
    "`threadline_reader`",
    "`threadline_capture`",
    "installer",
];

/// The README's privileges table, rendered from [`MATRIX`].
fn privileges_table() -> String {
    let mut table = format!("| operation | {} |\n|---|---|---|---|---|\n", ROLES.join(" | "));
    for (label, _, allowed) in MATRIX {
        let cells: Vec<_> = allowed.iter().map(|&a| if a { "yes" } else { "no" }).collect();
        table.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    table
}

#[test]
fn every_role_may_do_exactly_what_the_privileges_matrix_says() {
    let (db, mut admin) = setup();
    let mut app = PgConnection::establish(&db.app_url().unwrap()).unwrap();
    let mut reader = PgConnection::establish(&db.reader_url().unwrap()).unwrap();
    exec(
        &mut app,
        "CREATE TABLE posts (id int PRIMARY KEY, title text); INSERT INTO posts VALUES (1, 'a');",
    );
    exec(&mut admin, "SELECT threadline.audit_table('public.posts')");
    for (label, sql, allowed) in MATRIX {
        for (role, expected) in ROLES.iter().zip(allowed) {
            let (conn, prefix) = match *role {
                "application role" => (&mut app, ""),
                "`threadline_reader`" => (&mut reader, ""),
                "`threadline_capture`" => (&mut admin, "SET LOCAL ROLE threadline_capture;"),
                _ => (&mut admin, ""),
            };
            let outcome = conn.batch_execute(&format!("BEGIN; {prefix} {sql};"));
            exec(conn, "ROLLBACK");
            match (outcome, expected) {
                (Ok(()), true) => {}
                (Err(e), false) if e.to_string().contains("permission denied") => {}
                (outcome, _) => panic!("{label} as {role}: expected allowed = {expected}, got {outcome:?}"),
            }
        }
    }
    // Every function in the schema is classified: these and only these are callable by
    // each role (a new function must join a list on purpose).
    for (role, expected) in [
        (
            APP_ROLE,
            "begin_audit current_transaction_id optional_text record_action record_evidence set_actor \
             transaction_summary validate_actor validate_label",
        ),
        (
            "threadline_reader",
            "base_type begin_audit column_snapshot current_transaction_id health_findings \
             index_compares_as_columns key_index_exists key_kind optional_text partitions purge_plan record_action \
             record_evidence render_key row_in_partition set_actor table_policy transaction_summary validate_actor \
             validate_label",
        ),
        (
            "threadline_capture",
            "begin_audit current_transaction_id optional_text record_action record_evidence set_actor \
             transaction_for_capture transaction_summary validate_actor validate_label",
        ),
    ] {
        #[derive(QueryableByName)]
        struct Names {
            #[diesel(sql_type = Text)]
            names: String,
        }
        let callable: Names = sql_query(format!(
            "SELECT string_agg(DISTINCT proname, ' ' ORDER BY proname) AS names FROM pg_proc
              WHERE pronamespace = 'threadline'::regnamespace AND prorettype <> 'trigger'::regtype
                AND has_function_privilege('{role}', oid, 'EXECUTE')"
        ))
        .get_result(&mut admin)
        .unwrap();
        assert_eq!(
            callable.names,
            expected.split_whitespace().collect::<Vec<_>>().join(" "),
            "{role}"
        );
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = privileges_table();
    assert!(
        readme.contains(&table),
        "README.md's privileges table differs from the tested matrix; it should read:\n{table}"
    );
}
