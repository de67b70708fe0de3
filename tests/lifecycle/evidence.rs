//! Evidence: append-only for the owner and the app role, the writers and reads round-trip.

use diesel::Connection;
use threadline::evidence::{self, Evidence, EvidenceQuery, Verdict};
use threadline::export::Format;
use threadline::health::HealthCheck;
use threadline::policy::PolicyCheck;
use threadline::retention::{Purge, RetentionPolicy};
use threadline::{ActorRef, Error};

use crate::support::{exec, exec_err, setup};

#[test]
fn writers_round_trip_latest_per_subject_and_history() {
    let (_db, mut conn) = setup();
    exec(
        &mut conn,
        "CREATE TABLE posts (id int PRIMARY KEY); CREATE TABLE drafts (id int PRIMARY KEY);",
    );
    exec(&mut conn, "SELECT threadline.audit_table('posts')");
    let auditor = ActorRef::admin("7").unwrap();
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    let first = evidence::record_blocking(&mut conn, &auditor, &Evidence::coverage(&report)).unwrap();
    exec(&mut conn, "SELECT threadline.audit_table('drafts')");
    let report = HealthCheck::new().run_blocking(&mut conn).unwrap();
    let second = evidence::record_blocking(&mut conn, &auditor, &Evidence::coverage(&report)).unwrap();
    let policy = PolicyCheck::new().run_blocking(&mut conn).unwrap();
    evidence::record_blocking(&mut conn, &auditor, &Evidence::policy(&policy)).unwrap();
    let run = Purge::new(RetentionPolicy::keep_days(30).unwrap())
        .execute_blocking(&mut conn, |_| {})
        .unwrap();
    evidence::record_blocking(&mut conn, &auditor, &Evidence::retention_run(&run.run)).unwrap();
    exec(&mut conn, "INSERT INTO posts VALUES (1), (2)");
    let summary = threadline::read::Reader::new()
        .export(
            &threadline::read::Filter::new(),
            threadline::export::ExportOptions::new(Format::Csv),
        )
        .unwrap()
        .write_to_blocking(&mut conn, &mut Vec::new(), |_| {})
        .unwrap();
    let delivered =
        Evidence::export_delivered("q4-audit", Format::Csv, &summary, &ActorRef::user("auditor-9").unwrap());
    evidence::record_blocking(&mut conn, &auditor, &delivered).unwrap();
    let export = EvidenceQuery::new()
        .subject("export:q4-audit")
        .run_blocking(&mut conn)
        .unwrap();
    assert_eq!(
        export[0].claim,
        format!("2 changes ({} bytes, csv) delivered", summary.bytes)
    );
    assert_eq!(
        export[0].payload["recipient"],
        serde_json::json!({"type": "user", "id": "auditor-9"})
    );
    assert_eq!(export[0].recorded_role, "postgres");

    let history = EvidenceQuery::new()
        .subject("coverage:public")
        .history()
        .run_blocking(&mut conn)
        .unwrap();
    assert_eq!(history.iter().map(|r| r.id).collect::<Vec<_>>(), [second, first]);
    assert_eq!(history[1].verdict, Verdict::Unsupported, "drafts was uncovered");
    assert_eq!(
        history[1].payload["uncovered_tables"],
        serde_json::json!(["public.drafts"])
    );
    assert_eq!(history[0].verdict, Verdict::Proven);
    assert_eq!(
        history[0].claim,
        "2 tables covered, 0 uncovered, 0 expected uncovered; 0 error findings"
    );
    assert_eq!(history[0].recorded_by, auditor);

    let latest = EvidenceQuery::new().run_blocking(&mut conn).unwrap();
    let subjects: Vec<(&str, &str)> = latest.iter().map(|r| (r.subject.as_str(), r.kind.as_str())).collect();
    assert_eq!(
        subjects,
        [
            ("export:q4-audit", "export_delivered"),
            ("retention", "retention_run"),
            ("policies", "policy_drift"),
            ("coverage:public", "coverage_snapshot")
        ]
    );
    assert_eq!(latest[1].verdict, Verdict::Proven);
    assert_eq!(latest[2].payload["deployed_not_declared"], 2);
    let window = EvidenceQuery::new()
        .history()
        .to(history[1].recorded_at)
        .run_blocking(&mut conn)
        .unwrap();
    assert_eq!(window.len(), 1);

    let bad = evidence::record_blocking(
        &mut conn,
        &auditor,
        &Evidence::new("Not A Kind", "s", "c", Verdict::Proven),
    );
    assert!(matches!(&bad, Err(Error::Invalid { field: "evidence", .. })), "{bad:?}");
}

#[test]
fn evidence_is_append_only_for_the_owner_and_the_app_role_except_through_the_logged_prune() {
    let (db, mut conn) = setup();
    let auditor = ActorRef::admin("7").unwrap();
    let evidence = Evidence::new("manual_check", "backups", "restored on 2026-12-01", Verdict::Proven);
    evidence::record_blocking(&mut conn, &auditor, &evidence).unwrap();
    for sql in [
        "UPDATE threadline.evidence_records SET verdict = 'unsupported'",
        "DELETE FROM threadline.evidence_records",
        "TRUNCATE threadline.evidence_records",
        "SET session_replication_role = replica; DELETE FROM threadline.evidence_records",
        "DELETE FROM threadline.evidence_maintenance",
    ] {
        let refused = exec_err(&mut conn, sql);
        assert!(refused.contains("is append-only"), "{sql}: {refused}");
        exec(&mut conn, "RESET session_replication_role");
    }
    let mut app = diesel::PgConnection::establish(&db.app_url().unwrap()).unwrap();
    evidence::record_blocking(&mut app, &ActorRef::system("app").unwrap(), &evidence).unwrap();
    for sql in [
        "UPDATE threadline.evidence_records SET claim = 'x'",
        "DELETE FROM threadline.evidence_records",
        "SELECT threadline.prune_evidence(now(), 'cover my tracks')",
    ] {
        let refused = exec_err(&mut app, sql);
        assert!(refused.contains("permission denied"), "{sql}: {refused}");
    }
    assert_eq!(EvidenceQuery::new().history().run_blocking(&mut conn).unwrap().len(), 2);

    exec(
        &mut conn,
        "SELECT threadline.prune_evidence(now() + interval '1 second', 'retention of evidence: 7 years')",
    );
    assert_eq!(EvidenceQuery::new().history().run_blocking(&mut conn).unwrap().len(), 0);
    let logged = exec_err(
        &mut conn,
        "DO $$ BEGIN IF (SELECT records_deleted FROM threadline.evidence_maintenance) = 2 AND (SELECT reason FROM threadline.evidence_maintenance) LIKE 'retention of evidence%' THEN RAISE 'logged'; END IF; END $$",
    );
    assert!(logged.starts_with("logged"), "{logged}");
}

#[test]
fn saved_views_are_unique_per_owner_and_name_and_keep_their_filter() {
    use threadline::read::Filter;
    use threadline::views;

    let (_db, mut conn) = setup();
    let (ada, bob) = (ActorRef::admin("ada").unwrap(), ActorRef::admin("bob").unwrap());
    let filter = Filter::new()
        .table("posts")
        .unwrap()
        .actor(ActorRef::user("42").unwrap())
        .correlation_id("checkout 91&more")
        .unwrap();
    let saved = views::save_blocking(&mut conn, &ada, " refunds ", &filter).unwrap();
    assert_eq!(saved.name, "refunds");
    assert_eq!(
        saved.query,
        "table=public.posts&actor=user%3A42&correlation_id=checkout%2091%26more"
    );
    assert_eq!(saved.filter().unwrap(), filter);
    views::save_blocking(&mut conn, &bob, "refunds", &Filter::new()).unwrap();
    let replaced = views::save_blocking(&mut conn, &ada, "refunds", &Filter::new().action("refund").unwrap()).unwrap();
    assert_eq!((replaced.id, replaced.query.as_str()), (saved.id, "action=refund"));
    assert_eq!(views::list_blocking(&mut conn, &ada).unwrap().len(), 1);
    assert_eq!(views::list_all_blocking(&mut conn).unwrap().len(), 2);
    assert!(matches!(
        views::delete_blocking(&mut conn, &ada, "nope"),
        Err(Error::NotFound { .. })
    ));
    views::delete_blocking(&mut conn, &ada, "refunds").unwrap();
    assert_eq!(
        views::list_blocking(&mut conn, &bob).unwrap()[0].owner,
        bob,
        "bob's view of that name stays"
    );
    assert!(views::save_blocking(&mut conn, &ada, "", &Filter::new()).is_err());
}
