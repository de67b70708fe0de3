//! The `threadline` read commands, run as a process against a real database.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::{Run, threadline, threadline_in};
use diesel::connection::SimpleConnection;
use diesel::{PgConnection, RunQueryDsl};
use serde_json::{Value, json};
use threadline::testing::TestDatabase;
use threadline::{Action, ActorRef, AuditContext};

/// Runs `threadline <command> --database-url <db> <args>`.
fn run(db: &TestDatabase, command: &str, args: &[&str]) -> Run {
    let mut all = vec![command, "--database-url", db.url()];
    all.extend(args);
    threadline(&all)
}

fn exec(conn: &mut PgConnection, sql: &str) {
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
}

/// Runs `sql` in one audited transaction; returns its audit transaction id.
fn audited(conn: &mut PgConnection, ctx: &AuditContext, sql: &str) -> i64 {
    threadline::transaction_blocking(conn, ctx, |conn| {
        diesel::sql_query(sql).execute(conn)?;
        Ok::<_, threadline::Error>(())
    })
    .expect("audited write")
    .transaction_id
    .expect("the write was audited")
}

fn context(actor: ActorRef, request: &str, correlation: &str, action: &str) -> AuditContext {
    AuditContext::new()
        .with_actor(actor)
        .with_request_id(request)
        .unwrap()
        .with_correlation_id(correlation)
        .unwrap()
        .with_action(Action::new(action).unwrap())
}

/// The audit transactions of the blog fixture.
struct Blog {
    created: i64,
    edited: i64,
    deleted: i64,
}

/// Posts 1 and 2 created by user 42, post 1 retitled by admin 7, post 1 deleted by user 42:
/// six changes in three transactions.
fn blog(conn: &mut PgConnection) -> Blog {
    exec(
        conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text, body text);
         SELECT threadline.audit_table('posts');",
    );
    let user = || ActorRef::user("42").unwrap();
    Blog {
        created: audited(
            conn,
            &context(user(), "req-1", "corr-1", "post_created"),
            "INSERT INTO posts VALUES (1, 'Hello', 'first'), (2, 'Second', 'more')",
        ),
        edited: audited(
            conn,
            &context(ActorRef::admin("7").unwrap(), "req-2", "corr-2", "post_edited"),
            "UPDATE posts SET title = 'Hello, world' WHERE id = 1",
        ),
        deleted: audited(
            conn,
            &context(user(), "req-3", "corr-3", "post_deleted"),
            "DELETE FROM posts WHERE id = 1",
        ),
    }
}

fn setup() -> (TestDatabase, PgConnection) {
    let db = TestDatabase::new().expect("test database");
    let conn = db.connect().expect("connect");
    (db, conn)
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn assert_change_shape(change: &Value) {
    let mut expected = threadline::export::FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys(change), expected, "{change}");
}

/// A fresh directory for a test's output files.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn timeline_json_is_a_page_of_changes_with_context() {
    let (db, mut conn) = setup();
    let blog = blog(&mut conn);

    let page = run(&db, "timeline", &["--json"]).json();
    assert_eq!(keys(&page), ["entries", "next_cursor"]);
    assert_eq!(page["next_cursor"], Value::Null);
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    entries.iter().for_each(assert_change_shape);
    let newest = &entries[0];
    assert_eq!(newest["op"], "delete");
    assert_eq!(newest["transaction_id"], blog.deleted);
    assert_eq!(newest["table_schema"], "public");
    assert_eq!(newest["table_name"], "posts");
    assert_eq!(newest["table_pk"], json!({"id": "1"}));
    assert_eq!(newest["actor"], json!({"type": "user", "id": "42"}));
    assert_eq!(newest["request_id"], "req-3");
    assert_eq!(newest["correlation_id"], "corr-3");
    assert_eq!(newest["action"], "post_deleted");
    let update = &entries[1];
    assert_eq!(update["changed_fields"], json!(["title"]));
    assert_eq!(update["changed_from"], json!({"title": "Hello"}));
    assert_eq!(update["data"]["title"], "Hello, world");

    // Filters, in both flag forms.
    let edits = run(
        &db,
        "timeline",
        &["--json", "--op=update", "--actor", "admin:7", "--table", "posts"],
    )
    .json();
    assert_eq!(edits["entries"].as_array().unwrap().len(), 1);
    assert_eq!(edits["entries"][0]["transaction_id"], blog.edited);
    let created = run(
        &db,
        "timeline",
        &["--json", "--action=post_created", "--request-id", "req-1"],
    )
    .json();
    assert_eq!(created["entries"].as_array().unwrap().len(), 2);
    let none = run(&db, "timeline", &["--json", "--correlation-id", "corr-9"]).json();
    assert_eq!(none, json!({"entries": [], "next_cursor": null}));
}

#[test]
fn timeline_pages_follow_their_cursor() {
    let (db, mut conn) = setup();
    blog(&mut conn);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["--json", "--page-size", "3"];
        if let Some(cursor) = &cursor {
            args.extend(["--cursor", cursor]);
        }
        let page = run(&db, "timeline", &args).json();
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    // The human listing tells where the next page starts.
    let first = run(&db, "timeline", &["--page-size=1"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_eq!(first.stdout.lines().count(), 1);
    assert!(
        first.stderr.starts_with("threadline: more changes: --cursor c1."),
        "{first:?}"
    );
    // A cursor belongs to its filter.
    let cursor = first.stderr.trim().rsplit(' ').next().unwrap();
    run(&db, "timeline", &["--table", "posts", "--cursor", cursor]).fails(2, "another read or filter");
    run(&db, "timeline", &["--cursor", "nonsense"]).fails(2, "invalid cursor");
}

#[test]
fn timeline_lines_are_aligned_and_name_actor_and_action() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    exec(&mut conn, "UPDATE posts SET body = 'edited from psql' WHERE id = 2");

    let out = run(&db, "timeline", &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    let psql: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        psql[1..],
        ["update", "public.posts", "{\"id\":\"2\"}", "-", "-", "body"]
    );
    let edit: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        edit[1..],
        [
            "update",
            "public.posts",
            "{\"id\":\"1\"}",
            "admin:7",
            "post_edited",
            "title"
        ]
    );
    let insert: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(insert[4..], ["user:42", "post_created", "-"]);
    // Columns start at the same place on every line.
    for column in [lines[2].find("admin:7").unwrap(), lines[2].find("post_edited").unwrap()] {
        for line in &lines {
            assert_eq!(&line.as_bytes()[column - 2..column], b"  ", "{}", out.stdout);
            assert_ne!(line.as_bytes()[column], b' ', "{}", out.stdout);
        }
    }

    let empty = run(&db, "timeline", &["--tenant", "nobody"]);
    assert_eq!((empty.code, empty.stdout.as_str()), (0, ""));
    assert!(empty.stderr.contains("no changes match"), "{empty:?}");
}

#[test]
fn history_lists_one_row_newest_first() {
    let (db, mut conn) = setup();
    let blog = blog(&mut conn);

    let history = run(&db, "history", &["posts", "1", "--json"]).json();
    let changes = history.as_array().expect("a JSON array");
    let ops: Vec<&str> = changes.iter().map(|c| c["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["delete", "update", "insert"]);
    changes.iter().for_each(assert_change_shape);
    assert_eq!(changes[2]["transaction_id"], blog.created);

    // More pages: the cursor goes to stderr, the JSON stays an array.
    let first = run(&db, "history", &["public.posts", "1", "--json", "--page-size", "2"]);
    assert_eq!(first.json().as_array().unwrap().len(), 2);
    assert!(
        first.stderr.starts_with("threadline: more changes: --cursor "),
        "{first:?}"
    );
    let cursor = first.stderr.trim().rsplit(' ').next().unwrap();
    let rest = run(
        &db,
        "history",
        &["public.posts", "1", "--json", "--page-size=2", "--cursor", cursor],
    );
    assert_eq!(rest.json()[0]["op"], "insert");
    assert_eq!(rest.stderr, "");

    let human = run(&db, "history", &["posts", "id=1"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert_eq!(human.stdout.lines().count(), 3);
    assert!(human.stdout.lines().next().unwrap().contains("delete"), "{human:?}");

    run(&db, "history", &["posts", "99"]).fails(1, "row not found");
    run(&db, "history", &["comments", "1"]).fails(1, "not found");
    run(&db, "history", &["posts"]).fails(2, "history takes <table> <key>, got 1 argument");
}

#[test]
fn history_finds_a_row_by_its_composite_key() {
    let (db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE memberships (a int, b text, role text, PRIMARY KEY (a, b));
         SELECT threadline.audit_table('memberships');
         INSERT INTO memberships VALUES (1, 'x', 'reader'), (1, 'y', 'reader');
         UPDATE memberships SET role = 'editor' WHERE a = 1 AND b = 'x';",
    );

    for key in ["a=1,b=x", "b=x,a=01", r#"{"a": 1, "b": "x"}"#] {
        let history = run(&db, "history", &["memberships", key, "--json"]).json();
        let changes = history.as_array().unwrap();
        assert_eq!(changes.len(), 2, "{key}: {history}");
        assert_eq!(changes[0]["op"], "update");
        assert_eq!(changes[0]["table_pk"], json!({"a": "1", "b": "x"}));
        assert_eq!(changes[1]["op"], "insert");
    }
    run(&db, "history", &["memberships", "a=1"]).fails(2, "row key");
    run(&db, "history", &["memberships", "a=1,b"]).fails(2, "is not col=value");
}

/// `at` moved by `micros` microseconds, as RFC 3339.
fn shifted(at: &Value, micros: i64) -> String {
    let at: DateTime<Utc> = at.as_str().unwrap().parse().unwrap();
    (at + Duration::microseconds(micros)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[test]
fn as_of_shows_the_row_found_deleted_or_before_the_horizon() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    let history = run(&db, "history", &["posts", "1", "--json"]).json();
    let (deleted, edited, created) = (&history[0], &history[1], &history[2]);

    let found = run(
        &db,
        "as-of",
        &["posts", "1", &shifted(&created["captured_at"], 0), "--json"],
    )
    .json();
    assert_eq!(keys(&found), ["change", "data", "status"]);
    assert_eq!(found["status"], "found");
    assert_eq!(found["data"], json!({"id": 1, "title": "Hello", "body": "first"}));
    assert_change_shape(&found["change"]);
    assert_eq!(found["change"]["op"], "insert");
    assert_eq!(found["change"]["action"], "post_created");

    let later = run(
        &db,
        "as-of",
        &["posts", "1", &shifted(&deleted["captured_at"], -1), "--json"],
    )
    .json();
    assert_eq!(later["data"]["title"], "Hello, world");
    assert_eq!(later["change"]["id"], edited["id"]);

    let gone = run(
        &db,
        "as-of",
        &["posts", "1", &shifted(&deleted["captured_at"], 0), "--json"],
    )
    .json();
    assert_eq!(
        gone,
        json!({"status": "deleted", "data": null, "deleted_at": deleted["captured_at"]})
    );

    let early = run(
        &db,
        "as-of",
        &["posts", "1", &shifted(&created["captured_at"], -1), "--json"],
    )
    .json();
    assert_eq!(early, json!({"status": "before_horizon", "data": null}));

    // For people: a status line, then the row.
    let human = run(&db, "as-of", &["posts", "id=1", &shifted(&edited["captured_at"], 0)]);
    assert_eq!(human.code, 0, "{human:?}");
    let (status, row) = human.stdout.split_once('\n').unwrap();
    assert!(status.starts_with("found: as set by the update of "), "{status}");
    assert!(status.ends_with("by admin:7)"), "{status}");
    let row: Value = serde_json::from_str(row).unwrap();
    assert_eq!(row["title"], "Hello, world");
    let human = run(&db, "as-of", &["posts", "1", &shifted(&deleted["captured_at"], 5)]);
    assert!(human.stdout.starts_with("deleted: "), "{human:?}");
    let human = run(&db, "as-of", &["posts", "1", "2000-01-01T00:00:00Z"]);
    assert!(human.stdout.starts_with("before horizon: "), "{human:?}");

    run(&db, "as-of", &["posts", "1", "yesterday"]).fails(2, "RFC 3339");
    run(&db, "as-of", &["posts", "99", "2030-01-01T00:00:00Z"]).fails(1, "row not found");
}

#[test]
fn incident_shows_the_transaction_its_action_and_field_diffs() {
    let (db, mut conn) = setup();
    let blog = blog(&mut conn);
    let id = blog.edited.to_string();

    let incident = run(&db, "incident", &[&id, "--json"]).json();
    assert_eq!(keys(&incident), ["action", "changes", "next_cursor", "transaction"]);
    let transaction = &incident["transaction"];
    assert_eq!(
        keys(transaction),
        [
            "action",
            "actor",
            "correlation_id",
            "id",
            "meta",
            "occurred_at",
            "request_id",
            "source",
            "tenant_id",
            "xact_id"
        ]
    );
    assert_eq!(transaction["id"], blog.edited);
    assert_eq!(transaction["actor"], json!({"type": "admin", "id": "7"}));
    assert_eq!(transaction["request_id"], "req-2");
    assert_eq!(incident["action"]["name"], "post_edited");
    assert_eq!(incident["action"]["status"], "ok");
    assert_eq!(incident["action"], transaction["action"]);
    assert_eq!(incident["next_cursor"], Value::Null);
    let changes = incident["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(keys(&changes[0]), ["change", "fields"]);
    assert_change_shape(&changes[0]["change"]);
    assert_eq!(
        changes[0]["fields"],
        json!([{"name": "title", "before": "Hello", "after": "Hello, world"}])
    );

    // An insert has no before side.
    let created = run(
        &db,
        "incident",
        &[&blog.created.to_string(), "--json", "--page-size", "1"],
    )
    .json();
    assert_eq!(
        created["changes"][0]["fields"][0],
        json!({"name": "body", "after": "first"})
    );
    let cursor = created["next_cursor"].as_str().expect("a second page");
    let rest = run(
        &db,
        "incident",
        &[
            &blog.created.to_string(),
            "--json",
            "--page-size",
            "1",
            "--cursor",
            cursor,
        ],
    )
    .json();
    assert_eq!(rest["changes"][0]["change"]["table_pk"], json!({"id": "2"}));
    assert_eq!(rest["next_cursor"], Value::Null);

    let human = run(&db, "incident", &[&id]);
    assert_eq!(human.code, 0, "{human:?}");
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Transaction  {} (xact {})",
            blog.edited,
            transaction["xact_id"].as_str().unwrap()
        )
    );
    assert_eq!(
        lines[1],
        format!("Occurred     {}", transaction["occurred_at"].as_str().unwrap())
    );
    assert_eq!(
        lines[2..6],
        [
            "Actor        admin:7",
            "Request      req-2",
            "Correlation  corr-2",
            "Action       post_edited (ok)"
        ]
    );
    assert!(
        lines[7].ends_with("  update  public.posts  {\"id\":\"1\"}"),
        "{}",
        human.stdout
    );
    assert_eq!(lines[8], "  title: \"Hello\" -> \"Hello, world\"");
}

#[test]
fn incident_marks_prior_values_the_policy_did_not_keep() {
    let (db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE notes (id int PRIMARY KEY, body text);
           SELECT threadline.audit_table('notes', '{"changed_from": false}');
           INSERT INTO notes VALUES (1, 'draft');"#,
    );
    let ctx = AuditContext::new().with_actor(ActorRef::user("5").unwrap());
    let id = audited(&mut conn, &ctx, "UPDATE notes SET body = 'final' WHERE id = 1").to_string();

    let incident = run(&db, "incident", &[&id, "--json"]).json();
    assert_eq!(incident["action"], Value::Null);
    assert_eq!(
        incident["changes"][0]["fields"],
        json!([{"name": "body", "before_state": "not_kept", "after": "final"}])
    );
    let human = run(&db, "incident", &[&id]);
    assert!(human.stdout.contains("Action       -\n"), "{human:?}");
    assert!(
        human.stdout.contains("\n  body: (not kept) -> \"final\"\n"),
        "{human:?}"
    );

    run(&db, "incident", &["999999"]).fails(1, "transaction not found");
    run(&db, "incident", &["latest"]).fails(2, "not an audit transaction id");
}

#[test]
fn exports_write_every_format_to_files_and_stdout() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    let dir = scratch("export");
    let header = "id,transaction_id,captured_at,table_schema,table_name,op,table_pk,data,changed_fields,\
                  changed_from,from_update,actor,request_id,correlation_id,tenant_id,action,\
                  masked_fields,excluded_fields\r\n";

    let path = dir.join("audit.csv");
    let out = run(&db, "export", &["--format=csv", "--output", path.to_str().unwrap()]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", ""),
        "{out:?}"
    );
    let csv = std::fs::read_to_string(&path).unwrap();
    assert!(csv.starts_with(header), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), 5, "{csv}");
    assert!(csv.contains(",delete,\"{\"\"id\"\": \"\"1\"\"}\","), "{csv}");
    assert!(!dir.join("audit.csv.partial").exists());

    let stdout = run(
        &db,
        "export",
        &["--format", "csv", "--page-size", "1", "--op", "insert"],
    );
    assert_eq!(stdout.code, 0, "{stdout:?}");
    assert!(stdout.stdout.starts_with(header));
    assert_eq!(stdout.stdout.lines().count(), 3);

    let path = dir.join("audit.json");
    let out = run(&db, "export", &["--format", "json", "--output", path.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        keys(&document),
        ["changes", "format_version", "generated_at", "truncated"]
    );
    assert_eq!(document["format_version"], 1);
    assert_eq!(document["truncated"], false);
    assert_eq!(document["changes"].as_array().unwrap().len(), 4);
    document["changes"]
        .as_array()
        .unwrap()
        .iter()
        .for_each(assert_change_shape);

    let stdout = run(&db, "export", &["--format=ndjson", "--output=-", "--actor", "user"]);
    assert_eq!(stdout.code, 0, "{stdout:?}");
    let lines: Vec<Value> = stdout
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    lines.iter().for_each(assert_change_shape);
    assert!(lines.iter().all(|c| c["actor"] == json!({"type": "user", "id": "42"})));

    let path = dir.join("audit.ndjson");
    let out = run(
        &db,
        "export",
        &["--format", "ndjson", "--output", path.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_parquet_export_is_a_new_folder_of_files_by_table_and_day() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    let dir = scratch("export-parquet");
    let out_dir = dir.join("audit");
    let path = out_dir.to_str().unwrap();
    let missing = run(&db, "export", &["--format", "parquet"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("--output DIR"), "{missing:?}");
    let out = run(
        &db,
        "export",
        &["--format", "parquet", "--table", "posts", "--output", path],
    );
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{out:?}");
    let table = out_dir.join("table=public.posts");
    let days: Vec<_> = std::fs::read_dir(&table)
        .unwrap()
        .map(|d| d.unwrap().file_name())
        .collect();
    assert_eq!(days.len(), 1, "{days:?}");
    let day = table.join(&days[0]);
    assert!(day.join("part-0.parquet").is_file(), "{day:?}");
    assert_eq!(std::fs::read(day.join("part-0.parquet")).unwrap()[..4], *b"PAR1");
    assert_eq!(
        std::fs::read_dir(&out_dir).unwrap().count(),
        1,
        "only the filtered table"
    );
    assert!(!dir.join("audit.partial").exists());
    let again = run(&db, "export", &["--format", "parquet", "--output", path]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("exists; name a new folder"), "{again:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn exports_stop_at_max_rows_and_say_so() {
    let (db, mut conn) = setup();
    blog(&mut conn);

    let out = run(
        &db,
        "export",
        &["--format", "ndjson", "--max-rows", "3", "--page-size", "2"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), 3);
    assert_eq!(
        out.stderr,
        "threadline: stopped at 3 rows (--max-rows); more changes match\n"
    );

    let out = run(&db, "export", &["--format", "json", "--max-rows=1"]);
    assert_eq!(out.json()["truncated"], true);
    assert!(out.stderr.contains("stopped at 1 row (--max-rows)"), "{out:?}");

    let exact = run(&db, "export", &["--format", "csv", "--max-rows", "4"]);
    assert_eq!((exact.code, exact.stderr.as_str()), (0, ""));
    assert_eq!(exact.stdout.lines().count(), 5);
}

#[test]
fn a_failed_export_leaves_no_file() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    let dir = scratch("failed-export");
    let path = dir.join("missing").join("audit.csv");

    run(&db, "export", &["--format", "csv", "--output", path.to_str().unwrap()]).fails(1, "cannot create");
    assert!(!dir.join("missing").exists());

    // A refused read after the output was opened: the cursor-less export fails at its
    // first page when the connection's role cannot read the trail.
    let path = dir.join("audit.csv");
    let app = db.app_url().unwrap();
    threadline(&[
        "export",
        "--format",
        "csv",
        "--database-url",
        &app,
        "--output",
        path.to_str().unwrap(),
    ])
    .fails(1, "permission denied");
    assert!(!path.exists());
    assert!(!dir.join("audit.csv.partial").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mistakes_are_usage_errors_with_hints() {
    let (db, _conn) = setup();

    let typo = run(&db, "timeline", &["--tabel", "posts"]);
    typo.fails(2, "unknown flag --tabel for timeline (did you mean --table?)");
    assert!(typo.stderr.contains("threadline timeline --help"), "{typo:?}");
    run(&db, "export", &["--format", "xml"]).fails(2, "not one of csv, json, ndjson");
    run(&db, "export", &[]).fails(2, "--format is required");
    run(&db, "export", &["--format", "csv", "--max-rows", "0"]).fails(2, "at least 1");
    run(
        &db,
        "timeline",
        &["--from", "2026-02-01T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
    )
    .fails(2, "after");
    run(&db, "timeline", &["--op", "upsert"]).fails(2, "--op: \"upsert\" is not one of insert");
    run(&db, "timeline", &["--tenant", " "]).fails(2, "--tenant: must be 1 to 256 bytes");
    run(&db, "timeline", &["--actor", "wizard:1"]).fails(2, "invalid actor type");
    run(&db, "timeline", &["--page-size", "0"]).fails(2, "between 1 and 10000");
    run(&db, "timeline", &["--json=1"]).fails(2, "takes no value");
    run(&db, "as-of", &["posts", "1", "2026-13-01"]).fails(2, "RFC 3339");
    threadline(&["timelime"]).fails(2, "did you mean timeline?");

    // No database named anywhere.
    threadline(&["timeline"]).fails(2, "pass --database-url URL or set DATABASE_URL");
    threadline(&["history", "posts", "1", "--json"]).fails(2, "DATABASE_URL");
    // A database that cannot be reached is a runtime error.
    threadline(&["timeline", "--database-url", "postgres://nobody@127.0.0.1:1/none"]).fails(1, "cannot connect");

    for command in [
        "timeline",
        "history",
        "as-of",
        "incident",
        "export",
        "health",
        "verify-coverage",
        "policy",
    ] {
        let help = threadline(&[command, "--help"]);
        assert_eq!(help.code, 0, "{help:?}");
        assert!(
            help.stdout.starts_with(&format!("usage: threadline {command}")),
            "{help:?}"
        );
    }
    let help = threadline(&["--help"]);
    assert!(help.stdout.contains("incident"), "{help:?}");
}

#[test]
fn health_reports_coverage_and_strict_fails_on_an_error_finding_until_fixed() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY); CREATE TABLE drafts (id int PRIMARY KEY);
         SELECT threadline.audit_table('posts');",
    );
    let text = run(&db, "health", &["--strict"]).ok().to_owned();
    assert!(text.contains("covered              public.posts"), "{text}");
    assert!(text.contains("UNCOVERED            public.drafts"), "{text}");
    assert!(
        text.contains("summary: 1 covered, 1 uncovered, 0 expected uncovered; 0 errors, 0 warnings"),
        "{text}"
    );

    exec(
        &mut conn,
        "ALTER EVENT TRIGGER threadline_ddl_command_end DISABLE; ALTER TABLE posts DISABLE TRIGGER threadline_insert;",
    );
    let strict = run(&db, "health", &["--strict", "--json"]);
    assert_eq!(strict.code, 1, "{strict:?}");
    assert!(strict.stderr.contains("error-level findings (--strict)"), "{strict:?}");
    let json: Value = serde_json::from_str(&strict.stdout).unwrap();
    assert_eq!(
        json["summary"],
        json!({"covered": 0, "uncovered": 2, "expected_uncovered": 0, "errors": 2, "warnings": 0})
    );
    assert_eq!(
        json["findings"][1],
        json!({"severity": "error", "table": "public.posts", "code": "trigger_disabled",
               "detail": "capture trigger threadline_insert on public.posts is disabled",
               "fix": "ALTER TABLE public.posts ENABLE TRIGGER threadline_insert;"})
    );
    assert_eq!(
        run(&db, "health", &[]).code,
        0,
        "without --strict a finding is reported, not fatal"
    );
    for finding in json["findings"].as_array().unwrap() {
        exec(&mut conn, finding["fix"].as_str().unwrap());
    }
    run(&db, "health", &["--strict"]).ok();
    run(&db, "health", &["--schema", "public", "--all-schemas"]).fails(2, "not both");
}

#[test]
fn threadline_toml_sets_expectations_that_health_and_verify_coverage_hold_the_database_to() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY); CREATE TABLE sessions (id int PRIMARY KEY);
         CREATE TABLE users (id int PRIMARY KEY); SELECT threadline.audit_table('posts');",
    );
    let dir = scratch("config");
    let nested = dir.join("src/deep");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(
        dir.join("threadline.toml"),
        "[coverage]\naudited = [\"posts\", \"users\", \"invoices\"]\nunaudited = [\"sessions\"]\nrequire_actor = true\n",
    )
    .unwrap();
    // Found from a folder below it, as diesel.toml is.
    let gate = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", db.url()]);
        threadline_in(&nested, &all)
    };
    let health = gate(&["health", "--json"]).json();
    assert_eq!(
        health["summary"],
        json!({"covered": 1, "uncovered": 1, "expected_uncovered": 1, "errors": 1, "warnings": 0})
    );
    assert_eq!(health["findings"][0]["code"], "require_actor_off");
    assert_eq!(health["findings"][0]["fix"], "SELECT threadline.require_actor(true);");

    let verify = gate(&["verify-coverage"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    assert_eq!(
        verify.stdout,
        "covered      public.posts\n\
         NOT COVERED  public.users: not audited\n  \
         fix: derive Audited on its model and run threadline gen-triggers, or SELECT threadline.audit_table('\"public\".\"users\"');\n\
         NOT COVERED  public.invoices: no such table\n\
         \nerror[require_actor_off]: strict mode is expected on, but threadline.require_actor is off: changes with \
         no actor are recorded instead of refused\n  fix: SELECT threadline.require_actor(true);\n\
         \nsummary: 1/3 expected tables covered\n"
    );
    assert!(
        verify
            .stderr
            .contains("2 of 3 expected tables not covered, 1 install-level errors"),
        "{verify:?}"
    );

    exec(
        &mut conn,
        "SELECT threadline.audit_table('users'); SELECT threadline.require_actor(true);
         CREATE TABLE invoices (id int PRIMARY KEY); SELECT threadline.audit_table('invoices');
         ALTER EVENT TRIGGER threadline_ddl_command_end DISABLE;
         ALTER TABLE users DISABLE TRIGGER threadline_update;",
    );
    let json = gate(&["verify-coverage", "--json"]);
    assert_eq!(json.code, 1, "{json:?}");
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["summary"], json!({"covered": 2, "expected": 3}));
    assert_eq!(json["tables"][1]["reason"], "error-level findings");
    assert_eq!(json["tables"][1]["findings"][0]["code"], "trigger_disabled");
    assert_eq!(json["install_findings"][0]["code"], "event_trigger_disabled");
    exec(&mut conn, json["tables"][1]["findings"][0]["fix"].as_str().unwrap());
    exec(&mut conn, json["install_findings"][0]["fix"].as_str().unwrap());
    assert!(
        gate(&["verify-coverage"])
            .ok()
            .ends_with("summary: 3/3 expected tables covered\n")
    );
    gate(&["health", "--strict"]).ok();
    // A flag overrides the file, whose schema is public by default and billing here.
    let other = gate(&["health", "--schema", "billing", "--json"]).json();
    assert_eq!(other["tables"], json!([]));
    let billing = scratch("config-billing");
    std::fs::write(billing.join("threadline.toml"), "[coverage]\nschema = \"billing\"\n").unwrap();
    let in_billing = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", db.url()]);
        threadline_in(&billing, &all).json()
    };
    assert_eq!(in_billing(&["health", "--json"])["tables"], json!([]));
    assert_eq!(
        in_billing(&["health", "--schema", "public", "--json"])["summary"]["covered"],
        3
    );
    assert_eq!(
        in_billing(&["health", "--all-schemas", "--json"])["summary"]["covered"],
        3
    );
}

#[test]
fn a_bad_threadline_toml_is_a_usage_error_naming_the_key() {
    let dir = scratch("bad-config");
    let file = dir.join("threadline.toml");
    std::fs::write(&file, "[coverage]\nrequire_actr = true\nunaudited = \"sessions\"\n").unwrap();
    let run = threadline_in(&dir, &["health", "--database-url", "postgres://unused"]);
    run.fails(
        2,
        "unknown key coverage.require_actr (did you mean coverage.require_actor?)",
    );
    assert!(
        run.stderr.contains(&format!(
            "{}: coverage.unaudited must be an array of table names",
            file.display()
        )),
        "{run:?}"
    );
    threadline(&["health", "--config", "/nonexistent/threadline.toml"]).fails(2, "no such file");
    let explicit = threadline(&["verify-coverage", "--config", file.to_str().unwrap()]);
    explicit.fails(2, "did you mean coverage.require_actor?");
}

#[test]
fn retention_purges_only_with_a_mode_logs_its_runs_and_history_says_where_the_trail_begins() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text); SELECT threadline.audit_table('posts');
         INSERT INTO posts VALUES (1, 'old'); INSERT INTO posts VALUES (2, 'old');
         UPDATE threadline.audit_changes SET captured_at = now() - interval '40 days';
         UPDATE threadline.audit_transactions SET occurred_at = now() - interval '40 days';
         UPDATE posts SET title = 'new' WHERE id = 1;",
    );
    run(&db, "retention", &["purge", "--keep-days", "30"]).fails(2, "give --dry-run");
    run(&db, "retention", &["purge", "--dry-run"]).fails(2, "no retention window: pass --keep-days N");
    run(&db, "retention", &["purge", "--dry-run", "--keep-days", "0"]).fails(2, "--keep-days:");
    run(&db, "retention", &["prune"]).fails(2, "unknown subcommand \"prune\"");
    let dry = run(&db, "retention", &["purge", "--dry-run", "--keep-days", "30"]);
    assert!(
        dry.ok()
            .starts_with("dry run: 2 changes and 1 transaction captured before "),
        "{dry:?}"
    );
    assert!(
        dry.stdout.ends_with("would be deleted; nothing was deleted\n"),
        "{dry:?}"
    );

    // The window from threadline.toml; the flag would override it.
    let dir = scratch("retention");
    std::fs::write(
        dir.join("threadline.toml"),
        "[retention]\nkeep_days = 30\nbatch_size = 1\npause_ms = 0\n",
    )
    .unwrap();
    let purge = threadline_in(
        &dir,
        &["retention", "purge", "--execute", "--json", "--database-url", db.url()],
    )
    .json();
    assert_eq!(purge["run"]["status"], "completed");
    assert_eq!(purge["run"]["changes_deleted"], 2);
    assert_eq!(purge["run"]["batches"], 3, "batches of one, then an empty one");
    assert_eq!(purge["abandoned"], json!([]));
    let runs = run(&db, "retention", &["runs"]);
    assert!(
        runs.ok()
            .starts_with("run 1 completed: 2 changes and 1 transaction captured before "),
        "{runs:?}"
    );

    let history = run(&db, "history", &["posts", "1"]);
    assert_eq!(history.code, 0, "{history:?}");
    assert!(history.stderr.contains("the trail begins at "), "{history:?}");
    run(&db, "history", &["posts", "2"]).fails(1, "row not found; the trail begins at ");
}

#[test]
fn evidence_show_and_views_list_read_what_the_api_recorded() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    let auditor = ActorRef::admin("7").unwrap();
    let report = threadline::health::HealthCheck::new().run_blocking(&mut conn).unwrap();
    threadline::evidence::record_blocking(&mut conn, &auditor, &threadline::evidence::Evidence::coverage(&report))
        .unwrap();
    let shown = run(&db, "evidence", &["show"]);
    assert!(
        shown
            .ok()
            .contains("proven       coverage:none            0 tables covered, 0 uncovered"),
        "{shown:?}"
    );
    assert!(shown.stdout.contains("(by admin:7 as role "), "{shown:?}");
    let json = run(
        &db,
        "evidence",
        &["show", "--subject", "coverage:none", "--history", "--json"],
    )
    .json();
    assert_eq!(json[0]["recorded_by"], json!({"type": "admin", "id": "7"}));
    assert_eq!(
        run(&db, "evidence", &["show", "--subject", "other", "--json"]).json(),
        json!([])
    );

    let filter = threadline::read::Filter::new().table("posts").unwrap();
    threadline::views::save_blocking(&mut conn, &auditor, "posts only", &filter).unwrap();
    let listed = run(&db, "views", &["list", "--owner", "admin:7"]);
    assert_eq!(
        listed.ok(),
        format!("{:<20} {:<30} {}\n", "admin:7", "posts only", "table=public.posts")
    );
    assert_eq!(
        run(&db, "views", &["list", "--owner", "admin:8", "--json"]).json(),
        json!([])
    );
    run(&db, "views", &["list", "--owner", "admin"]).fails(2, "name one operator");
}

#[test]
fn export_jobs_submit_run_and_fetch_the_bytes_of_a_direct_export_for_the_owner_only() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    let dir = scratch("export-jobs");
    let store = dir.join("store");
    let store_flag = store.to_str().unwrap();
    let id = run(
        &db,
        "export-jobs",
        &[
            "submit", "--owner", "admin:7", "--format", "csv", "--table", "posts", "--store", store_flag,
        ],
    );
    let id = id.ok().trim().to_owned();
    run(
        &db,
        "export-jobs",
        &["submit", "--format", "csv", "--store", store_flag],
    )
    .fails(2, "--owner ACTOR is required");
    run(&db, "export-jobs", &["sbumit"]).fails(2, "did you mean submit?");
    let worker = run(&db, "export-jobs", &["worker", "--once", "--store", store_flag]);
    assert!(
        worker.ok().starts_with(&format!("{id:<6} completed  admin:7")),
        "{worker:?}"
    );
    let list = run(
        &db,
        "export-jobs",
        &["list", "--owner", "admin:7", "--json", "--store", store_flag],
    )
    .json();
    assert_eq!(list[0]["state"], "completed");

    let output = dir.join("posts.csv");
    let output = output.to_str().unwrap();
    run(
        &db,
        "export-jobs",
        &[
            "fetch", &id, "--as", "admin:8", "--output", output, "--store", store_flag,
        ],
    )
    .fails(1, "export job not found");
    let fetched = run(
        &db,
        "export-jobs",
        &[
            "fetch", &id, "--as", "admin:7", "--output", output, "--store", store_flag,
        ],
    );
    assert!(fetched.ok().starts_with("wrote "), "{fetched:?}");
    let direct = run(&db, "export", &["--format", "csv", "--table", "posts"]);
    assert_eq!(std::fs::read_to_string(output).unwrap(), direct.ok());
    let cleaned = run(&db, "export-jobs", &["cleanup", "--json", "--store", store_flag]).json();
    assert_eq!(cleaned, json!({"expired": 0}), "not due for 7 days");
}

#[test]
fn health_escapes_the_control_characters_of_names_the_table_owner_chose() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    // a table whose name would print a forged all-clear summary, and clear the screen
    exec(
        &mut conn,
        "CREATE TABLE \"x\n\nsummary: 9 covered, 0 uncovered, 0 expected uncovered; 0 errors, 0 warnings\x1b[2J\" \
         (id int PRIMARY KEY);",
    );
    let text = run(&db, "health", &[]).ok().to_owned();
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(
        !text.lines().any(|line| line.starts_with("summary: 9 covered")),
        "a name forged a line: {text}"
    );
    assert!(
        text.contains("UNCOVERED            public.x\\n\\nsummary: 9 covered"),
        "{text}"
    );
}

#[test]
fn a_parquet_export_job_is_fetched_as_the_folder_a_direct_parquet_export_writes() {
    let (db, mut conn) = setup();
    blog(&mut conn);
    exec(
        &mut conn,
        "UPDATE threadline.audit_changes SET captured_at = captured_at - interval '1 day' WHERE op = 'delete'",
    );
    let dir = scratch("parquet-jobs");
    let store = dir.join("store");
    let store_flag = store.to_str().unwrap();
    run(
        &db,
        "export-jobs",
        &[
            "submit", "--owner", "admin:7", "--format", "parquetx", "--store", store_flag,
        ],
    )
    .fails(2, "not one of csv, json, ndjson, parquet");
    let id = run(
        &db,
        "export-jobs",
        &[
            "submit", "--owner", "admin:7", "--format", "parquet", "--store", store_flag,
        ],
    );
    let id = id.ok().trim().to_owned();
    let worker = run(&db, "export-jobs", &["worker", "--once", "--store", store_flag]);
    assert!(
        worker
            .ok()
            .starts_with(&format!("{id:<6} completed  admin:7          parquet")),
        "{worker:?}"
    );
    let output = dir.join("fetched");
    let fetch = || {
        let output = output.to_str().unwrap();
        run(
            &db,
            "export-jobs",
            &[
                "fetch", &id, "--as", "admin:7", "--output", output, "--store", store_flag,
            ],
        )
    };
    let fetched = fetch();
    assert!(fetched.ok().contains(" in 2 files to "), "{fetched:?}");
    let direct = dir.join("direct");
    run(
        &db,
        "export",
        &["--format", "parquet", "--output", direct.to_str().unwrap()],
    )
    .ok();
    let tree = |root: &Path| -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        for table in std::fs::read_dir(root).unwrap() {
            for day in std::fs::read_dir(table.unwrap().path()).unwrap() {
                for file in std::fs::read_dir(day.unwrap().path()).unwrap() {
                    let path = file.unwrap().path();
                    let name = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                    found.push((name, std::fs::read(&path).unwrap()));
                }
            }
        }
        found.sort();
        found
    };
    assert_eq!(tree(&output), tree(&direct));
    fetch().fails(1, "exists; name a new folder");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completion_scripts_name_every_command_and_its_flags() {
    let bash = threadline(&["completions", "bash"]);
    let script = bash.ok();
    for word in [
        "timeline",
        "export-jobs",
        "install-sql",
        "--table",
        "--page-size",
        "--database-url",
    ] {
        assert!(script.contains(word), "{word} missing from the bash script");
    }
    let zsh = threadline(&["completions", "zsh"]);
    assert!(zsh.ok().starts_with("#compdef threadline"), "{zsh:?}");
    threadline(&["completions", "bsah"]).fails(2, "did you mean bash?");
    threadline(&["completions"]).fails(
        2,
        "completions takes <bash|zsh|fish|elvish|powershell>, got 0 arguments",
    );
}
