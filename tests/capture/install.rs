use std::path::Path;
use std::process::Command;

use diesel::RunQueryDsl;
use threadline::migrations::{self, INSTALL_SQL, SCHEMA_VERSION, UNINSTALL_SQL};
use threadline::testing::TestDatabase;

use crate::support::{exec, setup};

const MIGRATION: &str = "migrations/2026-11-26-000000_threadline_install";

/// The example's migrations: version 1 as released, then each upgrade as `threadline
/// install` writes it.
fn example_migrations() -> (String, Vec<(String, String)>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap();
    let mut upgrades: Vec<_> = std::fs::read_dir(root.join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .contains("_threadline_upgrade_")
        })
        .collect();
    upgrades.sort();
    let upgrades = upgrades
        .into_iter()
        .map(|p| (read(p.join("up.sql")), read(p.join("down.sql"))))
        .collect();
    (read(root.join(MIGRATION).join("up.sql")), upgrades)
}

#[test]
fn the_migration_folder_holds_the_released_install_and_every_upgrade() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (v1, upgrades) = example_migrations();
    assert!(v1.starts_with("-- Threadline schema, version 1.\n"));
    assert!(INSTALL_SQL.contains(&v1), "version 1 is part of the install, unchanged");
    let expected: Vec<(String, String)> = migrations::UPGRADES
        .iter()
        .map(|u| (u.up.to_owned(), u.down.to_owned()))
        .collect();
    assert_eq!(
        upgrades, expected,
        "migrations/ drifted from threadline/sql/upgrade and downgrade"
    );
    let down = std::fs::read_to_string(root.join(MIGRATION).join("down.sql")).unwrap();
    assert_eq!(
        down, UNINSTALL_SQL,
        "migrations/ drifted from threadline/sql/uninstall.sql"
    );
}

/// Everything of schema `threadline` a role could notice: columns, constraints, indexes,
/// functions with their bodies and settings, triggers, privileges.
fn catalog(conn: &mut diesel::PgConnection) -> String {
    #[derive(diesel::QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let sql = "SELECT string_agg(x, E'\\n' ORDER BY x) AS text FROM (
        SELECT format('column %s.%s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull)
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'threadline'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid))
          FROM pg_constraint WHERE connamespace = 'threadline'::regnamespace
        UNION ALL SELECT format('index %s', pg_get_indexdef(indexrelid))
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'threadline'::regnamespace
        UNION ALL SELECT format('function %s %s %s', p.oid::regprocedure, pg_get_functiondef(p.oid), p.proacl)
          FROM pg_proc p WHERE p.pronamespace = 'threadline'::regnamespace
        UNION ALL SELECT format('relation %s %s %s', c.relname, c.relkind, c.relacl)
          FROM pg_class c WHERE c.relnamespace = 'threadline'::regnamespace
        UNION ALL SELECT format('trigger %s %s', pg_get_triggerdef(t.oid), t.tgenabled)
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'threadline'::regnamespace AND NOT t.tgisinternal
        UNION ALL SELECT format('version %s', version) FROM threadline.schema_version) s(x)";
    diesel::sql_query(sql).get_result::<Text>(conn).unwrap().text
}

/// Asserts two catalogs equal, naming the lines only one has.
fn same(left: &str, right: &str, sides: &str) {
    let only = |a: &str, b: &str| {
        a.lines()
            .filter(|l| !b.lines().any(|m| m == *l))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (l, r) = (only(left, right), only(right, left));
    assert!(
        l.is_empty() && r.is_empty(),
        "{sides}: only in the first {l:#?}, only in the second {r:#?}"
    );
}

#[test]
fn an_upgraded_install_is_the_fresh_install_and_its_down_sql_reverts_it() {
    let (v1, upgrades) = example_migrations();
    let fresh = TestDatabase::empty().unwrap();
    migrations::install(&mut fresh.connect().unwrap()).unwrap();
    let upgraded = TestDatabase::empty().unwrap();
    let mut conn = upgraded.connect().unwrap();
    exec(&mut conn, &v1);
    let before = catalog(&mut conn);
    for (up, _) in &upgrades {
        exec(&mut conn, up);
    }
    same(
        &catalog(&mut conn),
        &catalog(&mut fresh.connect().unwrap()),
        "upgraded, fresh",
    );
    for (_, down) in upgrades.iter().rev() {
        exec(&mut conn, down);
    }
    same(&catalog(&mut conn), &before, "reverted, version 1");
    assert!(migrations::install(&mut conn).unwrap(), "install() upgrades version 1");
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
}

#[test]
fn a_test_database_copied_from_the_template_is_a_fresh_install() {
    let copied = TestDatabase::new().unwrap();
    let installed = TestDatabase::empty().unwrap();
    let mut conn = installed.connect().unwrap();
    threadline::testing::install(&mut conn).unwrap();
    same(
        &catalog(&mut copied.connect().unwrap()),
        &catalog(&mut conn),
        "copied from the template, installed",
    );
    exec(
        &mut copied.connect().unwrap(),
        "CREATE TABLE posts (id int PRIMARY KEY); SELECT threadline.audit_table('posts'); INSERT INTO posts VALUES (1);",
    );
    // What one test writes stays in its database: a later copy starts empty.
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |conn: &mut diesel::PgConnection| {
        diesel::sql_query(
            "SELECT (SELECT count(*) FROM threadline.audit_changes) + (SELECT count(*) FROM threadline.audited_tables) \
             + (SELECT count(*) FROM pg_tables WHERE tablename = 'posts') AS n",
        )
        .get_result::<Count>(conn)
        .unwrap()
        .n
    };
    assert_eq!(count(&mut copied.connect().unwrap()), 3);
    let second = TestDatabase::new().unwrap();
    assert_eq!(count(&mut second.connect().unwrap()), 0);
}

#[test]
fn install_records_the_version_and_is_idempotent() {
    let (_db, mut conn) = setup();
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    assert!(
        !migrations::install(&mut conn).unwrap(),
        "a second install must do nothing"
    );
}

#[test]
fn uninstall_removes_the_schema_and_capture_triggers() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         SELECT threadline.audit_table('posts');",
    );
    exec(&mut conn, UNINSTALL_SQL);
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), None);
    exec(&mut conn, "INSERT INTO posts VALUES (1, 'still writable')");
    assert!(migrations::install(&mut conn).unwrap());
}

fn diesel(args: &[&str], url: &str) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let only_install = tempdir_with_install_migration();
    Command::new("diesel")
        .args(args)
        .arg("--migration-dir")
        .arg(&only_install)
        .env("DATABASE_URL", url)
        .current_dir(root)
        .output()
        .expect("the diesel CLI must be installed: cargo install diesel_cli --no-default-features --features postgres")
}

/// A migrations folder holding only the install migration and its upgrades, so the test
/// does not depend on what else `migrations/` holds.
fn tempdir_with_install_migration() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let dir = std::env::temp_dir().join(format!("threadline-migrations-{}", std::process::id()));
    for entry in std::fs::read_dir(&root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !(name.ends_with("_threadline_install") || name.contains("_threadline_upgrade_")) {
            continue;
        }
        std::fs::create_dir_all(dir.join(&name)).unwrap();
        for file in ["up.sql", "down.sql"] {
            std::fs::copy(root.join(&name).join(file), dir.join(&name).join(file)).unwrap();
        }
    }
    dir
}

#[test]
fn diesel_migration_run_and_redo_install_the_schema() {
    let db = TestDatabase::empty().unwrap();
    let run = diesel(&["migration", "run"], db.url());
    assert!(
        run.status.success(),
        "diesel migration run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut conn = db.connect().unwrap();
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         SELECT threadline.audit_table('posts');
         INSERT INTO posts VALUES (1, 'a');",
    );
    // Redoing the upgrade keeps the trail; redoing everything starts it again.
    let redo = diesel(&["migration", "redo"], db.url());
    assert!(
        redo.status.success(),
        "diesel migration redo: {}",
        String::from_utf8_lossy(&redo.stderr)
    );
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    exec(&mut conn, "INSERT INTO posts VALUES (2, 'b')");
    let changes = |conn: &mut diesel::PgConnection| -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM threadline.audit_changes)",
        ))
        .get_result(conn)
        .unwrap()
    };
    assert_eq!(changes(&mut conn), 2, "the trail outlives a redo of the upgrade");
    let redo = diesel(&["migration", "redo", "--all"], db.url());
    assert!(
        redo.status.success(),
        "diesel migration redo --all: {}",
        String::from_utf8_lossy(&redo.stderr)
    );
    assert_eq!(migrations::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    assert_eq!(changes(&mut conn), 0, "redo --all starts from an empty trail");
}
