use diesel::connection::SimpleConnection;
use diesel_async::RunQueryDsl;
use serde_json::json;
use threadline::{Action, ActionStatus, ActorRef, AuditContext, Error};

use crate::SCHEMA;
use crate::support::{actions, changes, setup, transactions};

fn ctx() -> AuditContext {
    AuditContext::new()
        .with_actor(ActorRef::admin("9").unwrap())
        .with_correlation_id("flow-1")
        .unwrap()
}

#[tokio::test]
async fn an_action_is_recorded_and_linked_in_the_same_transaction() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let action = Action::new("post_created")
        .unwrap()
        .with_verb("create")
        .unwrap()
        .with_reason("launch")
        .unwrap();
    let audited = crate::audited_sql(
        &mut conn,
        &ctx().with_action(action),
        "INSERT INTO posts VALUES (1, 'a')",
    )
    .await
    .unwrap();
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, "post_created");
    assert_eq!(recorded[0].actor, json!({"type": "admin", "id": "9"}));
    assert_eq!(recorded[0].status, "ok");
    assert_eq!(recorded[0].correlation_id.as_deref(), Some("flow-1"));
    assert_eq!(recorded[0].reason.as_deref(), Some("launch"));
    assert_eq!(audited.action_id, Some(recorded[0].id));
    let txs = transactions(&mut admin);
    assert_eq!(txs[0].action_id, Some(recorded[0].id));
    assert_eq!(audited.transaction_id, Some(txs[0].id));
}

/// An action whose transaction wrote nothing audited is kept (it records intent on its
/// own) and no audit transaction is made for it.
#[tokio::test]
async fn an_action_without_audited_writes_is_kept_alone() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let audited = threadline::transaction(
        &mut conn,
        &ctx().with_action(Action::new("report_viewed").unwrap()),
        async |_| Ok::<_, Error>(()),
    )
    .await
    .unwrap();
    assert_eq!(audited.transaction_id, None);
    assert_eq!(audited.action_id, Some(actions(&mut admin)[0].id));
    assert!(transactions(&mut admin).is_empty());
}

#[tokio::test]
async fn record_action_alone_keeps_a_failed_attempt_after_a_rollback() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let action = Action::new("post_deleted").unwrap();
    let failed: Result<threadline::Committed<()>, Error> =
        threadline::transaction(&mut conn, &ctx().with_action(action.clone()), async |conn| {
            diesel::sql_query("INSERT INTO posts VALUES (1, 'x'), (1, 'x')")
                .execute(conn)
                .await?;
            Ok(())
        })
        .await;
    assert!(failed.is_err());
    let id = threadline::record_action(&mut conn, &ctx(), &action.with_status(ActionStatus::Error))
        .await
        .unwrap();
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!((recorded[0].id, recorded[0].status.as_str()), (id, "error"));
    assert!(changes(&mut admin).is_empty());
    let missing = threadline::record_action(&mut conn, &AuditContext::new(), &Action::new("x").unwrap()).await;
    assert!(matches!(missing, Err(Error::MissingActor)));
}

#[test]
fn blocking_record_action_and_bad_names() {
    let (db, mut admin) = setup();
    let mut conn = db.connect().unwrap();
    let id = threadline::record_action_blocking(&mut conn, &ctx(), &Action::new("export.requested").unwrap()).unwrap();
    assert_eq!(actions(&mut admin)[0].id, id);
    for bad in ["", "Post", "1st", "has space", &"a".repeat(129)] {
        assert!(Action::new(bad).is_err(), "{bad:?}");
    }
    let message = crate::support::exec_err(
        &mut admin,
        r#"SELECT threadline.record_action('{"name": "x", "actor": {"type": "user", "id": "1"}, "colour": "red"}')"#,
    );
    assert!(message.contains(r#"unknown action key "colour""#), "{message}");
    let message = crate::support::exec_err(
        &mut admin,
        r#"SELECT threadline.record_action('{"name": "x", "actor": {"type": "user", "id": "1"}, "reason": 42}')"#,
    );
    assert!(
        message.contains(r#""reason" must be a string, got number"#),
        "{message}"
    );
}
