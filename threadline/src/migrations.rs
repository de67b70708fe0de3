//! The migrations of the `threadline` schema: its install, upgrade and removal SQL, and a
//! way to apply them from Rust.
//!
//! Apps that migrate with the Diesel CLI keep the install SQL as a migration, and each
//! later version's upgrade as another (`threadline install` writes whichever the app
//! lacks; the repository's `migrations/` folder shows both); apps that migrate in code call
//! [`install`] at start-up.
//!
//! Version 1 is `sql/install/`, one file per part of the schema (tables, context, policy,
//! reads, schema changes, health, privileges), joined in order. A released version is never
//! edited. The next version's changes go in `sql/upgrade/<version>.sql` (ending with its
//! `schema_version` row) and `sql/downgrade/<version>.sql`, an entry in [`UPGRADES`], and a
//! bump of [`SCHEMA_VERSION`]. A function an upgrade changes is replaced whole with `CREATE
//! OR REPLACE FUNCTION` (which keeps its owner and grants), and its downgrade puts the
//! previous body back. [`INSTALL_SQL`] is version 1 followed by every upgrade in order, so a
//! fresh install and an upgraded one are the same schema by construction (the install test
//! compares their catalogs), and every script runs with its `search_path` pinned.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Bool, Integer, Nullable};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};

use crate::Error;

/// The first statements of every script of the schema's: while it runs, names resolve in
/// PostgreSQL's own schema alone, so no function, operator or type that the owner of the
/// database (or of `public`) put on the session's path is chosen while a superuser installs,
/// and none is built into the audit store's defaults, constraints or indexes. The setting
/// is the session's, so it holds whether or not the script runs in one transaction (psql
/// runs each statement in its own unless given `-1`); the caller's path is kept for
/// `caller_search_path!`. A script that fails in a transaction leaves the path as it was;
/// one that fails outside of one leaves it pinned.
macro_rules! pinned_search_path {
    () => {
        "SELECT pg_catalog.set_config('threadline_script.caller_search_path', \
         pg_catalog.current_setting('search_path'), false);\n\
         SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false);\n"
    };
}

/// The last statement of every script of the schema's: gives the session (and the Diesel
/// CLI's record of the migration that follows) the `search_path` it had before.
macro_rules! caller_search_path {
    () => {
        "\nSELECT pg_catalog.set_config('search_path', \
         pg_catalog.current_setting('threadline_script.caller_search_path'), false);\n"
    };
}

/// Version 1 as released, byte for byte: `sql/install/`'s files in the order of their
/// numbers, one per part of the schema.
macro_rules! version_1 {
    () => {
        concat!(
            include_str!("../sql/install/01-tables.sql"),
            include_str!("../sql/install/02-context.sql"),
            include_str!("../sql/install/03-policy.sql"),
            include_str!("../sql/install/04-reads.sql"),
            include_str!("../sql/install/05-schema-changes.sql"),
            include_str!("../sql/install/06-health.sql"),
            include_str!("../sql/install/07-privileges.sql"),
        )
    };
}

/// A script of the schema's, between `pinned_search_path!` and `caller_search_path!`.
macro_rules! script {
    ($($part:expr),+ $(,)?) => {
        concat!(pinned_search_path!(), $($part),+, caller_search_path!())
    };
}

/// The schema version [`INSTALL_SQL`] creates.
pub const SCHEMA_VERSION: i32 = 3;

/// SQL that creates the `threadline` schema at [`SCHEMA_VERSION`]: its tables, functions and
/// event triggers.
pub const INSTALL_SQL: &str = concat!(
    "-- Threadline schema, version 3.\n",
    "-- Version 1 as released, then each upgrade in order.\n\n",
    script!(
        version_1!(),
        "\n",
        include_str!("../sql/upgrade/2.sql"),
        "\n",
        include_str!("../sql/upgrade/3.sql"),
    ),
);

/// One step from the version before it: its target version, the SQL that upgrades to it,
/// and the SQL that reverts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// The version it upgrades to.
    pub version: i32,
    /// The upgrade.
    pub up: &'static str,
    /// Its reversal (for a migration's `down.sql`).
    pub down: &'static str,
}

/// Every upgrade, oldest first: version 1 is the base install.
pub const UPGRADES: [Upgrade; 2] = [
    Upgrade {
        version: 2,
        up: script!(include_str!("../sql/upgrade/2.sql")),
        down: script!(include_str!("../sql/downgrade/2.sql")),
    },
    Upgrade {
        version: 3,
        up: script!(include_str!("../sql/upgrade/3.sql")),
        down: script!(include_str!("../sql/downgrade/3.sql")),
    },
];

/// The upgrades that take an install of `version` to [`SCHEMA_VERSION`], in order.
pub fn upgrades_from(version: i32) -> impl Iterator<Item = &'static Upgrade> {
    UPGRADES.iter().filter(move |u| u.version > version)
}

/// SQL that partitions the store of a fresh install by `period`, from the start of the
/// current period (see [`crate::partitions`]): what `threadline install --partitioned`
/// appends to the install migration. It fails on a store that holds changes, which
/// `threadline partitions convert` partitions instead.
pub fn partitioning_sql(period: crate::partitions::Period) -> String {
    format!(
        concat!(
            pinned_search_path!(),
            "SELECT threadline.partition_changes('{}'::text);\n",
            caller_search_path!()
        ),
        period.as_str()
    )
}

/// SQL that removes the `threadline` schema and every audit row with it.
pub const UNINSTALL_SQL: &str = script!(include_str!("../sql/uninstall.sql"));

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = Nullable<Integer>)]
    version: Option<i32>,
}

/// The installed schema version, or `None` when Threadline is not installed. Its queries
/// name every function by its schema, so they run the same under any `search_path`.
pub fn installed_version(conn: &mut PgConnection) -> Result<Option<i32>, Error> {
    let schema = sql_query("SELECT pg_catalog.to_regclass('threadline.schema_version') IS NOT NULL AS present")
        .get_result::<Present>(conn)?;
    if !schema.present {
        return Ok(None);
    }
    let row = sql_query("SELECT pg_catalog.max(version) AS version FROM threadline.schema_version")
        .get_result::<VersionRow>(conn)?;
    Ok(row.version)
}

/// Installs the schema, or upgrades an older install, in one transaction.
///
/// Returns `true` when it installed or upgraded, `false` when the current version was
/// present.
///
/// ```no_run
/// # fn demo() -> Result<(), threadline::Error> {
/// use diesel::Connection;
///
/// let mut conn = diesel::PgConnection::establish("postgres://localhost/app")?;
/// threadline::migrations::install(&mut conn)?;
/// # Ok(()) }
/// ```
pub fn install(conn: &mut PgConnection) -> Result<bool, Error> {
    conn.transaction(|conn| {
        // Nodes starting together install or upgrade one after the other.
        conn.batch_execute("SELECT pg_catalog.pg_advisory_xact_lock(7526752898406036334)")?;
        install_locked(conn)
    })
}

fn install_locked(conn: &mut PgConnection) -> Result<bool, Error> {
    match installed_version(conn)? {
        None => {
            conn.batch_execute(INSTALL_SQL)?;
            Ok(true)
        }
        Some(SCHEMA_VERSION) => Ok(false),
        Some(found) if found < SCHEMA_VERSION => {
            for upgrade in upgrades_from(found) {
                conn.batch_execute(upgrade.up)?;
            }
            Ok(true)
        }
        Some(found) => Err(Error::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}
