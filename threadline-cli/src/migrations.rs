//! An app's Diesel migrations folder: reading its migrations in Diesel's order, dating new
//! ones after all of them, and writing a new migration without touching the others.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};

use crate::Failure;

/// The first line of a Threadline install migration's `up.sql`, before the schema version:
/// `-- Threadline schema, version 1.`
const INSTALL_HEADER: &str = "-- Threadline schema, version ";
/// The first line of an upgrade migration's `up.sql`, before the version it upgrades to:
/// `-- Threadline schema upgrade to version 2.`
const UPGRADE_HEADER: &str = "-- Threadline schema upgrade to version ";

/// One migration folder.
#[derive(Debug)]
pub struct Migration {
    /// The folder's name, `<version>_<name>`.
    pub folder: String,
    /// Diesel's version of it: the name before the first `_`, without `-`.
    pub version: String,
}

/// The migrations of one folder, in the order Diesel runs them.
#[derive(Debug)]
pub struct Migrations {
    /// The folder, as given.
    dir: PathBuf,
    /// Its migrations, by version (then name).
    pub all: Vec<Migration>,
}

impl Migrations {
    /// Lists the migrations of `dir` as Diesel sees them: every subfolder whose name does not
    /// start with `.`.
    pub fn read(dir: &Path) -> Result<Self, Failure> {
        if !dir.is_dir() {
            return Err(Failure::Usage(format!(
                "{}: no such migrations folder (create it with diesel setup, or pass --migrations PATH)",
                dir.display()
            )));
        }
        let cannot = |e: io::Error| Failure::Runtime(format!("cannot read {}: {e}", dir.display()));
        let mut all = Vec::new();
        for entry in fs::read_dir(dir).map_err(cannot)? {
            let entry = entry.map_err(cannot)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            let version = name.split('_').next().unwrap_or_default().replace('-', "");
            all.push(Migration { folder: name, version });
        }
        all.sort_by(|a, b| (&a.version, &a.folder).cmp(&(&b.version, &b.folder)));
        Ok(Migrations {
            dir: dir.to_owned(),
            all,
        })
    }

    /// A migration folder's path, for messages: `migrations/<folder>`.
    pub fn path(&self, folder: &str) -> String {
        self.dir.join(folder).display().to_string()
    }

    /// A migration's `up.sql`, or `None` when it has none.
    pub fn up_sql(&self, migration: &Migration) -> Result<Option<String>, Failure> {
        let path = self.dir.join(&migration.folder).join("up.sql");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::Runtime(format!("cannot read {}: {e}", path.display()))),
        }
    }

    /// The newest migration that installs or upgrades the Threadline schema, with the
    /// schema version it leaves.
    pub fn install(&self) -> Result<Option<(&Migration, i32)>, Failure> {
        let mut found = None;
        for migration in &self.all {
            if let Some(version) = self.up_sql(migration)?.as_deref().and_then(install_version) {
                found = Some((migration, version));
            }
        }
        Ok(found)
    }

    /// `count` new folder versions (`YYYY-MM-DD-HHMMSS`), one second apart: from `now`, or
    /// from the second after the newest existing version when that is not earlier.
    pub fn next_versions(&self, count: usize, now: DateTime<Utc>) -> Result<Vec<String>, Failure> {
        let mut at = now.naive_utc().with_nanosecond(0).unwrap_or(now.naive_utc());
        if let Some(newest) = self.all.iter().max_by(|a, b| a.version.cmp(&b.version))
            && diesel_version(at) <= newest.version
        {
            at = timestamp(&newest.version).ok_or_else(|| {
                Failure::Runtime(format!(
                    "cannot date a migration after {}: its version is not a YYYY-MM-DD-HHMMSS time",
                    self.path(&newest.folder)
                ))
            })? + TimeDelta::seconds(1);
        }
        (0..count)
            .map(|i| {
                let version = at + TimeDelta::seconds(i64::try_from(i).unwrap_or(i64::MAX));
                match version.format("%Y-%m-%d-%H%M%S").to_string() {
                    text if text.len() == 17 => Ok(text),
                    text => Err(Failure::Runtime(format!("cannot date a migration after {text}"))),
                }
            })
            .collect()
    }

    /// Writes a new migration folder with its `up.sql` and `down.sql`, whole or not at all:
    /// the files are written to a hidden folder (which Diesel ignores) renamed into place.
    /// Refuses to replace an existing folder.
    pub fn write(&self, folder: &str, up: &str, down: &str) -> Result<(), Failure> {
        let target = self.dir.join(folder);
        if target.exists() {
            return Err(Failure::Runtime(format!(
                "{} already exists; it was left as it is",
                target.display()
            )));
        }
        let staging = self.dir.join(format!(".{folder}.partial"));
        let written = (|| {
            if staging.exists() {
                fs::remove_dir_all(&staging)?;
            }
            fs::create_dir(&staging)?;
            fs::write(staging.join("up.sql"), up)?;
            fs::write(staging.join("down.sql"), down)?;
            fs::rename(&staging, &target)
        })();
        written.map_err(|e| {
            let _ = fs::remove_dir_all(&staging);
            Failure::Runtime(format!("cannot write {}: {e}", target.display()))
        })
    }
}

/// The schema version an install or upgrade migration's `up.sql` leaves, from its first
/// comment line (an upgrade's first statement, which pins the `search_path`, comes before
/// it).
pub fn install_version(up_sql: &str) -> Option<i32> {
    let first = up_sql.lines().find(|line| line.starts_with("--"))?;
    first
        .strip_prefix(INSTALL_HEADER)
        .or_else(|| first.strip_prefix(UPGRADE_HEADER))?
        .trim_end()
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// Diesel's version of a folder dated `at`.
fn diesel_version(at: NaiveDateTime) -> String {
    at.format("%Y%m%d%H%M%S").to_string()
}

/// A Diesel version `YYYYMMDDHHMMSS` as a time.
fn timestamp(version: &str) -> Option<NaiveDateTime> {
    if version.len() != 14 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |range: std::ops::Range<usize>| version[range].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(i32::try_from(part(0..4)?).ok()?, part(4..6)?, part(6..8)?)?.and_hms_opt(
        part(8..10)?,
        part(10..12)?,
        part(12..14)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding one migration.
    fn folder(name: &str) -> Migrations {
        Migrations {
            dir: PathBuf::from("migrations"),
            all: vec![Migration {
                folder: name.into(),
                version: name.split('_').next().unwrap().replace('-', ""),
            }],
        }
    }

    /// A fixed clock, within a second.
    fn now() -> DateTime<Utc> {
        "2026-11-27T09:30:05.250Z".parse().unwrap()
    }

    #[test]
    fn new_versions_follow_the_clock_and_every_existing_version() {
        assert_eq!(
            folder("2026-01-01-000000_a").next_versions(2, now()).unwrap(),
            ["2026-11-27-093005", "2026-11-27-093006"]
        );
        assert_eq!(
            folder("2026-11-27-093005_a").next_versions(1, now()).unwrap(),
            ["2026-11-27-093006"]
        );
        assert_eq!(
            folder("2999-12-31-235959_a").next_versions(2, now()).unwrap(),
            ["3000-01-01-000000", "3000-01-01-000001"]
        );
        assert_eq!(
            folder("00000000000000_diesel_initial_setup")
                .next_versions(1, now())
                .unwrap(),
            ["2026-11-27-093005"]
        );
        assert!(matches!(
            folder("9_odd").next_versions(1, now()),
            Err(Failure::Runtime(m)) if m.contains("migrations/9_odd")
        ));
    }

    #[test]
    fn the_install_sql_names_its_schema_version() {
        assert_eq!(
            install_version(threadline::migrations::INSTALL_SQL),
            Some(threadline::migrations::SCHEMA_VERSION)
        );
        assert_eq!(
            install_version("-- Threadline schema, version 12.\r\nSELECT 1;"),
            Some(12)
        );
        assert_eq!(install_version("SELECT 1;"), None);
        for upgrade in threadline::migrations::UPGRADES {
            assert_eq!(install_version(upgrade.up), Some(upgrade.version));
        }
    }
}
