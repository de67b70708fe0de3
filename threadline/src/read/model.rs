//! What reads return: changes, transactions, actions, pages and their parts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::cursor::Cursor;
use crate::{ActorRef, Error};

/// What a change did to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A row was inserted.
    Insert,
    /// A row was updated.
    Update,
    /// A row was deleted.
    Delete,
    /// The table (or one of its partitions) was truncated.
    Truncate,
}

impl Op {
    /// The name stored in `audit_changes.op`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
        }
    }

    /// Parses a stored or typed name: `insert`, `update`, `delete` or `truncate`.
    pub fn parse(name: &str) -> Result<Op, Error> {
        match name {
            "insert" => Ok(Op::Insert),
            "update" => Ok(Op::Update),
            "delete" => Ok(Op::Delete),
            "truncate" => Ok(Op::Truncate),
            other => Err(Error::invalid(
                "op",
                format!("{other:?} is not one of insert, update, delete, truncate"),
            )),
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One captured row change with the context of its transaction.
///
/// Serialized (by the CLI's `--json` and the JSON exports) with these field names, in
/// this order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Change {
    /// `audit_changes.id`.
    pub id: i64,
    /// `audit_transactions.id` of the database transaction that made the change.
    pub transaction_id: i64,
    /// When the change was captured.
    #[serde(serialize_with = "super::micros")]
    pub captured_at: DateTime<Utc>,
    /// The audited table's schema.
    pub table_schema: String,
    /// The audited table (the parent, for a partition).
    pub table_name: String,
    /// What happened.
    pub op: Op,
    /// The row's key: key column to value rendered as text; empty for a truncate.
    pub table_pk: Map<String, Value>,
    /// The row after the change (before it, for a delete), redacted by the policy.
    pub data: Option<Value>,
    /// Names of the changed columns (updates), sorted.
    pub changed_fields: Vec<String>,
    /// Prior values of the changed columns, redacted; `None` when the policy does not
    /// keep them or the change is not an update.
    pub changed_from: Option<Map<String, Value>>,
    /// True for the two halves of an update that changed the row's key.
    pub from_update: bool,
    /// Who acted, from the transaction.
    pub actor: Option<ActorRef>,
    /// The transaction's request id.
    pub request_id: Option<String>,
    /// The transaction's correlation id.
    pub correlation_id: Option<String>,
    /// The transaction's tenant.
    pub tenant_id: Option<String>,
    /// The name of the transaction's action, when one was recorded.
    pub action: Option<String>,
    /// The columns the policy masked when this change was captured, sorted: `data` and
    /// `changed_from` hold the placeholder for them, not their values.
    pub masked_fields: Vec<String>,
    /// The columns the policy excluded when this change was captured, sorted: nothing of
    /// them was stored.
    pub excluded_fields: Vec<String>,
}

/// A recorded business action (`audit_actions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ActionRecord {
    /// `audit_actions.id`.
    pub id: i64,
    /// The action's name, such as `post_created`.
    pub name: String,
    /// Who performed it.
    pub actor: Option<ActorRef>,
    /// `ok` or `error`.
    pub status: String,
    /// The verb, if given.
    pub verb: Option<String>,
    /// The category, if given.
    pub category: Option<String>,
    /// Why it was taken, if given.
    pub reason: Option<String>,
    /// A free-text comment, if given.
    pub comment: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The background job, if any.
    pub job_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
    /// When it was recorded.
    #[serde(serialize_with = "super::micros")]
    pub inserted_at: DateTime<Utc>,
}

/// One database transaction that changed audited tables (`audit_transactions`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TransactionRecord {
    /// `audit_transactions.id`: the transaction id of every API.
    pub id: i64,
    /// PostgreSQL's transaction id, for lining up with server logs.
    pub xact_id: String,
    /// When its first audited change was captured.
    #[serde(serialize_with = "super::micros")]
    pub occurred_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Option<ActorRef>,
    /// The request id.
    pub request_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
    /// `request`, `job`, `console` or `migration`, when given.
    pub source: Option<String>,
    /// Free-form metadata from the context.
    pub meta: Option<Value>,
    /// The action it performed, when one was recorded.
    pub action: Option<ActionRecord>,
}

/// A bounded slice of a longer list, with the cursor that continues it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The entries, in the read's order.
    pub entries: Vec<T>,
    /// Continues after the last entry; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// True when more entries follow this page.
    pub fn has_more(&self) -> bool {
        self.next_cursor.is_some()
    }
}

/// A count of matching changes that stops at a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MatchCount {
    /// The changes counted: the true count, or the cap when `capped`.
    pub count: u64,
    /// True when more changes match than the cap.
    pub capped: bool,
}

/// A row as it was at a point in time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AsOf {
    /// The row existed; this is the change that gave it that state, whose `data` is the
    /// row (redacted as captured).
    Found(Box<Change>),
    /// The row had been deleted (or its table truncated) at `at`.
    Deleted {
        /// When the deletion was captured.
        at: DateTime<Utc>,
    },
    /// Nothing was captured for the row at or before that time: it did not exist yet,
    /// or predates the audit trail.
    BeforeHorizon,
}

/// The value of a field on one side of a change.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// The value, as captured (a masked column holds the placeholder).
    Value(Value),
    /// The field had no value on this side: before an insert, after a delete.
    Absent,
    /// The field had a value that the policy did not keep (`changed_from: false`).
    NotKept,
}

/// One field of a change, before and after.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FieldDiff {
    /// The column.
    pub name: String,
    /// Its value before the change.
    pub before: FieldValue,
    /// Its value after the change.
    pub after: FieldValue,
}

impl Serialize for FieldDiff {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        for (side, value) in [("before", &self.before), ("after", &self.after)] {
            match value {
                FieldValue::Value(v) => map.serialize_entry(side, v)?,
                FieldValue::Absent => {}
                FieldValue::NotKept => map.serialize_entry(&format!("{side}_state"), "not_kept")?,
            }
        }
        map.end()
    }
}

/// A change with its per-field diff, as an incident bundle shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DiffedChange {
    /// The change.
    pub change: Change,
    /// Its fields: every column for an insert or delete, the changed ones for an
    /// update, none for a truncate.
    pub fields: Vec<FieldDiff>,
}

impl DiffedChange {
    pub(crate) fn new(change: Change) -> Self {
        let data = change.data.as_ref().and_then(Value::as_object);
        let whole_row = |row_is_before: bool| -> Vec<FieldDiff> {
            data.into_iter()
                .flatten()
                .map(|(name, v)| {
                    let value = FieldValue::Value(v.clone());
                    let (before, after) = if row_is_before {
                        (value, FieldValue::Absent)
                    } else {
                        (FieldValue::Absent, value)
                    };
                    FieldDiff {
                        name: name.clone(),
                        before,
                        after,
                    }
                })
                .collect()
        };
        let fields = match change.op {
            Op::Insert => whole_row(false),
            Op::Delete => whole_row(true),
            Op::Update => change
                .changed_fields
                .iter()
                .map(|name| FieldDiff {
                    name: name.clone(),
                    before: change
                        .changed_from
                        .as_ref()
                        .and_then(|from| from.get(name))
                        .cloned()
                        .map_or(FieldValue::NotKept, FieldValue::Value),
                    after: data
                        .and_then(|d| d.get(name))
                        .cloned()
                        .map_or(FieldValue::Absent, FieldValue::Value),
                })
                .collect(),
            Op::Truncate => Vec::new(),
        };
        DiffedChange { change, fields }
    }
}

/// A transaction, its action and its changes with per-field diffs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Incident {
    /// The transaction, with its action.
    pub transaction: TransactionRecord,
    /// One page of its changes, in capture order.
    pub changes: Page<DiffedChange>,
}

/// Everything one business flow did: its actions and a page of its changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CorrelationBundle {
    /// The actions recorded with the correlation id, oldest first, up to
    /// [`super::MAX_BUNDLE_ACTIONS`].
    pub actions: Vec<ActionRecord>,
    /// True when more actions exist than were returned.
    pub actions_truncated: bool,
    /// One page of the changes of its transactions, newest first.
    pub changes: Page<Change>,
}
