//! Policy drift: the capture policies the code declares against the ones the database
//! deployed (`threadline.table_policy`), table by table.
//!
//! The database records the policy each `audit_table` call deployed, so the comparison
//! is exact: no reading of generated function source. It reads the catalog of audited
//! tables only, never a row, and needs the `threadline_reader` role or the installer's.
//!
//! ```no_run
//! # fn demo<User: threadline::Audited>(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::policy::{PolicyCheck, PolicyStatus};
//!
//! let report = PolicyCheck::new().declare_model::<User>().run_blocking(conn)?;
//! for table in report.tables.iter().filter(|t| t.status != PolicyStatus::Matches) {
//!     for sentence in table.differences.iter().flat_map(|d| d.explain("the code", "the database")) {
//!         eprintln!("{}: {sentence}", table.table);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use diesel::sql_types::{Jsonb, Nullable, Text};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::Value;

use crate::read::TableName;
use crate::read::exec::{Db, ready};
use crate::read::sql::Sql;
use crate::{Audited, Error, telemetry};

/// How a table's declared policy compares with the deployed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyStatus {
    /// Declared and deployed alike.
    Matches,
    /// Declared and deployed, with [`TablePolicy::differences`].
    Differs,
    /// Declared, but the table is not audited.
    DeclaredNotDeployed,
    /// Audited, but no declaration names the table.
    DeployedNotDeclared,
}

/// One policy key whose value differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyDifference {
    /// The key: `mask`, `exclude`, `ignore_changes`, `primary_key`, `changed_from`,
    /// `mask_placeholder`.
    pub key: String,
    /// Its declared value, if there.
    pub declared: Option<Value>,
    /// Its deployed value, if there.
    pub deployed: Option<Value>,
    /// For a column-list key: the columns declared and not deployed.
    pub added: Vec<String>,
    /// For a column-list key: the columns deployed and not declared.
    pub removed: Vec<String>,
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TablePolicy {
    /// `schema.table`.
    pub table: String,
    /// How the policies compare.
    pub status: PolicyStatus,
    /// The declared policy, if any.
    pub declared: Option<Value>,
    /// The deployed policy, if any.
    pub deployed: Option<Value>,
    /// The keys that differ, when both exist.
    pub differences: Vec<PolicyDifference>,
}

/// What a [`PolicyCheck`] found, by table name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    /// Every table declared or deployed, by name.
    pub tables: Vec<TablePolicy>,
}

impl PolicyReport {
    /// Whether any table does not match.
    pub fn drifted(&self) -> bool {
        self.tables.iter().any(|t| t.status != PolicyStatus::Matches)
    }

    /// How many tables have `status`.
    pub fn count(&self, status: PolicyStatus) -> usize {
        self.tables.iter().filter(|t| t.status == status).count()
    }
}

/// The declared policies to compare with the database.
#[derive(Debug, Clone, Default)]
pub struct PolicyCheck {
    declared: BTreeMap<String, Value>,
}

impl PolicyCheck {
    /// A check with nothing declared yet.
    pub fn new() -> Self {
        PolicyCheck::default()
    }

    /// Declares a table's policy, in the shape `threadline.table_policy` reports.
    pub fn declare(mut self, table: &TableName, policy: Value) -> Self {
        self.declared.insert(table.to_string(), policy);
        self
    }

    /// Declares the policy of a `#[derive(Audited)]` model.
    pub fn declare_model<M: Audited>(self) -> Self {
        let policy = serde_json::from_str(M::POLICY_JSON).expect("the derive writes its policy as JSON");
        self.declare(&M::table(), policy)
    }

    /// Compares the declarations with the database.
    pub async fn run(&self, conn: &mut AsyncPgConnection) -> Result<PolicyReport, Error> {
        check(conn, self).await
    }

    /// [`PolicyCheck::run`] on a blocking connection.
    pub fn run_blocking(&self, conn: &mut PgConnection) -> Result<PolicyReport, Error> {
        ready(check(conn, self))
    }
}

#[derive(QueryableByName)]
struct DeployedRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    policy: Option<Value>,
}

async fn check<C: Db>(conn: &mut C, options: &PolicyCheck) -> Result<PolicyReport, Error> {
    let started = Instant::now();
    let deployed: BTreeMap<String, Value> = conn
        .load::<DeployedRow>(Sql::new(
            "SELECT format('%s.%s', t.table_schema, t.table_name) AS table_name,
                    threadline.table_policy(t.relid) AS policy
               FROM threadline.audited_tables t",
        ))
        .await?
        .into_iter()
        .filter_map(|row| row.policy.map(|policy| (row.table_name, policy)))
        .collect();
    let names: BTreeSet<&String> = deployed.keys().chain(options.declared.keys()).collect();
    let tables = names
        .into_iter()
        .map(|table| {
            let (declared, deployed) = (options.declared.get(table), deployed.get(table));
            let differences = match (declared, deployed) {
                (Some(declared), Some(deployed)) => differences(declared, deployed),
                _ => Vec::new(),
            };
            let status = match (declared, deployed) {
                (Some(_), None) => PolicyStatus::DeclaredNotDeployed,
                (None, _) => PolicyStatus::DeployedNotDeclared,
                _ if differences.is_empty() => PolicyStatus::Matches,
                _ => PolicyStatus::Differs,
            };
            TablePolicy {
                table: table.clone(),
                status,
                declared: declared.cloned(),
                deployed: deployed.cloned(),
                differences,
            }
        })
        .collect();
    let report = PolicyReport { tables };
    telemetry::policy_checked(&report, started);
    Ok(report)
}

/// The keys whose values differ between two policies, by key.
pub fn differences(declared: &Value, deployed: &Value) -> Vec<PolicyDifference> {
    let (declared, deployed) = (declared.as_object(), deployed.as_object());
    let keys: BTreeSet<&String> = declared.into_iter().chain(deployed).flat_map(|o| o.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let here = declared.and_then(|o| o.get(key)).cloned();
            let there = deployed.and_then(|o| o.get(key)).cloned();
            // Column lists are sets: the database sorts them in its collation, Rust by bytes.
            let same = match (verb(key), names(here.as_ref()), names(there.as_ref())) {
                (Some(_), Some(mut a), Some(mut b)) => {
                    a.sort_unstable();
                    b.sort_unstable();
                    a == b
                }
                _ => here == there,
            };
            if same {
                return None;
            }
            let (added, removed) = match (verb(key), names(here.as_ref()), names(there.as_ref())) {
                (Some(_), Some(here), Some(there)) => (
                    here.iter()
                        .filter(|c| !there.contains(c))
                        .map(|c| (*c).to_owned())
                        .collect(),
                    there
                        .iter()
                        .filter(|c| !here.contains(c))
                        .map(|c| (*c).to_owned())
                        .collect(),
                ),
                _ => (Vec::new(), Vec::new()),
            };
            Some(PolicyDifference {
                key: key.clone(),
                declared: here,
                deployed: there,
                added,
                removed,
            })
        })
        .collect()
}

/// What a column-list key does to its columns, for sentences: `masks email`.
fn verb(key: &str) -> Option<&'static str> {
    match key {
        "exclude" => Some("excludes"),
        "mask" => Some("masks"),
        "ignore_changes" => Some("ignores changes to"),
        _ => None,
    }
}

/// The names of a JSON array of strings; an absent value is no names.
fn names(value: Option<&Value>) -> Option<Vec<&str>> {
    match value {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
        Some(_) => None,
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listing(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A value for a summary: its JSON, or `(none)`.
fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(none)".to_owned(), Value::to_string)
}

impl PolicyDifference {
    /// Whether the key lists columns (and so [`Self::added`] and [`Self::removed`] say it all).
    fn lists_columns(&self) -> bool {
        verb(&self.key).is_some() && names(self.declared.as_ref()).is_some() && names(self.deployed.as_ref()).is_some()
    }

    /// A short form: `mask +email -phone`, `changed_from true -> false` (deployed, then
    /// declared).
    pub fn summary(&self) -> String {
        if self.lists_columns() {
            let signed = self
                .added
                .iter()
                .map(|c| format!("+{c}"))
                .chain(self.removed.iter().map(|c| format!("-{c}")));
            return format!("{} {}", self.key, signed.collect::<Vec<_>>().join(" "));
        }
        format!(
            "{} {} -> {}",
            self.key,
            shown(self.deployed.as_ref()),
            shown(self.declared.as_ref())
        )
    }

    /// Sentences naming the declaring side `declared` and the deployed side `deployed`:
    /// `the code masks email, the database does not`.
    pub fn explain(&self, declared: &str, deployed: &str) -> Vec<String> {
        if let Some(verb) = verb(&self.key).filter(|_| self.lists_columns()) {
            let mut out = Vec::new();
            if !self.added.is_empty() {
                out.push(format!(
                    "{declared} {verb} {}, {deployed} does not",
                    listing(&self.added)
                ));
            }
            if !self.removed.is_empty() {
                out.push(format!(
                    "{deployed} {verb} {}, {declared} does not",
                    listing(&self.removed)
                ));
            }
            return out;
        }
        let (here, there) = (self.declared.as_ref(), self.deployed.as_ref());
        vec![match self.key.as_str() {
            "primary_key" => format!(
                "{declared} keys rows by ({}), {deployed} by ({})",
                names(here).map_or_else(|| shown(here), |n| n.join(", ")),
                names(there).map_or_else(|| shown(there), |n| n.join(", ")),
            ),
            "changed_from" if here == Some(&Value::Bool(false)) => {
                format!("{declared} keeps no prior values (changed_from = false), {deployed} keeps them")
            }
            "changed_from" => format!("{declared} keeps prior values of changed columns, {deployed} does not"),
            "mask_placeholder" => format!(
                "{declared} masks with {}, {deployed} with {}",
                shown(here),
                shown(there)
            ),
            key => format!(
                "`{key}` is {} in {declared}, {} in {deployed}",
                shown(here),
                shown(there)
            ),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A whole policy.
    fn policy(mask: &[&str], exclude: &[&str], changed_from: bool) -> Value {
        json!({"exclude": exclude, "mask": mask, "mask_placeholder": "[REDACTED]",
               "ignore_changes": [], "primary_key": ["id"], "changed_from": changed_from})
    }

    #[test]
    fn differences_are_summarized_and_explained_per_key() {
        let deployed = policy(&["email"], &["password_hash"], true);
        let declared = policy(&["email", "password_hash", "phone"], &[], false);
        let diffs = differences(&declared, &deployed);
        let summaries: Vec<String> = diffs.iter().map(PolicyDifference::summary).collect();
        assert_eq!(
            summaries,
            [
                "changed_from true -> false",
                "exclude -password_hash",
                "mask +password_hash +phone"
            ]
        );
        let sentences: Vec<String> = diffs
            .iter()
            .flat_map(|d| d.explain("the annotation", "the latest migration"))
            .collect();
        assert_eq!(
            sentences,
            [
                "the annotation keeps no prior values (changed_from = false), the latest migration keeps them",
                "the latest migration excludes password_hash, the annotation does not",
                "the annotation masks password_hash and phone, the latest migration does not",
            ]
        );
        assert_eq!(diffs[2].added, ["password_hash", "phone"]);
        assert!(differences(&deployed, &deployed.clone()).is_empty());
        let collated = policy(&["emailed", "email_hash"], &[], true);
        let bytewise = policy(&["email_hash", "emailed"], &[], true);
        assert!(
            differences(&bytewise, &collated).is_empty(),
            "column lists compare as sets"
        );
    }

    #[test]
    fn keys_and_unknown_keys_are_shown_as_values() {
        let deployed = json!({"primary_key": ["id"], "extra": 1});
        let declared = json!({"primary_key": ["org", "id"]});
        let diffs = differences(&declared, &deployed);
        assert_eq!(diffs[0].summary(), "extra 1 -> (none)");
        assert_eq!(diffs[1].summary(), "primary_key [\"id\"] -> [\"org\",\"id\"]");
        assert_eq!(
            diffs[1].explain("the annotation", "it"),
            ["the annotation keys rows by (org, id), it by (id)"]
        );
        assert_eq!(
            diffs[0].explain("the annotation", "it"),
            ["`extra` is (none) in the annotation, 1 in it"]
        );
    }
}
