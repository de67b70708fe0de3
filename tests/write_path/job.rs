//! The job path: a request's context travels as JSON to a background worker, which writes
//! through the same audited path under the same actor and correlation id.

use diesel::connection::SimpleConnection;
use serde_json::json;
use threadline::{Action, ActorRef, AuditContext, Source};

use crate::SCHEMA;
use crate::support::{actions, setup, transactions};

/// What a request handler enqueues with its job: the request's context, as JSON.
fn enqueued_by_request() -> String {
    let ctx = AuditContext::new()
        .with_actor(ActorRef::user("42").unwrap())
        .with_request_id("req-5")
        .unwrap()
        .with_correlation_id("checkout-91")
        .unwrap()
        .with_tenant_id("acme")
        .unwrap()
        .with_source(Source::Request)
        .with_meta(json!({"client_addr": "10.1.2.3"}).as_object().unwrap().clone());
    serde_json::to_string(&ctx).unwrap()
}

#[tokio::test]
async fn a_worker_writes_under_the_requests_actor_and_correlation_id() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let payload = enqueued_by_request();

    // The worker: restores the context, says it is a job and names its action.
    let restored: AuditContext = serde_json::from_str(&payload).unwrap();
    let ctx = restored
        .with_source(Source::Job)
        .with_action(Action::new("receipt_sent").unwrap().with_job_id("job-17").unwrap());
    let mut conn = db.connect_async().await.unwrap();
    let audited = crate::audited_sql(&mut conn, &ctx, "INSERT INTO posts VALUES (1, 'receipt')")
        .await
        .unwrap();

    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(audited.transaction_id, Some(txs[0].id));
    assert_eq!(txs[0].actor, Some(json!({"type": "user", "id": "42"})));
    assert_eq!(txs[0].correlation_id.as_deref(), Some("checkout-91"));
    assert_eq!(txs[0].request_id.as_deref(), Some("req-5"));
    assert_eq!(txs[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(txs[0].source.as_deref(), Some("job"));
    assert_eq!(txs[0].meta, Some(json!({"client_addr": "10.1.2.3"})));
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!(audited.action_id, Some(recorded[0].id));
    assert_eq!(recorded[0].name, "receipt_sent");
    assert_eq!(recorded[0].actor, json!({"type": "user", "id": "42"}));
    assert_eq!(recorded[0].correlation_id.as_deref(), Some("checkout-91"));
}

#[test]
fn a_tampered_job_context_is_refused() {
    let mut payload: serde_json::Value = serde_json::from_str(&enqueued_by_request()).unwrap();
    let mut unknown_key = payload.clone();
    unknown_key["is_admin"] = json!(true);
    let mut bad_actor = payload.clone();
    bad_actor["actor"] = json!({"type": "superuser", "id": "1"});
    let mut empty_actor_id = payload.clone();
    empty_actor_id["actor"] = json!({"type": "user", "id": ""});
    let mut bad_correlation = payload.clone();
    bad_correlation["correlation_id"] = json!("line\nbreak");
    payload["actor"] = serde_json::Value::Null;
    payload["action"] = json!({"name": "receipt_sent"});
    for (tampered, expected) in [
        (unknown_key, "unknown field `is_admin`"),
        (bad_actor, "unknown variant `superuser`"),
        (empty_actor_id, "invalid actor id"),
        (bad_correlation, "invalid correlation_id"),
        (payload, "an action needs an actor"),
    ] {
        let error = serde_json::from_str::<AuditContext>(&tampered.to_string()).unwrap_err();
        assert!(error.to_string().contains(expected), "{tampered}: {error}");
    }
}
