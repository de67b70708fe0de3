//! The owner of the database as an attacker: it puts a schema of its own first on every
//! session's `search_path`, holding a twin of each built-in operator, function and type the
//! trail's queries could name. Whoever reads, exports, checks, prunes or installs the trail
//! then must never run one of them: each raises an error naming the role it ran as.

use chrono::{TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use threadline::evidence::{self, Evidence, EvidenceQuery, Verdict};
use threadline::export::{ExportOptions, Format};
use threadline::health::HealthCheck;
use threadline::jobs::{ExportJobs, JobState};
use threadline::policy::PolicyCheck;
use threadline::read::{ActorFilter, Filter, Reader, RowKey, TableName};
use threadline::retention::{self, Purge, RetentionPolicy};
use threadline::testing::{APP_ROLE, TestDatabase};
use threadline::{Action, ActorRef, AuditContext, migrations, views};

use crate::support::exec;

/// The twins, in schema `evil`: every binary operator and every function of `pg_catalog`
/// over concrete types, then a checked domain named as each type a query may spell
/// without a keyword. Each raises `evil ran as <role>`.
const TWINS: &str = r#"
    CREATE SCHEMA evil;
    CREATE FUNCTION evil.tripwire() RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'evil ran as %', current_user; END $$;
    DO $$
    DECLARE
        r record;
        n int := 0;
    BEGIN
        FOR r IN
            SELECT o.oprname, o.oprleft::regtype AS l, o.oprright::regtype AS rt, o.oprresult::regtype AS res
              FROM pg_operator o
             WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b'
               AND NOT EXISTS (SELECT 1 FROM pg_type t
                                WHERE t.oid IN (o.oprleft, o.oprright, o.oprresult) AND t.typtype = 'p')
        LOOP
            n := n + 1;
            EXECUTE format('CREATE FUNCTION evil.op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS '
                           '$f$BEGIN PERFORM evil.tripwire(); RETURN NULL; END$f$', n, r.l, r.rt, r.res);
            EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.op_%s)',
                           r.oprname, r.l, r.rt, n);
        END LOOP;
        FOR r IN
            SELECT p.proname, pg_catalog.oidvectortypes(p.proargtypes) AS args, p.prorettype::regtype AS res,
                   p.proretset
              FROM pg_proc p
             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND p.provariadic = 0
               AND p.pronargs > 0
               AND NOT EXISTS (SELECT 1 FROM pg_type t
                                WHERE (t.oid = ANY (p.proargtypes) OR t.oid = p.prorettype) AND t.typtype = 'p')
        LOOP
            EXECUTE format('CREATE FUNCTION evil.%I(%s) RETURNS %s%s LANGUAGE plpgsql AS '
                           '$f$BEGIN PERFORM evil.tripwire(); RETURN%s; END$f$',
                           r.proname, r.args, CASE WHEN r.proretset THEN 'SETOF ' ELSE '' END, r.res,
                           CASE WHEN r.proretset THEN '' ELSE ' NULL' END);
        END LOOP;
        FOR r IN
            SELECT unnest(ARRAY['text', 'jsonb', 'json', 'uuid', 'xid8', 'regclass', 'name', 'oid', 'int8',
                                'int4', 'int2', 'bool', 'timestamptz', 'float8', 'bytea']) AS t
        LOOP
            EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.tripwire())', r.t, r.t);
        END LOOP;
    END
    $$;
"#;

/// Hands the database to the app role, which creates the twins and puts them first on
/// every later session's path.
fn plant_twins(db: &TestDatabase, admin: &mut PgConnection) {
    exec(admin, &format!("ALTER DATABASE \"{}\" OWNER TO {APP_ROLE}", db.name()));
    let mut app = PgConnection::establish(&db.app_url().unwrap()).unwrap();
    exec(&mut app, TWINS);
    exec(
        &mut app,
        &format!(
            "ALTER DATABASE \"{}\" SET search_path = evil, pg_catalog, public",
            db.name()
        ),
    );
}

#[derive(QueryableByName)]
struct Path {
    #[diesel(sql_type = Text)]
    path: String,
}

fn search_path(conn: &mut PgConnection) -> String {
    sql_query("SELECT pg_catalog.current_setting('search_path') AS path")
        .get_result::<Path>(conn)
        .unwrap()
        .path
}

/// A superuser's new session, with the twins first on its path, and proof that they bite.
fn trapped_superuser(db: &TestDatabase) -> PgConnection {
    let mut conn = db.connect().unwrap();
    assert_eq!(search_path(&mut conn), "evil, pg_catalog, public");
    let me = sql_query("SELECT CAST(current_user AS pg_catalog.text) AS path")
        .get_result::<Path>(&mut conn)
        .unwrap()
        .path;
    let bitten = conn.batch_execute("SELECT 'a'::text = 'b'").unwrap_err().to_string();
    assert_eq!(bitten, format!("evil ran as {me}"));
    conn
}

fn ok<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn no_read_export_check_or_purge_runs_what_the_database_owner_put_on_the_path() {
    let db = TestDatabase::new().unwrap();
    let mut admin = db.connect().unwrap();
    exec(
        &mut admin,
        &format!(
            "CREATE TABLE public.posts (id bigint PRIMARY KEY, title text);
             SELECT threadline.audit_table('public.posts', '{{\"mask\": [\"title\"]}}');
             GRANT ALL ON public.posts TO {APP_ROLE};"
        ),
    );
    let actor = ActorRef::user("7").unwrap();
    let ctx = AuditContext::new()
        .with_actor(actor.clone())
        .with_request_id("req-1")
        .unwrap()
        .with_correlation_id("corr-1")
        .unwrap()
        .with_tenant_id("acme")
        .unwrap()
        .with_action(Action::new("post_edited").unwrap());
    let written = threadline::transaction_blocking(&mut admin, &ctx, |conn| {
        conn.batch_execute("INSERT INTO public.posts VALUES (1, 'one'), (2, 'two'); UPDATE public.posts SET title = 'uno' WHERE id = 1")?;
        Ok::<_, threadline::Error>(())
    })
    .unwrap();
    let transaction_id = written.transaction_id.unwrap();
    plant_twins(&db, &mut admin);
    let mut conn = trapped_superuser(&db);

    let reader = Reader::new();
    let reads = &reader;
    let posts: TableName = "public.posts".parse().unwrap();
    let filters = [
        Filter::new(),
        Filter::new().table("public.posts").unwrap(),
        Filter::new().actor(actor.clone()),
        Filter::new().request_id("req-1").unwrap(),
        Filter::new().correlation_id("corr-1").unwrap(),
        Filter::new().action("post_edited").unwrap(),
        Filter::new().tenant_id("acme").unwrap(),
        Filter::new()
            .from(Utc::now() - TimeDelta::hours(1))
            .unwrap()
            .to(Utc::now() + TimeDelta::hours(1))
            .unwrap(),
    ];
    for filter in &filters {
        let page = ok("timeline", reads.timeline_blocking(&mut conn, filter));
        assert_eq!(page.entries.len(), 3, "{filter:?}");
        assert_eq!(
            ok("count", reads.count_matching_blocking(&mut conn, filter, 100)).count,
            3
        );
        let mut csv = Vec::new();
        let mut export = ok("export", reader.export(filter, ExportOptions::new(Format::Csv)));
        ok("export", export.write_to_blocking(&mut conn, &mut csv, |_| {}));
        assert_eq!(export.rows(), 3);
    }
    let history = ok(
        "history",
        reads.row_history_blocking(&mut conn, &posts, &RowKey::from(1)),
    );
    assert_eq!(history.entries.len(), 2);
    ok(
        "as of",
        reads.as_of_blocking(&mut conn, &posts, &RowKey::from(1), Utc::now()),
    );
    let incident = ok(
        "incident",
        reads.incident_bundle_blocking(&mut conn, transaction_id, None, 10),
    );
    assert_eq!(incident.changes.entries.len(), 3);
    let by_actor = ok(
        "actor",
        reads.actor_history_blocking(&mut conn, &ActorFilter::Is(actor.clone()), None, 10),
    );
    assert_eq!(by_actor.entries.len(), 1);
    ok(
        "correlation",
        reads.correlation_bundle_blocking(&mut conn, "corr-1", None, 10),
    );

    let health = ok("health", HealthCheck::new().run_blocking(&mut conn));
    assert_eq!(health.findings, []);
    ok("policy", PolicyCheck::new().run_blocking(&mut conn));

    let saved = conn.transaction(|conn| {
        views::save_blocking(conn, &actor, "mine", &Filter::new().table("public.posts").unwrap())?;
        // a write in the caller's transaction gives the caller its path back
        assert_eq!(search_path(conn), "evil, pg_catalog, public");
        Ok::<_, threadline::Error>(())
    });
    ok("save a view", saved);
    assert_eq!(ok("views", views::list_blocking(&mut conn, &actor)).len(), 1);
    assert_eq!(ok("views", views::list_all_blocking(&mut conn)).len(), 1);
    ok("delete a view", views::delete_blocking(&mut conn, &actor, "mine"));
    let claim = Evidence::new("coverage_snapshot", "public.posts", "covered", Verdict::Proven);
    ok("evidence", evidence::record_blocking(&mut conn, &actor, &claim));
    assert_eq!(ok("evidence", EvidenceQuery::new().run_blocking(&mut conn)).len(), 1);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
        let page = ok("async timeline", reader.timeline(&mut conn, &filters[2]).await);
        assert_eq!(page.entries.len(), 3);
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("twins-{}", db.name()));
        let jobs = ok("jobs", ExportJobs::local(&dir));
        let id = ok(
            "submit",
            jobs.submit(&mut conn, &actor, &filters[1], Format::Ndjson, None).await,
        );
        let job = ok("run", jobs.run_once(&mut conn, "worker").await).expect("the job");
        assert_eq!((job.id, job.state, job.rows_written), (id, JobState::Completed, 3));
        let bytes = ok("download", jobs.read_all(&mut conn, id, &actor).await);
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    });

    let purge = Purge::new(RetentionPolicy::keep_days(1).unwrap()).as_of(Utc::now() + TimeDelta::days(2));
    assert_eq!(ok("dry run", purge.dry_run_blocking(&mut conn)).changes, 3);
    let outcome = ok("purge", purge.execute_blocking(&mut conn, |_| {}));
    assert_eq!(outcome.run.changes_deleted, 3);
    assert_eq!(ok("runs", retention::runs_blocking(&mut conn, 10)).len(), 1);
    ok("horizon", retention::horizon_blocking(&mut conn));
    assert_eq!(search_path(&mut conn), "evil, pg_catalog, public");
}

#[test]
fn a_superuser_installs_under_the_database_owner_s_path_without_running_it() {
    let db = TestDatabase::empty().unwrap();
    let mut admin = db.connect().unwrap();
    plant_twins(&db, &mut admin);
    let mut conn = trapped_superuser(&db);
    assert_eq!(ok("version", migrations::installed_version(&mut conn)), None);
    assert!(ok("install", migrations::install(&mut conn)));
    assert_eq!(
        ok("version", migrations::installed_version(&mut conn)),
        Some(migrations::SCHEMA_VERSION)
    );
    assert_eq!(search_path(&mut conn), "evil, pg_catalog, public");
    let report = ok("health", HealthCheck::new().run_blocking(&mut conn));
    assert_eq!(report.findings, [], "nothing of the owner's was built in");
}

#[test]
fn health_names_what_an_unpinned_install_built_in_from_the_owner_s_path() {
    let db = TestDatabase::empty().unwrap();
    let mut admin = db.connect().unwrap();
    exec(
        &mut admin,
        &format!("ALTER DATABASE \"{}\" OWNER TO {APP_ROLE}", db.name()),
    );
    let mut app = PgConnection::establish(&db.app_url().unwrap()).unwrap();
    exec(
        &mut app,
        &format!(
            "CREATE SCHEMA evil;
             CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS 'SELECT pg_catalog.now()';
             ALTER DATABASE \"{}\" SET search_path = evil, pg_catalog, public;",
            db.name()
        ),
    );
    // the install as a superuser runs it without its statements that pin the path
    let unpinned: String = migrations::INSTALL_SQL
        .lines()
        .filter(|line| !line.contains("set_config('search_path'") && !line.contains("caller_search_path'"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(unpinned.len() < migrations::INSTALL_SQL.len());
    let mut conn = db.connect().unwrap();
    exec(&mut conn, &unpinned);
    let report = ok("health", HealthCheck::new().run_blocking(&mut conn));
    let foreign: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.code == "foreign_dependency")
        .map(|f| f.detail.as_str())
        .collect();
    assert!(!foreign.is_empty(), "{:?}", report.findings);
    assert!(
        foreign.iter().all(|d| d.contains("uses function evil.now()")),
        "{foreign:?}"
    );
    assert!(
        foreign
            .iter()
            .any(|d| d.contains("default value for column installed_at of table threadline.schema_version")),
        "{foreign:?}"
    );
}

#[test]
fn health_warns_when_part_of_the_trail_belongs_to_a_role_that_is_not_a_superuser() {
    let (db, mut conn) = crate::support::setup();
    db.app_url().unwrap();
    assert_eq!(ok("health", HealthCheck::new().run_blocking(&mut conn)).findings, []);
    exec(
        &mut conn,
        &format!("ALTER TABLE threadline.audit_changes OWNER TO {APP_ROLE}"),
    );
    let report = ok("health", HealthCheck::new().run_blocking(&mut conn));
    let [finding] = report.findings.as_slice() else {
        panic!("{:?}", report.findings)
    };
    assert_eq!(finding.code, "schema_owner");
    assert!(
        finding.detail.starts_with(&format!(
            "schema threadline (or a table or function in it) belongs to {APP_ROLE}, which is not a superuser"
        )),
        "{}",
        finding.detail
    );
}
