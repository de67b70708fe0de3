//! The `threadline` schema: its install SQL and a way to apply it from Rust.
//!
//! Apps that migrate with the Diesel CLI keep the install SQL as a migration (the
//! repository's `migrations/` folder shows one); apps that migrate in code call
//! [`install`] at start-up.

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Bool, Integer, Nullable};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};

use crate::Error;

/// The schema version [`INSTALL_SQL`] creates.
pub const SCHEMA_VERSION: i32 = 1;

/// SQL that creates the `threadline` schema, its tables, functions and event triggers.
pub const INSTALL_SQL: &str = include_str!("../sql/install.sql");

/// SQL that removes the `threadline` schema and every audit row with it.
pub const UNINSTALL_SQL: &str = include_str!("../sql/uninstall.sql");

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

/// The installed schema version, or `None` when Threadline is not installed.
pub fn installed_version(conn: &mut PgConnection) -> Result<Option<i32>, Error> {
    let schema = sql_query("SELECT to_regclass('threadline.schema_version') IS NOT NULL AS present")
        .get_result::<Present>(conn)?;
    if !schema.present {
        return Ok(None);
    }
    let row =
        sql_query("SELECT max(version) AS version FROM threadline.schema_version").get_result::<VersionRow>(conn)?;
    Ok(row.version)
}

/// Installs the schema in one transaction unless it is already there.
///
/// Returns `true` when it installed, `false` when the current version was present.
///
/// ```no_run
/// # fn demo() -> Result<(), threadline::Error> {
/// use diesel::Connection;
///
/// let mut conn = diesel::PgConnection::establish("postgres://localhost/app")?;
/// threadline::schema::install(&mut conn)?;
/// # Ok(()) }
/// ```
pub fn install(conn: &mut PgConnection) -> Result<bool, Error> {
    conn.transaction(|conn| match installed_version(conn)? {
        None => {
            conn.batch_execute(INSTALL_SQL)?;
            Ok(true)
        }
        Some(SCHEMA_VERSION) => Ok(false),
        Some(found) => Err(Error::SchemaVersion {
            found,
            expected: SCHEMA_VERSION,
        }),
    })
}
