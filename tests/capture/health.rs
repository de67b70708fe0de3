//! Health: each finding made on purpose, reported with its fix, and cleared by that fix.

use threadline::health::{Coverage, HealthCheck, HealthReport, Severity};

use crate::support::{exec, setup};

fn codes(report: &HealthReport) -> Vec<(String, Option<String>)> {
    report
        .findings
        .iter()
        .map(|f| (f.code.clone(), f.table.clone()))
        .collect()
}

fn coverage_of(report: &HealthReport, table: &str) -> Coverage {
    report
        .tables
        .iter()
        .find(|t| t.table == table)
        .unwrap_or_else(|| panic!("{table} in {report:?}"))
        .coverage
}

#[test]
fn coverage_counts_partitions_under_their_parent_and_expects_diesel_s_table_unaudited() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE __diesel_schema_migrations (version text PRIMARY KEY);
         CREATE TABLE posts (id int PRIMARY KEY);
         CREATE TABLE drafts (id int PRIMARY KEY);
         CREATE TABLE events (id int, PRIMARY KEY (id)) PARTITION BY RANGE (id);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);
         CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int PRIMARY KEY);
         SELECT threadline.audit_table('posts'); SELECT threadline.audit_table('events');",
    );
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    let tables: Vec<_> = report.tables.iter().map(|t| (t.table.as_str(), t.coverage)).collect();
    assert_eq!(
        tables,
        [
            ("public.__diesel_schema_migrations", Coverage::ExpectedUncovered),
            ("public.drafts", Coverage::Uncovered),
            ("public.events", Coverage::Covered),
            ("public.posts", Coverage::Covered),
        ]
    );
    assert_eq!(report.findings, []);
    assert_eq!(report.counts(), (2, 1, 1));
    let all = HealthCheck::new().all_schemas().run_blocking(&mut conn).unwrap();
    assert_eq!(coverage_of(&all, "billing.invoices"), Coverage::Uncovered);
}

#[test]
fn every_finding_is_reported_with_a_fix_that_clears_it() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE posts (id int PRIMARY KEY, title text);
           CREATE TABLE tags (code text NOT NULL, label text);
           CREATE UNIQUE INDEX tags_code ON tags (code);
           CREATE TABLE events (id int PRIMARY KEY) PARTITION BY RANGE (id);
           CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (10);
           SELECT threadline.audit_table('posts');
           SELECT threadline.audit_table('tags', '{"primary_key": ["code"]}');
           SELECT threadline.audit_table('events');
           -- as an install without a superuser would leave it: nothing follows schema changes
           ALTER EVENT TRIGGER threadline_ddl_command_end DISABLE;
           ALTER EVENT TRIGGER threadline_sql_drop DISABLE;
           ALTER TABLE posts DISABLE TRIGGER threadline_insert;
           ALTER TABLE posts ENABLE REPLICA TRIGGER threadline_update;
           ALTER TABLE posts ADD COLUMN body text;
           DROP TRIGGER threadline_delete ON events_1;
           DROP INDEX tags_code;"#,
    );
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    let posts = Some("public.posts".to_owned());
    assert_eq!(
        codes(&report),
        [
            ("event_trigger_disabled".to_owned(), None),
            ("event_trigger_disabled".to_owned(), None),
            ("trigger_missing".to_owned(), Some("public.events".to_owned())),
            ("capture_stale".to_owned(), posts.clone()),
            ("trigger_disabled".to_owned(), posts.clone()),
            ("trigger_replica_only".to_owned(), posts.clone()),
            ("key_not_unique".to_owned(), Some("public.tags".to_owned())),
        ]
    );
    assert!(report.findings.iter().all(|f| f.severity == Severity::Error));
    assert!(report.has_errors());
    for table in ["public.posts", "public.events", "public.tags"] {
        assert_eq!(coverage_of(&report, table), Coverage::Uncovered, "{table}");
    }
    let missing = report.findings.iter().find(|f| f.code == "trigger_missing").unwrap();
    assert!(
        missing.detail.contains("events_1") && missing.detail.contains("DELETE"),
        "{missing:?}"
    );

    for finding in &report.findings {
        exec(&mut conn, &finding.fix);
    }
    let fixed = HealthCheck::new().run_blocking(&mut conn).unwrap();
    assert_eq!(codes(&fixed), [], "every fix cleared its finding");
    assert_eq!(fixed.counts(), (3, 0, 0));
}

#[test]
fn a_missing_event_trigger_and_a_second_capture_trigger_are_reported() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY);
         SELECT threadline.audit_table('posts');
         DROP EVENT TRIGGER threadline_sql_drop;",
    );
    let function: String = {
        #[derive(diesel::QueryableByName)]
        struct Name {
            #[diesel(sql_type = diesel::sql_types::Text)]
            function_name: String,
        }
        diesel::RunQueryDsl::get_result::<Name>(
            diesel::sql_query("SELECT function_name FROM threadline.audited_tables"),
            &mut conn,
        )
        .unwrap()
        .function_name
    };
    exec(
        &mut conn,
        &format!(
            "CREATE TRIGGER again AFTER DELETE ON posts REFERENCING OLD TABLE AS threadline_old
             FOR EACH STATEMENT EXECUTE FUNCTION threadline.{function}()"
        ),
    );
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    let found: Vec<_> = report
        .findings
        .iter()
        .map(|f| (f.severity, f.code.as_str(), f.fix.as_str()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, Severity::Error);
    assert_eq!(found[0].1, "trigger_duplicated");
    assert_eq!(found[0].2, "DROP TRIGGER again ON public.posts;");
    assert_eq!((found[1].0, found[1].1), (Severity::Warning, "event_triggers_missing"));
}

#[test]
fn strict_mode_expected_on_and_an_outdated_install_are_reported() {
    let (_db, mut conn) = setup();
    let expecting = HealthCheck::new().expect_require_actor();
    assert_eq!(HealthCheck::new().run_blocking(&mut conn).unwrap().findings, []);
    let report = expecting.run_blocking(&mut conn).unwrap();
    assert_eq!(codes(&report), [("require_actor_off".to_owned(), None)]);
    assert_eq!(report.findings[0].severity, Severity::Error);
    exec(&mut conn, &report.findings[0].fix);
    assert_eq!(expecting.run_blocking(&mut conn).unwrap().findings, []);

    exec(&mut conn, "DELETE FROM threadline.schema_version WHERE version > 1");
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    assert_eq!(codes(&report), [("schema_outdated".to_owned(), None)]);
    assert_eq!(report.findings[0].severity, Severity::Warning);
    assert!(
        report.findings[0]
            .detail
            .starts_with("threadline schema version 1 is installed")
    );
}

#[test]
fn policy_drift_compares_declared_and_deployed_policies_table_by_table() {
    use serde_json::json;
    use threadline::policy::{PolicyCheck, PolicyStatus};

    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        r#"CREATE TABLE users (id int PRIMARY KEY, email text, phone text);
           CREATE TABLE posts (id int PRIMARY KEY, title text);
           CREATE TABLE legacy (id int PRIMARY KEY);
           SELECT threadline.audit_table('users', '{"mask": ["email", "phone"]}');
           SELECT threadline.audit_table('posts');
           SELECT threadline.audit_table('legacy');"#,
    );
    let policy = |mask: &[&str]| {
        json!({"exclude": [], "mask": mask, "mask_placeholder": "[REDACTED]", "ignore_changes": [],
               "primary_key": ["id"], "changed_from": true})
    };
    let check = PolicyCheck::new()
        .declare(&"users".parse().unwrap(), policy(&["email"]))
        .declare(&"posts".parse().unwrap(), policy(&[]))
        .declare(&"comments".parse().unwrap(), policy(&[]));
    let report = check.run_blocking(&mut conn).unwrap();
    let statuses: Vec<_> = report.tables.iter().map(|t| (t.table.as_str(), t.status)).collect();
    assert_eq!(
        statuses,
        [
            ("public.comments", PolicyStatus::DeclaredNotDeployed),
            ("public.legacy", PolicyStatus::DeployedNotDeclared),
            ("public.posts", PolicyStatus::Matches),
            ("public.users", PolicyStatus::Differs),
        ]
    );
    let users = &report.tables[3];
    assert_eq!(users.differences.len(), 1);
    assert_eq!(users.differences[0].removed, ["phone"]);
    assert_eq!(
        users.differences[0].explain("the code", "the database"),
        ["the database masks phone, the code does not"]
    );
    assert!(report.drifted());

    exec(
        &mut conn,
        r#"SELECT threadline.audit_table('users', '{"mask": ["email"]}');
           SELECT threadline.unaudit_table('legacy');"#,
    );
    let report = check.run_blocking(&mut conn).unwrap();
    assert_eq!(report.count(PolicyStatus::Matches), 2);
    assert_eq!(report.count(PolicyStatus::DeclaredNotDeployed), 1);
    assert_eq!(report.count(PolicyStatus::DeployedNotDeclared), 0);
}
