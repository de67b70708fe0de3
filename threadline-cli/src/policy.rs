//! The policies the migrations deploy (their `-- threadline:policy` markers), and how an
//! annotation's policy differs from one.

use std::collections::{BTreeMap, BTreeSet};

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

/// One policy key whose value differs.
#[derive(Debug, PartialEq)]
pub struct Difference {
    /// The key.
    key: String,
    /// Its value in the latest migration, if there.
    before: Option<Value>,
    /// Its value in the annotation, if there.
    after: Option<Value>,
}

/// The keys whose values differ between the deployed policy and the annotation's, by key.
pub fn differences(before: &Value, after: &Value) -> Vec<Difference> {
    let (before, after) = (before.as_object(), after.as_object());
    let keys: BTreeSet<&String> = before.into_iter().chain(after).flat_map(|o| o.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let before = before.and_then(|o| o.get(key)).cloned();
            let after = after.and_then(|o| o.get(key)).cloned();
            (before != after).then(|| Difference {
                key: key.clone(),
                before,
                after,
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

/// The names of a JSON array of strings.
fn names(value: Option<&Value>) -> Option<Vec<&str>> {
    match value {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
        Some(_) => None,
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listing(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A value for a summary: its JSON, or `(none)`.
fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "(none)".to_owned(), Value::to_string)
}

impl Difference {
    /// The columns the annotation adds to and removes from a column-list key, when the key
    /// is one.
    fn columns(&self) -> Option<(&'static str, Vec<&str>, Vec<&str>)> {
        let verb = verb(&self.key)?;
        let (before, after) = (names(self.before.as_ref())?, names(self.after.as_ref())?);
        let added = after.iter().filter(|c| !before.contains(c)).copied().collect();
        let removed = before.iter().filter(|c| !after.contains(c)).copied().collect();
        Some((verb, added, removed))
    }

    /// A short form: `mask +email -phone`, `changed_from true -> false`.
    pub fn summary(&self) -> String {
        match self.columns() {
            Some((_, added, removed)) => {
                let signed = added
                    .iter()
                    .map(|c| format!("+{c}"))
                    .chain(removed.iter().map(|c| format!("-{c}")));
                format!("{} {}", self.key, signed.collect::<Vec<_>>().join(" "))
            }
            None => format!(
                "{} {} -> {}",
                self.key,
                shown(self.before.as_ref()),
                shown(self.after.as_ref())
            ),
        }
    }

    /// Sentences for `--check`, `migration` naming the latest migration:
    /// `the annotation masks email, the latest migration (...) does not`.
    pub fn explain(&self, migration: &str) -> Vec<String> {
        if let Some((verb, added, removed)) = self.columns() {
            let mut out = Vec::new();
            if !added.is_empty() {
                out.push(format!(
                    "the annotation {verb} {}, {migration} does not",
                    listing(&added)
                ));
            }
            if !removed.is_empty() {
                out.push(format!(
                    "{migration} {verb} {}, the annotation does not",
                    listing(&removed)
                ));
            }
            return out;
        }
        let (before, after) = (self.before.as_ref(), self.after.as_ref());
        vec![match self.key.as_str() {
            "primary_key" => format!(
                "the annotation keys rows by ({}), {migration} by ({})",
                names(after).map_or_else(|| shown(after), |n| n.join(", ")),
                names(before).map_or_else(|| shown(before), |n| n.join(", ")),
            ),
            "changed_from" if after == Some(&Value::Bool(false)) => {
                format!("the annotation keeps no prior values (changed_from = false), {migration} keeps them")
            }
            "changed_from" => {
                format!("the annotation keeps prior values of changed columns, {migration} does not")
            }
            "mask_placeholder" => format!(
                "the annotation masks with {}, {migration} with {}",
                shown(after),
                shown(before)
            ),
            key => format!(
                "`{key}` is {} in the annotation, {} in {migration}",
                shown(after),
                shown(before)
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
        let before = policy(&["email"], &["password_hash"], true);
        let after = policy(&["email", "password_hash", "phone"], &[], false);
        let diffs = differences(&before, &after);
        let summaries: Vec<String> = diffs.iter().map(Difference::summary).collect();
        assert_eq!(
            summaries,
            [
                "changed_from true -> false",
                "exclude -password_hash",
                "mask +password_hash +phone"
            ]
        );
        let sentences: Vec<String> = diffs.iter().flat_map(|d| d.explain("the latest migration")).collect();
        assert_eq!(
            sentences,
            [
                "the annotation keeps no prior values (changed_from = false), the latest migration keeps them",
                "the latest migration excludes password_hash, the annotation does not",
                "the annotation masks password_hash and phone, the latest migration does not",
            ]
        );
        assert!(differences(&before, &before.clone()).is_empty());
    }

    #[test]
    fn keys_and_unknown_keys_are_shown_as_values() {
        let before = json!({"primary_key": ["id"], "extra": 1});
        let after = json!({"primary_key": ["org", "id"]});
        let diffs = differences(&before, &after);
        assert_eq!(diffs[0].summary(), "extra 1 -> (none)");
        assert_eq!(diffs[1].summary(), "primary_key [\"id\"] -> [\"org\",\"id\"]");
        assert_eq!(
            diffs[1].explain("it"),
            ["the annotation keys rows by (org, id), it by (id)"]
        );
        assert_eq!(diffs[0].explain("it"), ["`extra` is (none) in the annotation, 1 in it"]);
    }
}
