//! `threadline install`: the schema's install migration, written into the app's migrations.

use std::io::{self, Write};

use chrono::Utc;
use threadline::migrations::{INSTALL_SQL, SCHEMA_VERSION, UNINSTALL_SQL, partitioning_sql, upgrades_from};

use crate::Failure;
use crate::args::{Args, Spec};
use crate::migrations::Migrations;

/// `threadline install`.
pub static INSTALL: Spec = Spec {
    command: "install",
    positionals: &[],
    optional: &[],
    options: &["migrations", "partitioned"],
    switches: &[],
    filters: false,
    database: false,
    config: true,
    help: "usage: threadline install [--migrations PATH] [--partitioned day|week|month]

Writes the migration that installs the threadline schema into the app's Diesel
migrations folder: a folder <version>_threadline_install dated after every existing
migration, whose up.sql is what 'threadline install-sql' prints and whose down.sql
removes the schema with every audit row. Apply it with 'diesel migration run', as a
superuser if you can (the event triggers that follow ALTER TABLE need one).

options:
  --migrations PATH     the Diesel migrations folder (default: paths.migrations of
                        threadline.toml, else migrations)
  --partitioned P       partition the audit store by capture time, a partition per
                        day, week or month (see 'threadline partitions --help'); a
                        trail installed already is converted with 'threadline
                        partitions convert' instead
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory)

When a migration there installs an older schema version, writes the upgrade
migrations instead: a folder <version>_threadline_upgrade_<n> for each version after
it, whose down.sql reverts it. Writes nothing when the migrations install the current
version already. Exits with status 1 when they install a newer version than this
release knows.",
};

/// Runs `threadline install`.
pub fn install(args: &Args) -> Result<(), Failure> {
    let config = args.config()?;
    let migrations = Migrations::read(&args.path_or("migrations", &config.migrations))?;
    let partitioned = crate::partitions::period(args, "partitioned")?;
    let mut out = io::stdout().lock();
    let Some((migration, version)) = migrations.install()? else {
        let version = migrations.next_versions(1, Utc::now())?.remove(0);
        let folder = format!("{version}_threadline_install");
        let up = match partitioned {
            Some(period) => format!("{INSTALL_SQL}\n{}", partitioning_sql(period)),
            None => INSTALL_SQL.to_owned(),
        };
        migrations.write(&folder, &up, UNINSTALL_SQL)?;
        writeln!(
            out,
            "wrote {} (threadline schema version {SCHEMA_VERSION}{}); apply it with diesel migration run",
            migrations.path(&folder),
            partitioned.map(|p| format!(", partitioned by {p}")).unwrap_or_default()
        )?;
        return Ok(());
    };
    if partitioned.is_some() {
        return Err(args.usage(format!(
            "{} installs threadline already: partition its trail with threadline partitions convert --period P",
            migrations.path(&migration.folder)
        )));
    }
    let path = migrations.path(&migration.folder);
    if version > SCHEMA_VERSION {
        return Err(Failure::Runtime(format!(
            "{path} leaves threadline schema version {version}; this release knows version {SCHEMA_VERSION} \
             and cannot run against it: upgrade threadline"
        )));
    }
    if version == SCHEMA_VERSION {
        writeln!(
            out,
            "threadline is installed by the migrations up to {path} (schema version {version}); no upgrade \
             migration is needed"
        )?;
        return Ok(());
    }
    let upgrades: Vec<_> = upgrades_from(version).collect();
    let versions = migrations.next_versions(upgrades.len(), Utc::now())?;
    for (upgrade, at) in upgrades.iter().zip(versions) {
        let folder = format!("{at}_threadline_upgrade_{}", upgrade.version);
        migrations.write(&folder, upgrade.up, upgrade.down)?;
        writeln!(
            out,
            "wrote {} (upgrades threadline schema version {} to {})",
            migrations.path(&folder),
            upgrade.version - 1,
            upgrade.version
        )?;
    }
    writeln!(out, "apply the upgrade with diesel migration run")?;
    Ok(())
}
