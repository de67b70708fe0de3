//! `threadline install` and `threadline gen-triggers`, run as processes on a scratch app,
//! with the migrations they write applied and reverted by the real Diesel CLI.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{Run, threadline, threadline_in};
use diesel::connection::SimpleConnection;
use diesel::sql_types::{Nullable, Text};
use diesel::{PgConnection, RunQueryDsl};
use serde_json::{Value, json};
use threadline::migrations::{INSTALL_SQL, UNINSTALL_SQL};
use threadline::testing::TestDatabase;

/// A scratch app: `src/` with a models file, and a `migrations/` folder creating `users`.
struct App {
    root: PathBuf,
}

/// The model of the scratch app; `{audited}` is its `#[audited(...)]` attribute.
const MODEL: &str = "use threadline::Audited;

#[derive(Queryable, Selectable, Identifiable, Audited)]
#[diesel(table_name = users)]
{audited}
pub struct User { pub id: i64, pub email: String, pub updated_at: String }
";

/// The first annotation of the scratch app; [`first_policy`] is its policy.
const FIRST: &str = "#[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]";

impl App {
    /// A fresh app named after its test.
    fn new(name: &str) -> App {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("gen-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let app = App { root };
        app.write(
            "migrations/2026-01-01-000000_create_users/up.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, email text, password_hash text, updated_at timestamptz);\n",
        );
        app.write(
            "migrations/2026-01-01-000000_create_users/down.sql",
            "DROP TABLE users;\n",
        );
        app.model(FIRST);
        app
    }

    /// Writes a file of the app, creating its folders.
    fn write(&self, path: &str, text: &str) {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Replaces the `#[audited(...)]` attribute of the model.
    fn model(&self, audited: &str) {
        self.write("src/models.rs", &MODEL.replace("{audited}", audited));
    }

    /// A path in the app.
    fn path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The migration folders, sorted.
    fn migrations(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path("migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// A file of a migration.
    fn read(&self, folder: &str, file: &str) -> String {
        fs::read_to_string(self.path("migrations").join(folder).join(file)).unwrap()
    }

    /// Runs `threadline <command> --src <app>/src --migrations <app>/migrations <args>`
    /// (`install` takes no `--src`).
    fn threadline(&self, command: &str, args: &[&str]) -> Run {
        let mut all: Vec<String> = vec![command.into()];
        if command != "install" {
            all.extend(["--src".into(), self.path("src").display().to_string()]);
        }
        all.extend(["--migrations".into(), self.path("migrations").display().to_string()]);
        all.extend(args.iter().map(|a| a.to_string()));
        threadline(&all)
    }

    /// Runs `diesel migration <action>` on the app's migrations; asserts it succeeded.
    fn diesel(&self, action: &str, db: &TestDatabase) {
        let output = Command::new("diesel")
            .args(["migration", action, "--migration-dir"])
            .arg(self.path("migrations"))
            .args(["--database-url", db.url()])
            .current_dir(&self.root)
            .output()
            .expect(
                "the diesel CLI must be installed: cargo install diesel_cli --no-default-features --features postgres",
            );
        assert!(
            output.status.success(),
            "diesel migration {action}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A policy as text.
#[derive(diesel::QueryableByName)]
struct Policy {
    #[diesel(sql_type = Nullable<Text>)]
    policy: Option<String>,
}

/// The deployed policy of `public.users`, `null` when it is not audited.
fn deployed(conn: &mut PgConnection) -> Value {
    let row: Policy = diesel::sql_query("SELECT threadline.table_policy('public.users')::text AS policy")
        .get_result(conn)
        .unwrap();
    row.policy
        .map_or(Value::Null, |text| serde_json::from_str(&text).unwrap())
}

/// The policy of [`FIRST`].
fn first_policy() -> Value {
    json!({"exclude": ["password_hash"], "mask": ["email"], "mask_placeholder": "[REDACTED]",
           "ignore_changes": ["updated_at"], "primary_key": ["id"], "changed_from": true})
}

/// Diesel's version of a migration folder.
fn version(folder: &str) -> String {
    folder.split('_').next().unwrap().replace('-', "")
}

#[test]
fn generated_migrations_deploy_the_annotation_and_follow_its_changes() {
    let app = App::new("deploy");
    let db = TestDatabase::empty().expect("test database");
    let installed = app.threadline("install", &[]);
    assert!(installed.ok().starts_with("wrote "), "{installed:?}");
    let run = app.threadline("gen-triggers", &[]);
    let folders = app.migrations();
    assert_eq!(folders.len(), 3, "{folders:?}");
    let first = folders[2].clone();
    assert!(first.ends_with("_threadline_audit_users"), "{folders:?}");
    assert!(run.ok().contains(&format!("{first} (public.users: new)")), "{run:?}");
    app.diesel("run", &db);
    let mut conn = db.connect().unwrap();
    assert_eq!(deployed(&mut conn), first_policy());

    // The deployed triggers capture by the policy.
    diesel::sql_query("INSERT INTO users VALUES (1, 'a@example.com', 'secret', now())")
        .execute(&mut conn)
        .unwrap();
    /// A captured row as text.
    #[derive(diesel::QueryableByName)]
    struct Data {
        #[diesel(sql_type = Text)]
        data: String,
    }
    let row: Data = diesel::sql_query("SELECT data::text AS data FROM threadline.audit_changes")
        .get_result(&mut conn)
        .unwrap();
    let data: Value = serde_json::from_str(&row.data).unwrap();
    assert_eq!(data["email"], "[REDACTED]");
    assert!(data.get("password_hash").is_none(), "{data}");

    // The annotation changes: --check fails and says why.
    let first_up = app.read(&first, "up.sql");
    let first_down = app.read(&first, "down.sql");
    app.model("#[audited(mask(email, password_hash), ignore_changes(updated_at))]");
    let check = app.threadline("gen-triggers", &["--check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stdout.contains(&format!(
            "public.users: the latest migration ({first}) excludes password_hash, the annotation does not; \
             the annotation masks password_hash, the latest migration does not; run threadline gen-triggers"
        )),
        "{check:?}"
    );
    assert!(check.stderr.contains("1 of 1 table needs a migration"), "{check:?}");

    let run = app.threadline("gen-triggers", &[]);
    let folders = app.migrations();
    assert_eq!(folders.len(), 4, "{folders:?}");
    let second = folders[3].clone();
    assert!(version(&second) > version(&first), "{folders:?}");
    assert!(
        run.ok().contains(&format!(
            "{second} (public.users: policy changed: exclude -password_hash, mask +password_hash)"
        )),
        "{run:?}"
    );
    assert_eq!(
        app.read(&first, "up.sql"),
        first_up,
        "an existing migration was changed"
    );
    assert_eq!(
        app.read(&first, "down.sql"),
        first_down,
        "an existing migration was changed"
    );
    app.diesel("run", &db);
    assert_eq!(
        deployed(&mut conn),
        json!({"exclude": [], "mask": ["email", "password_hash"], "mask_placeholder": "[REDACTED]",
               "ignore_changes": ["updated_at"], "primary_key": ["id"], "changed_from": true})
    );
    let check = app.threadline("gen-triggers", &["--check"]);
    assert!(check.ok().ends_with("migrations match the annotations\n"), "{check:?}");
    assert!(check.stdout.contains("public.users: matches "), "{check:?}");
    let again = app.threadline("gen-triggers", &[]);
    assert!(again.ok().contains("nothing to write: 1 table up to date"), "{again:?}");
    assert_eq!(app.migrations().len(), 4);

    // Each down.sql restores the policy before it.
    app.diesel("revert", &db);
    assert_eq!(deployed(&mut conn), first_policy());
    app.diesel("revert", &db);
    assert_eq!(deployed(&mut conn), Value::Null, "the first down.sql stops the capture");
}

#[test]
fn dry_run_prints_the_migrations_and_writes_nothing() {
    let app = App::new("dry-run");
    let before = app.migrations();
    let run = app.threadline("gen-triggers", &["--dry-run"]);
    let out = run.ok();
    assert_eq!(app.migrations(), before);
    assert!(out.starts_with("would write "), "{run:?}");
    assert!(
        out.contains("_threadline_audit_users (public.users: new)\n  up.sql:\n"),
        "{run:?}"
    );
    assert!(
        out.contains("    SELECT threadline.audit_table('\"public\".\"users\"', '{\"exclude\":[\"password_hash\"]"),
        "{run:?}"
    );
    assert!(
        out.contains("note: no migration installs the threadline schema"),
        "{run:?}"
    );
    assert!(
        out.ends_with("dry run: would write 1 migration, 0 tables up to date; nothing was written\n"),
        "{run:?}"
    );
    let check = app.threadline("gen-triggers", &["--check"]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stdout.contains("public.users: #[derive(Audited)] on `User` (")
            && check
                .stdout
                .contains("audits it, no migration does; run threadline gen-triggers"),
        "{check:?}"
    );
    assert_eq!(app.migrations(), before);
    let both = app.threadline("gen-triggers", &["--check", "--dry-run"]);
    assert_eq!(both.code, 2, "{both:?}");
}

#[test]
fn install_writes_one_migration_and_recognises_it_afterwards() {
    let app = App::new("install");
    app.threadline("install", &[]).ok();
    let folders = app.migrations();
    assert_eq!(folders.len(), 2, "{folders:?}");
    let install = &folders[1];
    assert!(install.ends_with("_threadline_install"), "{folders:?}");
    assert_eq!(app.read(install, "up.sql"), INSTALL_SQL);
    assert_eq!(app.read(install, "down.sql"), UNINSTALL_SQL);
    let again = app.threadline("install", &[]);
    assert_eq!(
        again.ok(),
        format!(
            "threadline is installed by the migrations up to {} (schema version {}); no upgrade migration is \
             needed\n",
            app.path("migrations").join(install).display(),
            threadline::migrations::SCHEMA_VERSION
        )
    );
    assert_eq!(app.migrations(), folders);

    let other = App::new("install-other-version");
    other.write(
        "migrations/2026-02-01-000000_threadline_install/up.sql",
        "-- Threadline schema, version 99.\n",
    );
    let refused = other.threadline("install", &[]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("leaves threadline schema version 99"),
        "{refused:?}"
    );
    assert_eq!(other.migrations().len(), 2);
}

#[test]
fn install_upgrades_an_app_that_installed_version_1() {
    let app = App::new("upgrade");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let v1 = fs::read_to_string(repo.join("migrations/2026-11-26-000000_threadline_install/up.sql")).unwrap();
    assert!(v1.starts_with("-- Threadline schema, version 1.\n"));
    app.write("migrations/2026-02-01-000000_threadline_install/up.sql", &v1);
    app.write(
        "migrations/2026-02-01-000000_threadline_install/down.sql",
        UNINSTALL_SQL,
    );
    let db = TestDatabase::empty().expect("test database");
    app.diesel("run", &db);
    let run = app.threadline("install", &[]);
    let folders = app.migrations();
    assert_eq!(folders.len(), 4, "{folders:?}");
    assert!(folders[2].ends_with("_threadline_upgrade_2"), "{folders:?}");
    assert!(folders[3].ends_with("_threadline_upgrade_3"), "{folders:?}");
    let said = run.ok();
    assert!(said.contains("(upgrades threadline schema version 1 to 2)"), "{run:?}");
    assert!(said.contains("(upgrades threadline schema version 2 to 3)"), "{run:?}");
    app.diesel("run", &db);
    let mut conn = db.connect().unwrap();
    assert_eq!(
        threadline::migrations::installed_version(&mut conn).unwrap(),
        Some(threadline::migrations::SCHEMA_VERSION)
    );
    assert!(
        app.threadline("install", &[])
            .ok()
            .contains("no upgrade migration is needed")
    );
    app.diesel("revert", &db);
    assert_eq!(threadline::migrations::installed_version(&mut conn).unwrap(), Some(2));
    app.diesel("revert", &db);
    assert_eq!(threadline::migrations::installed_version(&mut conn).unwrap(), Some(1));
}

#[test]
fn mistakes_in_sources_are_reported_at_their_place_and_nothing_is_written() {
    let app = App::new("syntax");
    let before = app.migrations();
    app.write("src/broken.rs", "pub struct Broken {\n    id: i64,,\n}\n");
    let run = app.threadline("gen-triggers", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    let broken = app.path("src/broken.rs").display().to_string();
    assert!(run.stderr.starts_with(&format!("{broken}:2:13: ")), "{run:?}");
    assert!(
        run.stderr.contains("1 error in the #[derive(Audited)] models"),
        "{run:?}"
    );
    assert_eq!(app.migrations(), before);

    fs::remove_file(app.path("src/broken.rs")).unwrap();
    app.model("#[audited(mask(email), masks(updated_at))]");
    let run = app.threadline("gen-triggers", &["--check"]);
    assert_eq!(run.code, 2, "{run:?}");
    let models = app.path("src/models.rs").display().to_string();
    assert!(
        run.stderr.starts_with(&format!(
            "{models}:5:24: unknown key `masks` in #[audited(...)]; did you mean `mask`?"
        )),
        "{run:?}"
    );
    assert!(run.stderr.contains("= help: the correct format looks like"), "{run:?}");
    assert_eq!(app.migrations(), before);
}

#[test]
fn versions_follow_a_migration_dated_in_the_future() {
    let app = App::new("future");
    app.write("migrations/2999-01-01-000000_x/up.sql", "SELECT 1;\n");
    app.write("migrations/2999-01-01-000000_x/down.sql", "SELECT 1;\n");
    app.write(
        "src/blog/mod.rs",
        "mod posts {
             #[derive(Audited)]
             #[audited(changed_from = false)]
             pub struct Post { pub id: i64, pub title: String }
         }
         #[derive(threadline::Audited)]
         #[diesel(table_name = comments)]
         #[audited(schema = \"blog\")]
         pub struct Comment { pub id: i64 }",
    );
    app.threadline("install", &[]).ok();
    let run = app.threadline("gen-triggers", &[]);
    assert!(
        run.ok()
            .ends_with("wrote 3 migrations, 0 tables up to date; apply them with diesel migration run\n"),
        "{run:?}"
    );
    assert_eq!(
        app.migrations(),
        [
            "2026-01-01-000000_create_users",
            "2999-01-01-000000_x",
            "2999-01-01-000001_threadline_install",
            "2999-01-01-000002_threadline_audit_posts",
            "2999-01-01-000003_threadline_audit_blog_comments",
            "2999-01-01-000004_threadline_audit_users",
        ]
    );
}

#[test]
fn a_model_removed_from_the_code_is_a_note_not_a_failure() {
    let app = App::new("removed");
    app.threadline("gen-triggers", &[]).ok();
    app.write("src/models.rs", "pub struct User { pub id: i64 }\n");
    let check = app.threadline("gen-triggers", &["--check"]);
    let out = check.ok();
    assert!(
        out.starts_with("note: public.users has a policy migration (")
            && out.contains("but no #[derive(Audited)] model"),
        "{check:?}"
    );
    assert!(out.ends_with("migrations match the annotations\n"), "{check:?}");
    let run = app.threadline("gen-triggers", &[]);
    assert!(run.ok().contains("no #[derive(Audited)] models under"), "{run:?}");
    assert_eq!(app.migrations().len(), 2);
}

#[test]
fn two_policies_for_one_table_are_refused() {
    let app = App::new("conflict");
    app.write(
        "src/admin.rs",
        "#[derive(Audited)]\n#[diesel(table_name = users)]\npub struct AdminUser { pub id: i64 }\n",
    );
    let run = app.threadline("gen-triggers", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    // Line numbers count from the top of each file, whichever files were read before.
    let (models, admin) = (app.path("src/models.rs"), app.path("src/admin.rs"));
    assert!(
        run.stderr.starts_with(&format!(
            "{}:6:12: `User` audits public.users with another policy than `AdminUser` at {}:3:12;",
            models.display(),
            admin.display()
        )),
        "{run:?}"
    );
    assert_eq!(app.migrations().len(), 1);
}

#[test]
fn help_and_usage() {
    for command in ["install", "gen-triggers"] {
        let help = threadline(&[command, "--help"]);
        assert!(
            help.ok().starts_with(&format!("usage: threadline {command} ")),
            "{help:?}"
        );
    }
    let usage = threadline(&["--help"]);
    assert!(usage.ok().contains("  gen-triggers    "), "{usage:?}");
    let wrong = threadline(&["gen-triggers", "--database-url", "x"]);
    assert_eq!(wrong.code, 2, "{wrong:?}");
    let missing = threadline(&["install", "--migrations", "/nonexistent/migrations"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("no such migrations folder"), "{missing:?}");
}

#[test]
fn policy_show_and_check_compare_the_annotations_with_the_database() {
    let app = App::new("drift");
    let db = TestDatabase::empty().expect("test database");
    app.threadline("install", &[]).ok();
    app.threadline("gen-triggers", &[]).ok();
    app.diesel("run", &db);
    let show = |args: &[&str]| {
        let mut all = vec!["policy", "show", "--src"];
        let src = app.path("src").display().to_string();
        all.push(&src);
        all.extend(["--database-url", db.url()]);
        all.extend(args);
        threadline(&all)
    };
    let db_check = || app.threadline("gen-triggers", &["--check", "--database-url", db.url()]);
    let out = show(&["--check"]).ok().to_owned();
    assert_eq!(
        out,
        "matches       public.users\n\nsummary: 1 matches, 0 differs, 0 declared not deployed, 0 deployed not declared\n"
    );
    assert!(
        db_check()
            .ok()
            .ends_with("migrations and the database match the annotations\n")
    );

    // A policy changed by hand in psql: the migrations still match, the database does not.
    let mut conn = db.connect().unwrap();
    conn.batch_execute(
        r#"SELECT threadline.audit_table('users', '{"mask": ["email", "updated_at"], "exclude": ["password_hash"]}');
           CREATE TABLE notes (id int PRIMARY KEY); SELECT threadline.audit_table('notes');"#,
    )
    .unwrap();
    app.threadline("gen-triggers", &["--check"]).ok();
    let drift = show(&["--check"]);
    assert_eq!(drift.code, 1, "{drift:?}");
    assert!(
        drift.stderr.contains("2 of 2 tables do not match (--check)"),
        "{drift:?}"
    );
    assert!(
        drift.stdout.starts_with(
            "NOT DECLARED  public.notes: audited, but no #[derive(Audited)] model names it; derive Audited on its \
             model, or unaudit it with SELECT threadline.unaudit_table('\"public\".\"notes\"');\n\
             DIFFERS       public.users\n  \
             the code ignores changes to updated_at, the database does not\n  \
             the database masks updated_at, the code does not\n"
        ),
        "{drift:?}"
    );
    let json = show(&["--json"]).json();
    assert_eq!(
        json["summary"],
        json!({"matches": 0, "differs": 1, "declared_not_deployed": 0, "deployed_not_declared": 1})
    );
    assert_eq!(
        json["tables"][1]["differences"][1],
        json!({"key": "mask", "declared": ["email"], "deployed": ["email", "updated_at"],
               "added": [], "removed": ["updated_at"]})
    );
    assert_eq!(json["tables"][1]["deployed"]["mask"], json!(["email", "updated_at"]));
    let check = db_check();
    assert_eq!(check.code, 1, "{check:?}");
    assert!(
        check.stdout.contains(
            "public.users: the annotation ignores changes to updated_at, the database does not; \
             the database masks updated_at, the annotation does not; run diesel migration run"
        ),
        "{check:?}"
    );
    assert!(
        check
            .stderr
            .contains("1 of 1 table differs from what the database deployed"),
        "{check:?}"
    );

    // Deploying the annotation again and unauditing the stray table clear the drift.
    let up = app.read(&app.migrations()[2], "up.sql");
    conn.batch_execute(&up).unwrap();
    conn.batch_execute("SELECT threadline.unaudit_table('notes');").unwrap();
    show(&["--check"]).ok();
    db_check().ok();

    conn.batch_execute("SELECT threadline.unaudit_table('users');").unwrap();
    let missing = show(&["--check"]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stdout
            .starts_with("NOT DEPLOYED  public.users: declared by a model, not audited;"),
        "{missing:?}"
    );
    let check = db_check();
    assert!(
        check
            .stdout
            .contains("public.users: the annotation audits it, the database does not"),
        "{check:?}"
    );
    threadline(&["policy", "shwo"]).fails(2, "unknown policy command \"shwo\" (did you mean show?)");
}

#[test]
fn the_blog_example_is_clean_under_every_health_gate() {
    let db = TestDatabase::empty().expect("test database");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("diesel")
        .args(["migration", "run", "--migration-dir"])
        .arg(repo.join("migrations"))
        .args(["--database-url", db.url()])
        .output()
        .expect("the diesel CLI");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    // Run from the example's folder: its threadline.toml names the sources, the
    // migrations and the tables it expects audited.
    let blog = repo.join("examples/blog");
    let gate = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--database-url", db.url()]);
        threadline_in(&blog, &all)
    };
    let health = gate(&["health", "--strict"]);
    assert!(
        health
            .ok()
            .contains("summary: 3 covered, 0 uncovered, 1 expected uncovered; 0 errors, 0 warnings"),
        "{health:?}"
    );
    let coverage = gate(&["verify-coverage"]);
    assert!(
        coverage.ok().ends_with("summary: 3/3 expected tables covered\n"),
        "{coverage:?}"
    );
    let policy = gate(&["policy", "show", "--check"]);
    assert!(policy.ok().contains("3 matches, 0 differs"), "{policy:?}");
    let check = gate(&["gen-triggers", "--check"]);
    assert!(
        check
            .ok()
            .ends_with("migrations and the database match the annotations\n"),
        "{check:?}"
    );
}

#[test]
fn a_partitioned_install_migration_partitions_the_store_diesel_installs() {
    let app = App::new("install-partitioned");
    let typo = app.threadline("install", &["--partitioned", "wek"]);
    assert_eq!(typo.code, 2, "{typo:?}");
    assert!(typo.stderr.contains("did you mean week?"), "{typo:?}");
    assert!(
        app.threadline("install", &["--partitioned", "week"])
            .ok()
            .contains("partitioned by week")
    );
    let db = TestDatabase::empty().expect("test database");
    app.diesel("run", &db);
    let url = db.url();
    let list = threadline(&["partitions", "list", "--database-url", url, "--json"]);
    let partitions: serde_json::Value = serde_json::from_str(list.ok()).unwrap();
    let names: Vec<&str> = partitions
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "the time before, this week and two ahead, the default: {names:?}"
    );
    assert!(names[0].starts_with("audit_changes_before_"), "{names:?}");
    assert_eq!(names[4], "audit_changes_default");
    let again = threadline(&["partitions", "convert", "--period", "day", "--database-url", url]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(again.stderr.contains("partitioned by week already"), "{again:?}");
    let ensure = threadline(&["partitions", "ensure", "--ahead", "4", "--database-url", url]);
    assert_eq!(ensure.ok(), "2 partitions created\n");
    // The down migration removes the schema, partitions and all.
    app.diesel("revert", &db);
    let list = threadline(&["partitions", "list", "--database-url", url]);
    assert_eq!(list.code, 1, "{list:?}");
}
