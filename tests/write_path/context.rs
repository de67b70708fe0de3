use diesel::connection::SimpleConnection;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use serde_json::json;
use threadline::{ActorRef, AuditContext, Error, Source};

use crate::SCHEMA;
use crate::support::{changes, setup, transactions};

fn request_context() -> AuditContext {
    AuditContext::new()
        .with_actor(ActorRef::user("42").unwrap())
        .with_request_id("req-1")
        .unwrap()
        .with_correlation_id("flow-9")
        .unwrap()
        .with_tenant_id("acme")
        .unwrap()
        .with_source(Source::Request)
        .with_meta(json!({"ip": "127.0.0.1"}).as_object().unwrap().clone())
}

#[tokio::test]
async fn the_context_reaches_the_audit_transaction() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let audited = threadline::transaction(&mut conn, &request_context(), async |conn| {
        diesel::sql_query("INSERT INTO posts VALUES (1, 'a'), (2, 'b')")
            .execute(conn)
            .await?;
        diesel::sql_query("UPDATE posts SET title = 'c' WHERE id = 2")
            .execute(conn)
            .await?;
        Ok::<_, Error>("done")
    })
    .await
    .unwrap();
    assert_eq!(audited.value, "done");
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(audited.transaction_id, Some(txs[0].id));
    assert_eq!(audited.action_id, None);
    assert_eq!(txs[0].actor, Some(json!({"type": "user", "id": "42"})));
    assert_eq!(txs[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(txs[0].correlation_id.as_deref(), Some("flow-9"));
    assert_eq!(txs[0].tenant_id.as_deref(), Some("acme"));
    assert_eq!(txs[0].source.as_deref(), Some("request"));
    assert_eq!(txs[0].meta, Some(json!({"ip": "127.0.0.1"})));
    assert_eq!(changes(&mut admin).len(), 3);
}

#[tokio::test]
async fn the_context_ends_with_the_transaction() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let first = crate::audited_sql(&mut conn, &request_context(), "INSERT INTO posts VALUES (1, 'a')")
        .await
        .unwrap();
    conn.batch_execute("INSERT INTO posts VALUES (2, 'same connection, no context')")
        .await
        .unwrap();
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 2);
    assert_eq!(first.transaction_id, Some(txs[0].id));
    assert_eq!(txs[1].actor, None, "nothing lingers on a pooled connection");
    assert_eq!(txs[1].request_id, None);
}

#[tokio::test]
async fn an_error_from_the_body_rolls_everything_back() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let ctx = request_context().with_action(threadline::Action::new("post_created").unwrap());
    let result: Result<threadline::Committed<()>, Error> = threadline::transaction(&mut conn, &ctx, async |conn| {
        diesel::sql_query("INSERT INTO posts VALUES (1, 'a')")
            .execute(conn)
            .await?;
        diesel::sql_query("INSERT INTO posts VALUES (1, 'duplicate')")
            .execute(conn)
            .await?;
        Ok(())
    })
    .await;
    assert!(matches!(result, Err(Error::Database(_))), "{result:?}");
    assert!(changes(&mut admin).is_empty());
    assert!(transactions(&mut admin).is_empty());
    assert!(
        crate::support::actions(&mut admin).is_empty(),
        "the action rolls back too"
    );
    let after = crate::audited_sql(&mut conn, &request_context(), "INSERT INTO posts VALUES (1, 'after')").await;
    assert!(after.is_ok(), "the connection is usable after a rollback: {after:?}");
}

#[derive(Debug)]
enum AppError {
    NotAllowed,
    Audit(Error),
}

impl From<Error> for AppError {
    fn from(error: Error) -> Self {
        AppError::Audit(error)
    }
}

#[tokio::test]
async fn a_body_returns_its_own_error_type() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect_async().await.unwrap();
    let result = threadline::transaction(&mut conn, &request_context(), async |conn| {
        diesel::sql_query("INSERT INTO posts VALUES (1, 'a')")
            .execute(conn)
            .await
            .map_err(Error::from)?;
        Err::<(), _>(AppError::NotAllowed)
    })
    .await;
    assert!(matches!(result, Err(AppError::NotAllowed)), "{result:?}");
    assert!(changes(&mut admin).is_empty());
    let bad = threadline::transaction(
        &mut conn,
        &AuditContext::new().with_action(threadline::Action::new("needs_actor").unwrap()),
        async |_conn| Ok::<_, AppError>(()),
    )
    .await;
    assert!(matches!(bad, Err(AppError::Audit(Error::MissingActor))), "{bad:?}");
}

#[tokio::test]
async fn works_through_a_bb8_pool() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
    let pool = bb8::Pool::builder().max_size(2).build(manager).await.unwrap();
    let mut pooled = pool.get().await.unwrap();
    let audited = crate::audited_sql(
        &mut pooled,
        &request_context(),
        "INSERT INTO posts VALUES (1, 'pooled')",
    )
    .await
    .unwrap();
    assert_eq!(audited.transaction_id, Some(transactions(&mut admin)[0].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_never_mix_contexts() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let url = db.url().to_owned();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            use diesel_async::AsyncConnection;
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            for n in 0..10 {
                let id = worker * 100 + n;
                let ctx = AuditContext::new()
                    .with_actor(ActorRef::user(format!("user-{worker}")).unwrap())
                    .with_request_id(format!("req-{id}"))
                    .unwrap();
                let audited = threadline::transaction(&mut conn, &ctx, async |conn| {
                    diesel::sql_query(format!("INSERT INTO posts VALUES ({id}, 'w')"))
                        .execute(conn)
                        .await?;
                    tokio::task::yield_now().await;
                    diesel::sql_query(format!("UPDATE posts SET title = 'w2' WHERE id = {id}"))
                        .execute(conn)
                        .await?;
                    Ok::<_, Error>(())
                })
                .await
                .unwrap();
                assert!(audited.transaction_id.is_some());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 40);
    let recorded = changes(&mut admin);
    for change in &recorded {
        let tx = txs.iter().find(|t| t.id == change.transaction_id).unwrap();
        let id = change.table_pk["id"].as_str().unwrap();
        assert_eq!(tx.request_id.as_deref(), Some(format!("req-{id}").as_str()));
        let worker = id.parse::<i32>().unwrap() / 100;
        assert_eq!(tx.actor, Some(json!({"type": "user", "id": format!("user-{worker}")})));
    }
}

#[test]
fn the_blocking_twin_carries_the_same_context() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    let mut conn = db.connect().unwrap();
    let audited = threadline::transaction_blocking(&mut conn, &request_context(), |conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("INSERT INTO posts VALUES (1, 'blocking')"), conn)?;
        Ok::<_, Error>(7)
    })
    .unwrap();
    assert_eq!(audited.value, 7);
    let txs = transactions(&mut admin);
    assert_eq!(audited.transaction_id, Some(txs[0].id));
    assert_eq!(txs[0].request_id.as_deref(), Some("req-1"));
    let failed = threadline::transaction_blocking(&mut conn, &request_context(), |conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("INSERT INTO posts VALUES (2, 'rolled back')"), conn)?;
        Err::<(), _>(Error::Invalid {
            field: "test",
            reason: "refused".into(),
        })
    });
    assert!(failed.is_err());
    assert_eq!(changes(&mut admin).len(), 1);
}

#[test]
fn strict_mode_accepts_writes_through_the_write_path() {
    let (db, mut admin) = setup();
    admin.batch_execute(SCHEMA).unwrap();
    admin.batch_execute("SELECT threadline.require_actor(true)").unwrap();
    let mut conn = db.connect().unwrap();
    let refused = threadline::transaction_blocking(&mut conn, &AuditContext::new(), |conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("INSERT INTO posts VALUES (1, 'no actor')"), conn)?;
        Ok::<_, Error>(())
    });
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("requires one"), "{message}");
    let accepted = threadline::transaction_blocking(&mut conn, &request_context(), |conn| {
        diesel::RunQueryDsl::execute(diesel::sql_query("INSERT INTO posts VALUES (1, 'with actor')"), conn)?;
        Ok::<_, Error>(())
    })
    .unwrap();
    assert!(accepted.transaction_id.is_some());
    assert_eq!(changes(&mut admin).len(), 1);
}

#[test]
fn bad_context_values_are_refused_before_any_write() {
    assert!(ActorRef::user("").is_err());
    assert!(ActorRef::user("x".repeat(256)).is_err());
    assert!(ActorRef::new(threadline::ActorType::Anonymous, "1").is_err());
    assert!(AuditContext::new().with_request_id("").is_err());
    assert!(AuditContext::new().with_correlation_id("a\nb").is_err());
    assert!(AuditContext::new().with_tenant_id("t".repeat(257)).is_err());
    let actor: Result<ActorRef, _> = serde_json::from_value(json!({"type": "wizard", "id": "1"}));
    assert!(actor.is_err());
    let actor: Result<ActorRef, _> = serde_json::from_value(json!({"type": "user"}));
    assert!(actor.is_err());
    let actor: ActorRef = serde_json::from_value(json!({"type": "service_account", "id": "ci"})).unwrap();
    assert_eq!(
        serde_json::to_value(&actor).unwrap(),
        json!({"type": "service_account", "id": "ci"})
    );
    assert_eq!(
        serde_json::to_value(ActorRef::anonymous()).unwrap(),
        json!({"type": "anonymous"})
    );
}
