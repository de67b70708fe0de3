//! Each read index earns its place: the plans of the real read queries, on a trail large
//! enough for the planner to prefer an index to a scan, use it.

use diesel::connection::SimpleConnection;
use diesel::pg::Pg;
use diesel::sql_types::Text;
use diesel::{PgConnection, QueryableByName};

use super::scope::Scope;
use super::sql::Sql;
use super::*;
use crate::testing::TestDatabase;

/// A connection that records the plan of every query it runs, explained with `explain`.
struct Explaining {
    conn: PgConnection,
    explain: &'static str,
    plans: Vec<String>,
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

impl Db for Explaining {
    async fn load<R>(&mut self, sql: Sql) -> Result<Vec<R>, Error>
    where
        R: QueryableByName<Pg> + Send + 'static,
    {
        let plan: Vec<PlanLine> = self.conn.load(sql.prefixed(self.explain)).await?;
        self.plans
            .push(plan.into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n"));
        self.conn.load(sql).await
    }
}

impl Explaining {
    /// The plans of the queries `read` ran, cleared for the next read.
    fn plans_of<T>(&mut self, read: impl AsyncFnOnce(&mut Self) -> Result<T, Error>) -> String {
        self.plans.clear();
        ready(read(self)).expect("the read succeeds");
        self.plans.join("\n---\n")
    }
}

/// 200 000 changes of 5 000 rows in 40 000 transactions of 500 actors and 2 000 tenants,
/// and 500 changes of a rarely written table.
const TRAIL: &str = "
    CREATE TABLE posts (id bigint PRIMARY KEY, title text);
    SELECT threadline.audit_table('posts');
    INSERT INTO threadline.audit_actions (name, actor, correlation_id)
    SELECT 'action_' || (i % 20), jsonb_build_object('type', 'user', 'id', (i % 500)::text), 'corr-' || (i / 4)
      FROM generate_series(1, 40000) i;
    INSERT INTO threadline.audit_transactions
        (xact_id, occurred_at, actor, request_id, correlation_id, tenant_id, action_id)
    SELECT (i + 1000)::text::xid8, now() - make_interval(secs => 40000 - i),
           jsonb_build_object('type', 'user', 'id', (i % 500)::text),
           'req-' || i, 'corr-' || (i / 4), 'tenant-' || (i % 2000), i
      FROM generate_series(1, 40000) i;
    INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data, captured_at)
    SELECT i / 5 + 1, 'public', 'posts', jsonb_build_object('id', (i % 5000)::text), 'update',
           jsonb_build_object('id', i % 5000, 'title', 't' || i), now() - make_interval(secs => (200000 - i) / 5.0)
      FROM generate_series(0, 199999) i;
    INSERT INTO threadline.audit_changes (transaction_id, table_schema, table_name, table_pk, op, data, captured_at)
    SELECT i * 40 + 1, 'public', 'rare', jsonb_build_object('id', i::text), 'insert', '{}', now() - make_interval(secs => i * 40)
      FROM generate_series(1, 500) i;
    ANALYZE;
";

/// The index of `audit_changes` that `name` is, or is a partition's copy of: a
/// partition's indexes are named `<partition>_<what the table's index is named for>`.
fn table_index(name: &str) -> String {
    let Some(rest) = name.strip_prefix("audit_changes_") else {
        return name.to_owned();
    };
    let rest = rest.strip_prefix("before_").unwrap_or(rest);
    let partition_end = if rest.starts_with("default_") {
        "default".len()
    } else if rest.len() > 8 && rest.as_bytes()[..8].iter().all(u8::is_ascii_digit) {
        8
    } else {
        return name.to_owned();
    };
    format!("audit_changes{}", &rest[partition_end..])
}

fn assert_uses(plan: &str, index: &str) {
    let used: Vec<String> = plan
        .split(" using ")
        .skip(1)
        .filter_map(|rest| rest.split(' ').next())
        .map(table_index)
        .collect();
    assert!(used.iter().any(|u| u == index), "expected {index} in:\n{plan}");
    assert_no_scan(plan);
}

/// Asserts that `plan` reads no part of `audit_changes` whole, but an empty partition
/// (no pages: nothing to cost), which is read whole for free.
fn assert_no_scan(plan: &str) {
    assert!(
        !plan
            .lines()
            .any(|l| l.contains("Seq Scan on audit_changes") && !l.contains("(cost=0.00..0.00 ")),
        "no scan of audit_changes:\n{plan}"
    );
}

#[test]
fn a_partition_index_is_named_for_the_table_index_it_copies() {
    for (name, table) in [
        (
            "audit_changes_20261203_row_history_idx",
            "audit_changes_row_history_idx",
        ),
        (
            "audit_changes_before_20261205_table_timeline_idx",
            "audit_changes_table_timeline_idx",
        ),
        ("audit_changes_default_timeline_idx", "audit_changes_timeline_idx"),
        ("audit_changes_timeline_idx", "audit_changes_timeline_idx"),
        ("audit_transactions_actor_idx", "audit_transactions_actor_idx"),
    ] {
        assert_eq!(table_index(name), table, "{name}");
    }
}

#[test]
fn every_read_path_is_served_by_its_index() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    conn.batch_execute(TRAIL).unwrap();
    let mut db = Explaining {
        conn,
        explain: "EXPLAIN ",
        plans: Vec::new(),
    };
    let scope = Scope::default();
    let posts: TableName = "posts".parse().unwrap();
    let key = RowKey::from(1234);
    let all = Filter::new();

    let plan = db.plans_of(async |c| row_history(c, &scope, &posts, &key, None, 200).await);
    assert_uses(&plan, "audit_changes_row_history_idx");
    let at = chrono::Utc::now() - chrono::Duration::hours(3);
    let plan = db.plans_of(async |c| as_of(c, &scope, &posts, &key, at).await);
    assert_uses(&plan, "audit_changes_row_history_idx");

    let plan = db.plans_of(async |c| timeline(c, &scope, &all, None, 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_changes_timeline_idx");
    let mut deep = None;
    for _ in 0..18 {
        let page = ready(timeline(
            &mut db,
            &scope,
            &all,
            deep.as_ref(),
            MAX_PAGE_SIZE,
            Surface::Timeline,
        ));
        deep = page.unwrap().next_cursor;
    }
    let plan = db.plans_of(async |c| timeline(c, &scope, &all, deep.as_ref(), 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_changes_timeline_idx");
    assert!(
        plan.contains("Index Cond: (ROW(captured_at, id) < ROW("),
        "the keyset bound is an index condition:\n{plan}"
    );

    let by_table = Filter::new().table("rare").unwrap();
    let plan = db.plans_of(async |c| timeline(c, &scope, &by_table, None, 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_changes_table_timeline_idx");
    let table_page = ready(timeline(&mut db, &scope, &by_table, None, 10, Surface::Timeline)).unwrap();
    let plan = db.plans_of(async |c| {
        timeline(
            c,
            &scope,
            &by_table,
            table_page.next_cursor.as_ref(),
            10,
            Surface::Timeline,
        )
        .await
    });
    assert_uses(&plan, "audit_changes_table_timeline_idx");

    let by_actor = Filter::new().actor(crate::ActorRef::user("77").unwrap());
    let plan = db.plans_of(async |c| timeline(c, &scope, &by_actor, None, 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_transactions_actor_idx");
    let actor = ActorFilter::Is(crate::ActorRef::user("77").unwrap());
    let plan = db.plans_of(async |c| actor_history(c, &scope, &actor, None, 50).await);
    assert!(plan.contains("audit_transactions_actor_idx"), "{plan}");

    let plan = db.plans_of(async |c| correlation_bundle(c, &scope, "corr-500", None, 100).await);
    assert_uses(&plan, "audit_transactions_correlation_idx");
    assert!(plan.contains("audit_actions_correlation_idx"), "{plan}");

    let by_tenant = Filter::new().tenant_id("tenant-7").unwrap();
    let plan = db.plans_of(async |c| timeline(c, &scope, &by_tenant, None, 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_transactions_tenant_idx");
    let by_request = Filter::new().request_id("req-99").unwrap();
    let plan = db.plans_of(async |c| timeline(c, &scope, &by_request, None, 100, Surface::Timeline).await);
    assert_uses(&plan, "audit_transactions_request_idx");
    let by_action = Filter::new().action("action_3").unwrap();
    let plan = db.plans_of(async |c| timeline(c, &scope, &by_action, None, 100, Surface::Timeline).await);
    assert_no_scan(&plan);

    let plan = db.plans_of(async |c| incident_bundle(c, &scope, 777, None, 100).await);
    assert_uses(&plan, "audit_changes_transaction_id_idx");
}

/// A 40 000-row statement and a row updated 3 000 times, captured by the triggers, with
/// the audit tables never analyzed.
const FRESH_BULK_WRITE: &str = r#"
    DO $$
    DECLARE t regclass;
    BEGIN
        -- every table of the trail, a partitioned store's partitions among them
        FOR t IN SELECT c.oid FROM pg_class c
                  WHERE c.relnamespace = 'threadline'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'audit\_%' LOOP
            EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = false)', t);
        END LOOP;
    END
    $$;
    CREATE TABLE posts (id bigint PRIMARY KEY, title text);
    SELECT threadline.audit_table('posts');
    INSERT INTO posts VALUES (0, 'hot');
    DO $$ BEGIN FOR i IN 1..3000 LOOP UPDATE posts SET title = 'hot ' || i WHERE id = 0; END LOOP; END $$;
    BEGIN;
    SELECT threadline.begin_audit('{"actor": {"type": "user", "id": "7"}, "correlation_id": "bulk",
        "request_id": "req-bulk", "tenant_id": "acme", "action": {"name": "posts_imported"}}');
    INSERT INTO posts SELECT g, 'post ' || g FROM generate_series(1, 40000) g;
    COMMIT;
"#;

/// Asserts that no scan of `audit_changes` in `plan` (explained with ANALYZE) returned more
/// than `limit` rows per loop, and that none read the table whole or by bitmap.
fn assert_limit_first(plan: &str, limit: u64) {
    assert!(
        !plan.contains("Seq Scan on audit_changes"),
        "no scan of audit_changes:\n{plan}"
    );
    assert!(
        !plan.contains("Bitmap Heap Scan on audit_changes"),
        "no bitmap scan:\n{plan}"
    );
    let scans: Vec<u64> = plan
        .lines()
        .filter(|line| line.contains(" on audit_changes"))
        .map(|line| {
            let rows = line.split("actual rows=").nth(1).expect("explained with ANALYZE");
            rows.split(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(!scans.is_empty(), "the plan reads audit_changes:\n{plan}");
    assert!(
        scans.iter().all(|&rows| rows <= limit),
        "each scan of audit_changes stops after {limit} rows:\n{plan}"
    );
}

#[test]
fn pages_read_only_their_rows_before_the_audit_tables_are_analyzed() {
    let db = TestDatabase::new().unwrap();
    let mut conn = db.connect().unwrap();
    conn.batch_execute(FRESH_BULK_WRITE).unwrap();
    #[derive(QueryableByName)]
    struct Analyzed {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        analyzed: i64,
    }
    let analyzed: Vec<Analyzed> = ready(conn.load(Sql::new(
        "SELECT count(*) AS analyzed FROM pg_stat_all_tables WHERE schemaname = 'threadline' \
         AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)",
    )))
    .unwrap();
    assert_eq!(analyzed[0].analyzed, 0, "no audit table has statistics yet");
    let mut db = Explaining {
        conn,
        explain: "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) ",
        plans: Vec::new(),
    };
    let scope = Scope::default();
    let page = 2000;
    let limit = page as u64 + 1;

    let filters = [
        Filter::new(),
        Filter::new().table("posts").unwrap(),
        Filter::new().table("posts").unwrap().op(Op::Insert),
        Filter::new().correlation_id("bulk").unwrap(),
        Filter::new().request_id("req-bulk").unwrap(),
        Filter::new().actor(crate::ActorRef::user("7").unwrap()),
        Filter::new().tenant_id("acme").unwrap(),
        Filter::new().action("posts_imported").unwrap(),
    ];
    for filter in &filters {
        let mut cursor = None;
        for _ in 0..2 {
            let mut next = None;
            let plan = db.plans_of(async |c| {
                let read = timeline(c, &scope, filter, cursor.as_ref(), page, Surface::Timeline).await?;
                assert_eq!(read.entries.len(), page, "{filter:?}: a full page");
                next = read.next_cursor;
                Ok(())
            });
            assert_limit_first(&plan, limit);
            cursor = next;
        }
        let plan = db.plans_of(async |c| count_matching(c, &scope, filter, 10_000).await);
        assert_limit_first(&plan, 10_001);
    }

    let tenant = Scope(Some(std::sync::Arc::new(|_: Surface| {
        Restriction::new().tenant("acme")
    })));
    let plan = db.plans_of(async |c| timeline(c, &tenant, &Filter::new(), None, page, Surface::Timeline).await);
    assert_limit_first(&plan, limit);

    let posts: TableName = "posts".parse().unwrap();
    let plan = db.plans_of(async |c| row_history(c, &scope, &posts, &RowKey::from(0), None, page).await);
    assert_limit_first(&plan, limit);
    let plan = db.plans_of(async |c| correlation_bundle(c, &scope, "bulk", None, page).await);
    assert_limit_first(&plan, limit);
    let bulk = ready(timeline(
        &mut db,
        &scope,
        &Filter::new().correlation_id("bulk").unwrap(),
        None,
        1,
        Surface::Timeline,
    ))
    .unwrap();
    let plan = db.plans_of(async |c| incident_bundle(c, &scope, bulk.entries[0].transaction_id, None, page).await);
    assert_limit_first(&plan, limit);
}
