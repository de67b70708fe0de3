//! Capture benchmark: what auditing costs a write.
//!
//! ```text
//! cargo bench -p threadline --bench capture --features testing
//! ```
//!
//! Prints one JSON object per line and scenario. Bulk scenarios (`bulk_insert`,
//! `bulk_update`, `bulk_delete`, each over `THREADLINE_BENCH_ROWS` rows, default 100000)
//! report the median wall time of `THREADLINE_BENCH_REPEAT` runs (default 3) of:
//!
//! - `unaudited_ms`: the statement on a table without capture;
//! - `floor_ms`: the statement plus writing the same change rows by hand into
//!   `threadline.audit_changes` in one `INSERT ... SELECT` (the cost of the audit rows alone);
//! - `audited_ms`: the statement on a table captured by Threadline;
//! - `rowlevel_ms`: the statement on a table captured by a plain row-level jsonb trigger
//!   with a per-row transaction upsert, the design most audit triggers use.
//!
//! `oltp_update` runs single-row update transactions from 2 clients with
//! `synchronous_commit=off` for `THREADLINE_BENCH_SECONDS` (default 5) per variant and
//! reports transactions per second (`*_tps`) and the mean transaction time (`*_ms`).
//!
//! `storage` writes `THREADLINE_BENCH_ROWS` inserts and as many updates of every row to an
//! audited table of a fresh database, vacuums the audit tables, and reports the bytes per
//! captured change of each audit table (with its TOAST) and index, and their total. With
//! `THREADLINE_TEST_PARTITIONS=day` every database is a partitioned store (as in
//! `threadline::testing`), and each figure sums the partitions.
//!
//! `THREADLINE_BENCH_DROP_INDEXES` (a comma-separated list of index names in schema
//! `threadline`, such as `audit_changes_timeline_idx`) drops those indexes first, to price
//! what each read index costs the writes.
//!
//! The database is `DATABASE_URL`'s server, or a private one as in `threadline::testing`.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use serde_json::{Value, json};
use threadline::testing::TestDatabase;

const COLUMNS: &str =
    "id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, n int NOT NULL, updated_at timestamptz NOT NULL";

/// The four ways a table can be written, by the name of its table.
#[derive(Clone, Copy)]
enum Variant {
    Unaudited,
    Floor,
    Audited,
    RowLevel,
}

impl Variant {
    const ALL: [Variant; 4] = [Variant::Unaudited, Variant::Floor, Variant::Audited, Variant::RowLevel];

    fn key(self) -> &'static str {
        match self {
            Variant::Unaudited => "unaudited",
            Variant::Floor => "floor",
            Variant::Audited => "audited",
            Variant::RowLevel => "rowlevel",
        }
    }

    fn table(self) -> String {
        format!("bench_{}", self.key())
    }

    /// Creates the variant's empty table with its capture.
    fn create(self, conn: &mut PgConnection) {
        let table = self.table();
        run(
            conn,
            &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({COLUMNS});"),
        );
        match self {
            Variant::Audited => run(
                conn,
                &format!("SELECT threadline.audit_table('{table}', '{{\"ignore_changes\": [\"updated_at\"]}}')"),
            ),
            Variant::RowLevel => run(
                conn,
                &format!(
                    "CREATE TRIGGER rowlevel AFTER INSERT OR UPDATE OR DELETE ON {table}
                     FOR EACH ROW EXECUTE FUNCTION bench_rowlevel_capture()"
                ),
            ),
            Variant::Unaudited | Variant::Floor => {}
        }
    }

    /// The SQL of one bulk operation over `rows` rows.
    fn bulk_sql(self, op: &str, rows: u64) -> String {
        let table = self.table();
        let statement = match op {
            "insert" => format!(
                "INSERT INTO {table} SELECT g, 'title ' || g, repeat('body ', 10), 0, now() FROM generate_series(1, {rows}) g"
            ),
            "update" => format!("UPDATE {table} SET n = n + 1, updated_at = now()"),
            _ => format!("DELETE FROM {table}"),
        };
        match self {
            Variant::Floor => floor_sql(&statement, op, &table),
            _ => statement,
        }
    }

    /// The SQL of one single-row update transaction.
    fn oltp_sql(self, id: u64) -> String {
        let table = self.table();
        let statement = format!("UPDATE {table} SET n = n + 1, updated_at = now() WHERE id = {id}");
        match self {
            Variant::Floor => floor_sql(&statement, "update", &table),
            _ => statement,
        }
    }
}

/// `statement` with its change rows written by hand into `threadline.audit_changes` in
/// the same statement: the least any trigger could do.
fn floor_sql(statement: &str, op: &str, table: &str) -> String {
    let image =
        "jsonb_build_object('id', c.id, 'title', c.title, 'body', c.body, 'n', c.n, 'updated_at', c.updated_at)";
    let (fields, from) = match op {
        "update" => ("ARRAY['n']", "jsonb_build_object('n', c.n - 1)"),
        _ => ("NULL::text[]", "NULL::jsonb"),
    };
    format!(
        "WITH c AS ({statement} RETURNING *)
         INSERT INTO threadline.audit_changes
             (transaction_id, table_schema, table_name, table_pk, op, data, changed_fields, changed_from, captured_at)
         SELECT 0, 'public', '{table}', jsonb_build_object('id', c.id::text), '{op}', {image}, {fields}, {from}, clock_timestamp()
           FROM c"
    )
}

const ROWLEVEL_SETUP: &str = r#"
CREATE TABLE bench_rowlevel_tx (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xact_id xid8 NOT NULL UNIQUE,
    actor jsonb,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION bench_rowlevel_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_tx bigint;
    v_new jsonb;
    v_old jsonb;
    v_changed text[];
BEGIN
    INSERT INTO bench_rowlevel_tx (xact_id, actor)
    VALUES (pg_current_xact_id(), nullif(current_setting('threadline.actor', true), '')::jsonb)
    ON CONFLICT (xact_id) DO NOTHING
    RETURNING id INTO v_tx;
    IF v_tx IS NULL THEN
        SELECT id INTO v_tx FROM bench_rowlevel_tx WHERE xact_id = pg_current_xact_id();
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data, captured_at)
        VALUES (v_tx, TG_TABLE_SCHEMA, TG_TABLE_NAME, jsonb_build_object('id', NEW.id::text), 'insert', to_jsonb(NEW), clock_timestamp());
    ELSIF TG_OP = 'UPDATE' THEN
        v_new := to_jsonb(NEW);
        v_old := to_jsonb(OLD);
        SELECT array_agg(e.key ORDER BY e.key) INTO v_changed
          FROM jsonb_each(v_new) e WHERE e.key <> 'updated_at' AND e.value IS DISTINCT FROM v_old -> e.key;
        IF v_changed IS NULL THEN
            RETURN NULL;
        END IF;
        INSERT INTO threadline.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data, changed_fields, changed_from, captured_at)
        VALUES (v_tx, TG_TABLE_SCHEMA, TG_TABLE_NAME, jsonb_build_object('id', NEW.id::text), 'update', v_new, v_changed,
                (SELECT jsonb_object_agg(k, v_old -> k) FROM unnest(v_changed) k), clock_timestamp());
    ELSE
        INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data, captured_at)
        VALUES (v_tx, TG_TABLE_SCHEMA, TG_TABLE_NAME, jsonb_build_object('id', OLD.id::text), 'delete', to_jsonb(OLD), clock_timestamp());
    END IF;
    RETURN NULL;
END
$$;
"#;

fn run(conn: &mut PgConnection, sql: &str) {
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Vacuums a table and checkpoints, so the next run starts from the same state.
fn settle(conn: &mut PgConnection, table: &str) {
    run(conn, &format!("VACUUM ANALYZE {table}"));
    run(conn, "CHECKPOINT");
}

/// Empties the audit tables, so every run writes into tables of the same size.
fn reset_trail(conn: &mut PgConnection) {
    run(
        conn,
        "TRUNCATE threadline.audit_changes, threadline.audit_transactions, bench_rowlevel_tx",
    );
    settle(conn, "threadline.audit_changes");
}

fn bulk(conn: &mut PgConnection, rows: u64, repeat: u64) -> Vec<Value> {
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); 3]; Variant::ALL.len()];
    for _ in 0..repeat {
        for (v, variant) in Variant::ALL.into_iter().enumerate() {
            variant.create(conn);
            reset_trail(conn);
            for (o, op) in ["insert", "update", "delete"].into_iter().enumerate() {
                let sql = variant.bulk_sql(op, rows);
                let started = Instant::now();
                run(conn, &sql);
                times[v][o].push(started.elapsed().as_secs_f64() * 1000.0);
                settle(conn, &variant.table());
            }
        }
    }
    ["insert", "update", "delete"]
        .into_iter()
        .enumerate()
        .map(|(o, op)| {
            let ms: Vec<f64> = (0..Variant::ALL.len()).map(|v| median(times[v][o].clone())).collect();
            json!({
                "scenario": format!("bulk_{op}"),
                "rows": rows,
                "unaudited_ms": round(ms[0]),
                "floor_ms": round(ms[1]),
                "audited_ms": round(ms[2]),
                "rowlevel_ms": round(ms[3]),
                "audited_vs_floor": round(ms[2] / ms[1]),
                "audited_vs_unaudited": round(ms[2] / ms[0]),
                "rowlevel_vs_audited": round(ms[3] / ms[2]),
            })
        })
        .collect()
}

/// Transactions per second of single-row updates from `clients` connections.
fn oltp_tps(url: &str, variant: Variant, clients: u64, seconds: u64, table_rows: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).expect("connect");
                run(&mut conn, "SET synchronous_commit = off");
                let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (client + 1);
                let mut done = 0_u64;
                while Instant::now() < deadline {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    run(&mut conn, &variant.oltp_sql(1 + state % table_rows));
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("client thread")).sum();
    total as f64 / seconds as f64
}

fn oltp(conn: &mut PgConnection, url: &str, seconds: u64) -> Value {
    let clients = 2;
    let table_rows = 10_000;
    let mut tps = Vec::new();
    for variant in Variant::ALL {
        variant.create(conn);
        run(
            conn,
            &format!(
                "INSERT INTO {} SELECT g, 'title', 'body', 0, now() FROM generate_series(1, {table_rows}) g",
                variant.table()
            ),
        );
        settle(conn, &variant.table());
        reset_trail(conn);
        tps.push(oltp_tps(url, variant, clients, seconds, table_rows));
    }
    let ms = |t: f64| round(1000.0 * clients as f64 / t);
    json!({
        "scenario": "oltp_update",
        "clients": clients,
        "seconds": seconds,
        "unaudited_tps": round(tps[0]),
        "floor_tps": round(tps[1]),
        "audited_tps": round(tps[2]),
        "rowlevel_tps": round(tps[3]),
        "unaudited_ms": ms(tps[0]),
        "floor_ms": ms(tps[1]),
        "audited_ms": ms(tps[2]),
        "rowlevel_ms": ms(tps[3]),
        "audited_vs_floor_tps": round(tps[2] / tps[1]),
        "audited_vs_unaudited_tps": round(tps[2] / tps[0]),
        "audited_vs_rowlevel_tps": round(tps[2] / tps[3]),
    })
}

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = Text)]
    relation: String,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// Bytes per change of every audit table and index after `rows` inserts and `rows` updates.
fn storage(rows: u64) -> Value {
    let db = TestDatabase::new().expect("benchmark database");
    let mut conn = db.connect().expect("connect");
    Variant::Audited.create(&mut conn);
    run(&mut conn, &Variant::Audited.bulk_sql("insert", rows));
    run(&mut conn, &Variant::Audited.bulk_sql("update", rows));
    run(
        &mut conn,
        "VACUUM threadline.audit_changes, threadline.audit_transactions",
    );
    let sizes: Vec<Size> = diesel::sql_query(
        // On a partitioned store each table and index is the sum of its partitions'.
        "SELECT c.relname::text AS relation,
                (SELECT sum(CASE WHEN c.relkind IN ('i', 'I') THEN pg_relation_size(l.relid)
                                 ELSE pg_table_size(l.relid) END)::bigint
                   FROM (SELECT t.relid FROM pg_partition_tree(c.oid) t WHERE t.isleaf
                         UNION SELECT c.oid WHERE c.relkind IN ('r', 'i')) l) AS bytes
           FROM pg_class c
          WHERE c.oid IN ('threadline.audit_changes'::regclass, 'threadline.audit_transactions'::regclass)
             OR c.oid IN (SELECT indexrelid FROM pg_index
                           WHERE indrelid IN ('threadline.audit_changes'::regclass,
                                              'threadline.audit_transactions'::regclass))
          ORDER BY bytes DESC, relation",
    )
    .load(&mut conn)
    .expect("relation sizes");
    let changes = 2.0 * rows as f64;
    let per_change = |bytes: i64| (bytes as f64 / changes * 10.0).round() / 10.0;
    let total: i64 = sizes.iter().map(|s| s.bytes).sum();
    let relations: serde_json::Map<String, Value> = sizes
        .iter()
        .map(|s| (s.relation.clone(), json!(per_change(s.bytes))))
        .collect();
    json!({
        "scenario": "storage",
        "partitioned": std::env::var("THREADLINE_TEST_PARTITIONS").unwrap_or_default(),
        "changes": 2 * rows,
        "bytes_per_change": relations,
        "total_bytes_per_change": per_change(total),
    })
}

fn main() {
    let rows = env_number("THREADLINE_BENCH_ROWS", 100_000);
    let repeat = env_number("THREADLINE_BENCH_REPEAT", 3).max(1);
    let seconds = env_number("THREADLINE_BENCH_SECONDS", 5).max(1);
    let db = TestDatabase::new().expect("benchmark database");
    let mut conn = db.connect().expect("connect");
    let dropped: Vec<String> = std::env::var("THREADLINE_BENCH_DROP_INDEXES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    for index in &dropped {
        run(
            &mut conn,
            &format!("DROP INDEX threadline.\"{}\"", index.replace('"', "")),
        );
    }
    println!("{}", json!({"scenario": "setup", "dropped_indexes": dropped}));
    run(&mut conn, ROWLEVEL_SETUP);
    for line in bulk(&mut conn, rows, repeat) {
        println!("{line}");
    }
    println!("{}", oltp(&mut conn, db.url(), seconds));
    println!("{}", storage(rows));
}
