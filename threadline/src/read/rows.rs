//! Rows as the read queries return them, and their conversion to the public types.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use serde_json::{Map, Value};

use super::model::{ActionRecord, Change, Op, TransactionRecord};
use super::sql::Sql;
use crate::tables::{audit_changes, audit_transactions};
use crate::{ActorRef, Error};

/// The columns of a change with its transaction `t` and action `a`.
pub(crate) const CHANGE_COLUMNS: &str = "c.id, c.transaction_id, c.captured_at, c.table_schema, c.table_name, \
     c.table_pk, c.op, c.data, c.changed_fields, c.changed_from, c.from_update, \
     c.masked_fields, c.excluded_fields, t.actor, t.request_id, t.correlation_id, t.tenant_id, a.name AS action";

/// Changes joined to their transactions and actions; predicates follow as ` AND ...`.
pub(crate) const CHANGE_SOURCE: &str = " FROM threadline.audit_changes c \
     JOIN threadline.audit_transactions t ON t.id = c.transaction_id \
     LEFT JOIN threadline.audit_actions a ON a.id = t.action_id WHERE true";

/// The columns of an action `a`.
pub(crate) const ACTION_COLUMNS: &str = "a.id AS a_id, a.name AS a_name, a.actor AS a_actor, a.status AS a_status, \
     a.verb AS a_verb, a.category AS a_category, a.reason AS a_reason, a.comment AS a_comment, \
     a.request_id AS a_request_id, a.correlation_id AS a_correlation_id, a.job_id AS a_job_id, \
     a.tenant_id AS a_tenant_id, a.inserted_at AS a_inserted_at";

/// Transactions `t` with their actions `a`; predicates follow as ` AND ...`.
pub(crate) fn transactions_with_actions() -> Sql {
    Sql::new(&format!(
        "SELECT t.id, t.xact_id::text AS xact_id, t.occurred_at, t.actor, t.request_id, t.correlation_id, \
         t.tenant_id, t.source, t.meta, {ACTION_COLUMNS} FROM threadline.audit_transactions t \
         LEFT JOIN threadline.audit_actions a ON a.id = t.action_id WHERE true"
    ))
}

/// A change with its transaction's context: the change's own columns take their types
/// from [`audit_changes`], the joined ones name theirs.
#[derive(QueryableByName)]
#[diesel(table_name = audit_changes)]
pub(crate) struct ChangeRow {
    id: i64,
    transaction_id: i64,
    pub(crate) captured_at: DateTime<Utc>,
    table_schema: String,
    table_name: String,
    table_pk: Value,
    op: String,
    data: Option<Value>,
    changed_fields: Option<Vec<String>>,
    changed_from: Option<Value>,
    from_update: bool,
    masked_fields: Option<Vec<String>>,
    excluded_fields: Option<Vec<String>>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    actor: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
}

/// An actor as stored; capture validated it, so a bad one means a tampered row. The error
/// says so without quoting the stored value.
fn actor(value: Option<Value>) -> Result<Option<ActorRef>, Error> {
    value
        .filter(|v| !v.is_null())
        .map(|v| {
            serde_json::from_value(v).map_err(|_| Error::Decode {
                column: "actor".to_owned(),
                reason: "an audit row holds an actor Threadline did not write".to_owned(),
            })
        })
        .transpose()
}

/// An op as stored; the table's check constraint allows only the four names.
fn stored_op(name: &str) -> Result<Op, Error> {
    Op::parse(name).map_err(|_| Error::Decode {
        column: "op".to_owned(),
        reason: "an audit row holds an op that is not insert, update, delete or truncate".to_owned(),
    })
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl ChangeRow {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }
}

impl TransactionRow {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }
}

impl TryFrom<ChangeRow> for Change {
    type Error = Error;

    fn try_from(row: ChangeRow) -> Result<Self, Error> {
        Ok(Change {
            id: row.id,
            transaction_id: row.transaction_id,
            captured_at: row.captured_at,
            table_schema: row.table_schema,
            table_name: row.table_name,
            table_pk: object(row.table_pk),
            op: stored_op(&row.op)?,
            data: row.data,
            changed_fields: row.changed_fields.unwrap_or_default(),
            changed_from: row.changed_from.map(object),
            from_update: row.from_update,
            masked_fields: row.masked_fields.unwrap_or_default(),
            excluded_fields: row.excluded_fields.unwrap_or_default(),
            actor: actor(row.actor)?,
            request_id: row.request_id,
            correlation_id: row.correlation_id,
            tenant_id: row.tenant_id,
            action: row.action,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct ActionRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    a_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    a_name: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    a_actor: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    a_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_verb: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_category: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_comment: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_job_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    a_tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    a_inserted_at: Option<DateTime<Utc>>,
}

impl ActionRow {
    /// The action, or `None` when the left join found none.
    pub(crate) fn into_record(self) -> Result<Option<ActionRecord>, Error> {
        let (Some(id), Some(name), Some(inserted_at)) = (self.a_id, self.a_name, self.a_inserted_at) else {
            return Ok(None);
        };
        Ok(Some(ActionRecord {
            id,
            name,
            actor: actor(self.a_actor)?,
            status: self.a_status.unwrap_or_default(),
            verb: self.a_verb,
            category: self.a_category,
            reason: self.a_reason,
            comment: self.a_comment,
            request_id: self.a_request_id,
            correlation_id: self.a_correlation_id,
            job_id: self.a_job_id,
            tenant_id: self.a_tenant_id,
            inserted_at,
        }))
    }
}

/// A transaction with its action: its own columns take their types from
/// [`audit_transactions`]; `xact_id` is read as text.
#[derive(QueryableByName)]
#[diesel(table_name = audit_transactions)]
pub(crate) struct TransactionRow {
    id: i64,
    #[diesel(sql_type = Text)]
    xact_id: String,
    pub(crate) occurred_at: DateTime<Utc>,
    actor: Option<Value>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    tenant_id: Option<String>,
    source: Option<String>,
    meta: Option<Value>,
    #[diesel(embed)]
    action: ActionRow,
}

impl TryFrom<TransactionRow> for TransactionRecord {
    type Error = Error;

    fn try_from(row: TransactionRow) -> Result<Self, Error> {
        Ok(TransactionRecord {
            id: row.id,
            xact_id: row.xact_id,
            occurred_at: row.occurred_at,
            actor: actor(row.actor)?,
            request_id: row.request_id,
            correlation_id: row.correlation_id,
            tenant_id: row.tenant_id,
            source: row.source,
            meta: row.meta,
            action: row.action.into_record()?,
        })
    }
}

/// A rendered row key.
#[derive(QueryableByName)]
pub(crate) struct KeyRow {
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub(crate) key: Option<Value>,
}

/// A yes-or-no answer.
#[derive(QueryableByName)]
pub(crate) struct ExistsRow {
    #[diesel(sql_type = Bool)]
    pub(crate) found: bool,
}

/// How many rows matched.
#[derive(QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// When something happened.
#[derive(QueryableByName)]
pub(crate) struct TimeRow {
    #[diesel(sql_type = Timestamptz)]
    pub(crate) at: DateTime<Utc>,
}
