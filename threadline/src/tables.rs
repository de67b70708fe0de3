//! The audit tables as Diesel declares them, for queries of a host's own beside the
//! [`Reader`](crate::Reader)'s: the one declaration of their columns, from which the
//! library's own row types take their SQL types.
//!
//! The triggers write these tables: read them only, as a member of `threadline_reader`
//! (which may not write them). Nothing here stops an `insert_into` by a role that may write,
//! such as the schema's owner, and such a row would skip every check capture makes. A read
//! that goes around the [`Reader`](crate::Reader) also goes around its scope, and around its
//! guard against the session's `search_path`: run a query of your own as a role whose
//! database's owner you trust, or under `SET LOCAL search_path = pg_catalog, pg_temp` in its
//! transaction, so that an operator the owner planted in `public` is never the one an `=`
//! resolves to.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> diesel::QueryResult<()> {
//! use diesel::prelude::*;
//! use threadline::tables::audit_changes;
//!
//! // Changes per table, for a dashboard.
//! let counts: Vec<(String, i64)> = audit_changes::table
//!     .group_by(audit_changes::table_name)
//!     .select((audit_changes::table_name, diesel::dsl::count_star()))
//!     .load(conn)?;
//! # Ok(()) }
//! ```

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::sql_types::SqlType;

/// PostgreSQL's `xid8`, a 64-bit transaction id: it reads as a `u64` (the reads'
/// [`TransactionRecord::xact_id`](crate::read::TransactionRecord::xact_id) holds it as text).
#[derive(Debug, Clone, Copy, Default, SqlType)]
#[diesel(postgres_type(oid = 5069, array_oid = 271))]
pub struct Xid8;

impl FromSql<Xid8, Pg> for u64 {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let bytes: [u8; 8] = value.as_bytes().try_into().map_err(|_| "an xid8 is 8 bytes")?;
        Ok(u64::from_be_bytes(bytes))
    }
}

diesel::table! {
    use diesel::sql_types::*;

    /// One row change, captured by a trigger.
    threadline.audit_changes (id) {
        /// Its id, from an identity: reads order by `(captured_at, id)`. A partitioned store
        /// has no primary key (it would have to hold `captured_at`); ids stay unique.
        id -> Int8,
        /// Its transaction's `audit_transactions.id` (not PostgreSQL's transaction id).
        transaction_id -> Int8,
        /// The audited table's schema.
        table_schema -> Text,
        /// The audited table's name.
        table_name -> Text,
        /// The row's key, a JSON object of key columns.
        table_pk -> Jsonb,
        /// `insert`, `update`, `delete` or `truncate`.
        op -> Text,
        /// The row after the change (before it, for a delete), masked and excluded; `NULL`
        /// for a truncate, or `{"partition": "schema.table"}` for one of a partition.
        data -> Nullable<Jsonb>,
        /// The columns an update changed.
        changed_fields -> Nullable<Array<Text>>,
        /// The changed columns' values before an update, masked as `data` is; `NULL` when
        /// the policy keeps no prior values (`changed_from: false`).
        changed_from -> Nullable<Jsonb>,
        /// The columns the policy masked, sorted; `NULL` when none.
        masked_fields -> Nullable<Array<Text>>,
        /// The columns the policy left out, sorted; `NULL` when none.
        excluded_fields -> Nullable<Array<Text>>,
        /// Whether this insert or delete is half of an update that changed the row's key.
        from_update -> Bool,
        /// When it was captured.
        captured_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::Xid8;

    /// One database transaction that changed audited rows, with its context.
    threadline.audit_transactions (id) {
        /// Its id.
        id -> Int8,
        /// PostgreSQL's id of the transaction, to line rows up with server logs (it repeats
        /// in a restored cluster: changes point at `id`).
        xact_id -> Xid8,
        /// When its first change was captured (or its context set), by the clock.
        occurred_at -> Timestamptz,
        /// Who acted, as `{"type": ..., "id": ...}`.
        actor -> Nullable<Jsonb>,
        /// The request's id.
        request_id -> Nullable<Text>,
        /// The correlation id.
        correlation_id -> Nullable<Text>,
        /// The tenant.
        tenant_id -> Nullable<Text>,
        /// The business action it carried out.
        action_id -> Nullable<Int8>,
        /// Where the write came from ([`Source`](crate::Source)).
        source -> Nullable<Text>,
        /// The context's free-form metadata ([`AuditContext::with_meta`](crate::AuditContext::with_meta)).
        meta -> Nullable<Jsonb>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::Xid8;

    /// One named business action, recorded with its actor.
    threadline.audit_actions (id) {
        /// Its id.
        id -> Int8,
        /// Its name, such as `post_created`.
        name -> Text,
        /// Who carried it out.
        actor -> Jsonb,
        /// `ok` or `error`.
        status -> Text,
        /// Its verb label.
        verb -> Nullable<Text>,
        /// Its category label.
        category -> Nullable<Text>,
        /// Why it was done.
        reason -> Nullable<Text>,
        /// A free comment.
        comment -> Nullable<Text>,
        /// The request's id.
        request_id -> Nullable<Text>,
        /// The correlation id.
        correlation_id -> Nullable<Text>,
        /// The background job's id.
        job_id -> Nullable<Text>,
        /// The tenant.
        tenant_id -> Nullable<Text>,
        /// When it was recorded.
        inserted_at -> Timestamptz,
        /// PostgreSQL's id of the transaction that recorded it.
        xact_id -> Xid8,
    }
}

diesel::joinable!(audit_changes -> audit_transactions (transaction_id));
diesel::joinable!(audit_transactions -> audit_actions (action_id));
diesel::allow_tables_to_appear_in_same_query!(audit_changes, audit_transactions, audit_actions);
