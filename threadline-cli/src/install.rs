//! `threadline install`: the schema's install migration, written into the app's migrations.

use std::io::{self, Write};

use chrono::Utc;
use threadline::schema::{INSTALL_SQL, SCHEMA_VERSION, UNINSTALL_SQL};

use crate::Failure;
use crate::args::{Args, Spec};
use crate::migrations::Migrations;

/// `threadline install`.
pub static INSTALL: Spec = Spec {
    command: "install",
    positionals: &[],
    options: &["migrations"],
    switches: &[],
    filters: false,
    database: false,
    config: true,
    help: "usage: threadline install [--migrations PATH]

Writes the migration that installs the threadline schema into the app's Diesel
migrations folder: a folder <version>_threadline_install dated after every existing
migration, whose up.sql is what 'threadline install-sql' prints and whose down.sql
removes the schema with every audit row. Apply it with 'diesel migration run', as a
superuser if you can (the event triggers that follow ALTER TABLE need one).

options:
  --migrations PATH     the Diesel migrations folder (default: paths.migrations of
                        threadline.toml, else migrations)
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory)

Writes nothing when a migration there installs the schema already. Exits with
status 1 when that migration installs a schema version this release cannot upgrade.",
};

/// Runs `threadline install`.
pub fn install(args: &Args) -> Result<(), Failure> {
    let config = args.config()?;
    let migrations = Migrations::read(&args.path_or("migrations", &config.migrations))?;
    let mut out = io::stdout().lock();
    if let Some((migration, version)) = migrations.install()? {
        let path = migrations.path(&migration.folder);
        if version != SCHEMA_VERSION {
            return Err(Failure::Runtime(format!(
                "{path} installs threadline schema version {version}; this release installs version \
                 {SCHEMA_VERSION} and cannot upgrade from version {version}"
            )));
        }
        writeln!(
            out,
            "threadline is already installed by {path} (schema version {version}); no upgrade migration is needed"
        )?;
        return Ok(());
    }
    let version = migrations.next_versions(1, Utc::now())?.remove(0);
    let folder = format!("{version}_threadline_install");
    migrations.write(&folder, INSTALL_SQL, UNINSTALL_SQL)?;
    writeln!(
        out,
        "wrote {} (threadline schema version {SCHEMA_VERSION}); apply it with diesel migration run",
        migrations.path(&folder)
    )?;
    Ok(())
}
