//! The policies the migrations deploy: their `-- threadline:policy` markers.

use std::collections::BTreeMap;

use serde_json::Value;
use threadline_syntax::parse_marker;

use crate::Failure;
use crate::migrations::Migrations;

/// The latest policy the migrations deploy for a table.
#[derive(Debug)]
pub struct Deployed {
    /// The policy.
    pub policy: Value,
    /// Its JSON as the marker wrote it, for a `down.sql` that restores it.
    pub json: String,
    /// The folder of the migration that deploys it.
    pub folder: String,
}

/// The latest policy of each table (`schema.table`): the last marker of it, in Diesel's order.
pub fn deployed(migrations: &Migrations) -> Result<BTreeMap<String, Deployed>, Failure> {
    let mut latest = BTreeMap::new();
    for migration in &migrations.all {
        let Some(up) = migrations.up_sql(migration)? else {
            continue;
        };
        for (number, line) in up.lines().enumerate() {
            let Some((table, json)) = parse_marker(line) else {
                continue;
            };
            let policy = serde_json::from_str(json).map_err(|e| {
                Failure::Runtime(format!(
                    "{}/up.sql:{}: the policy of {table} is not JSON ({e}); restore the line as it was generated",
                    migrations.path(&migration.folder),
                    number + 1
                ))
            })?;
            latest.insert(
                table.to_owned(),
                Deployed {
                    policy,
                    json: json.to_owned(),
                    folder: migration.folder.clone(),
                },
            );
        }
    }
    Ok(latest)
}
