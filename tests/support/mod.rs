//! Helpers shared by the integration test binaries: reading the audit tables back.
#![allow(dead_code)]

pub mod bouncer;

use diesel::connection::SimpleConnection;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text};
use diesel::{PgConnection, QueryableByName, RunQueryDsl, sql_query};
use serde_json::Value;
use threadline::testing::TestDatabase;

/// A fresh database with Threadline installed, and a connection to it.
pub fn setup() -> (TestDatabase, PgConnection) {
    let db = TestDatabase::new().expect("test database");
    let conn = db.connect().expect("connect");
    (db, conn)
}

/// Runs SQL, panicking with the database's message on failure.
pub fn exec(conn: &mut PgConnection, sql: &str) {
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
}

/// Runs SQL that must fail and returns the database's message, detail and hint.
pub fn exec_err(conn: &mut PgConnection, sql: &str) -> String {
    match conn.batch_execute(sql) {
        Ok(()) => panic!("{sql}\nsucceeded, but should have failed"),
        Err(diesel::result::Error::DatabaseError(_, info)) => {
            format!(
                "{} | {} | {}",
                info.message(),
                info.details().unwrap_or(""),
                info.hint().unwrap_or("")
            )
        }
        Err(e) => e.to_string(),
    }
}

/// One row of `threadline.audit_changes`.
#[derive(Debug, Clone, QueryableByName)]
pub struct Change {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub transaction_id: i64,
    #[diesel(sql_type = Text)]
    pub table_schema: String,
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Jsonb)]
    pub table_pk: Value,
    #[diesel(sql_type = Text)]
    pub op: String,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub data: Option<Value>,
    #[diesel(sql_type = Nullable<Array<Text>>)]
    pub changed_fields: Option<Vec<String>>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub changed_from: Option<Value>,
    #[diesel(sql_type = Bool)]
    pub from_update: bool,
}

/// All captured changes, in capture order.
pub fn changes(conn: &mut PgConnection) -> Vec<Change> {
    sql_query(
        "SELECT id, transaction_id, table_schema, table_name, table_pk, op, data, changed_fields, changed_from, from_update
           FROM threadline.audit_changes ORDER BY captured_at, id",
    )
    .load(conn)
    .expect("read audit_changes")
}

/// The captured changes of one table, in capture order.
pub fn changes_of(conn: &mut PgConnection, table: &str) -> Vec<Change> {
    changes(conn).into_iter().filter(|c| c.table_name == table).collect()
}

/// One row of `threadline.audit_transactions`.
#[derive(Debug, Clone, QueryableByName)]
pub struct Transaction {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub actor: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub action_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub source: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub meta: Option<Value>,
}

/// All audit transactions, oldest first.
pub fn transactions(conn: &mut PgConnection) -> Vec<Transaction> {
    sql_query(
        "SELECT id, actor, request_id, correlation_id, tenant_id, action_id, source, meta
           FROM threadline.audit_transactions ORDER BY id",
    )
    .load(conn)
    .expect("read audit_transactions")
}

/// One row of `threadline.audit_actions`.
#[derive(Debug, Clone, QueryableByName)]
pub struct ActionRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Jsonb)]
    pub actor: Value,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
}

/// All actions, oldest first.
pub fn actions(conn: &mut PgConnection) -> Vec<ActionRow> {
    sql_query(
        "SELECT id, name, actor, status, request_id, correlation_id, reason FROM threadline.audit_actions ORDER BY id",
    )
    .load(conn)
    .expect("read audit_actions")
}

/// Every byte Threadline stored, as text: each audit table rendered row by row.
pub fn all_stored_text(conn: &mut PgConnection) -> String {
    #[derive(QueryableByName)]
    struct Dump {
        #[diesel(sql_type = Text)]
        dump: String,
    }
    let rows: Vec<Dump> = sql_query(
        "SELECT t::text AS dump FROM threadline.audit_changes t
         UNION ALL SELECT t::text FROM threadline.audit_transactions t
         UNION ALL SELECT t::text FROM threadline.audit_actions t
         UNION ALL SELECT t::text FROM threadline.audited_tables t
         UNION ALL SELECT t::text FROM threadline.schema_events t",
    )
    .load(conn)
    .expect("dump audit tables");
    rows.into_iter().map(|r| r.dump).collect::<Vec<_>>().join("\n")
}

/// Every byte on disk of every table, index and TOAST relation in schema `threadline`,
/// dead tuples included, after a checkpoint has written them out (superuser only).
pub fn all_stored_bytes(conn: &mut PgConnection) -> Vec<u8> {
    #[derive(QueryableByName)]
    struct File {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        bytes: Vec<u8>,
    }
    exec(conn, "CHECKPOINT");
    let files: Vec<File> = sql_query(
        "SELECT pg_read_binary_file(pg_relation_filepath(c.oid)) AS bytes
           FROM pg_class c
          WHERE (c.relnamespace = 'threadline'::regnamespace
                 OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = 'threadline'::regnamespace))
            AND c.relkind IN ('r', 'i', 't') AND pg_relation_filepath(c.oid) IS NOT NULL",
    )
    .load(conn)
    .expect("read the audit tables' files");
    files.into_iter().flat_map(|f| f.bytes).collect()
}

/// The deployed policy of a table, as `threadline.table_policy` reports it.
pub fn policy_of(conn: &mut PgConnection, table: &str) -> Value {
    #[derive(QueryableByName)]
    struct Policy {
        #[diesel(sql_type = Jsonb)]
        policy: Value,
    }
    sql_query(format!("SELECT threadline.table_policy('{table}') AS policy"))
        .get_result::<Policy>(conn)
        .expect("read the deployed policy")
        .policy
}
