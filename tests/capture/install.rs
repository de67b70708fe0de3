use std::path::Path;
use std::process::Command;

use diesel::RunQueryDsl;
use threadline::schema::{self, INSTALL_SQL, SCHEMA_VERSION, UNINSTALL_SQL};
use threadline::testing::TestDatabase;

use crate::support::{exec, setup};

const MIGRATION: &str = "migrations/2026-11-26-000000_threadline_install";

#[test]
fn the_migration_folder_holds_the_crate_install_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let up = std::fs::read_to_string(root.join(MIGRATION).join("up.sql")).unwrap();
    let down = std::fs::read_to_string(root.join(MIGRATION).join("down.sql")).unwrap();
    assert_eq!(up, INSTALL_SQL, "migrations/ drifted from threadline/sql/install.sql");
    assert_eq!(
        down, UNINSTALL_SQL,
        "migrations/ drifted from threadline/sql/uninstall.sql"
    );
}

#[test]
fn install_records_the_version_and_is_idempotent() {
    let (_db, mut conn) = setup();
    assert_eq!(schema::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    assert!(!schema::install(&mut conn).unwrap(), "a second install must do nothing");
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
    assert_eq!(schema::installed_version(&mut conn).unwrap(), None);
    exec(&mut conn, "INSERT INTO posts VALUES (1, 'still writable')");
    assert!(schema::install(&mut conn).unwrap());
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

/// A migrations folder holding only the install migration, so the test does not depend on
/// what else `migrations/` holds.
fn tempdir_with_install_migration() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("threadline-migrations-{}", std::process::id()));
    let target = dir.join("2026-11-26-000000_threadline_install");
    std::fs::create_dir_all(&target).unwrap();
    for file in ["up.sql", "down.sql"] {
        std::fs::copy(root.join(MIGRATION).join(file), target.join(file)).unwrap();
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
    assert_eq!(schema::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         SELECT threadline.audit_table('posts');
         INSERT INTO posts VALUES (1, 'a');",
    );
    let redo = diesel(&["migration", "redo"], db.url());
    assert!(
        redo.status.success(),
        "diesel migration redo: {}",
        String::from_utf8_lossy(&redo.stderr)
    );
    assert_eq!(schema::installed_version(&mut conn).unwrap(), Some(SCHEMA_VERSION));
    let count: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM threadline.audit_changes)",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(count, 0, "redo starts from an empty trail");
}
