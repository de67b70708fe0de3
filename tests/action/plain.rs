//! Plain async fns: the pool passed by reference, the context by reference or by value.

use std::fmt;

use diesel::sql_types::{Integer, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use threadline::{ActorRef, AuditContext, audited_action};

use crate::support::{actions, changes, transactions};
use crate::{DbPool, setup, titles};

fn ctx() -> AuditContext {
    AuditContext::new()
        .with_actor(ActorRef::user("42").unwrap())
        .with_request_id("req-1")
        .unwrap()
        .with_correlation_id("flow-1")
        .unwrap()
}

async fn insert(conn: &mut AsyncPgConnection, id: i32, title: &str) -> Result<usize, diesel::result::Error> {
    diesel::sql_query("INSERT INTO posts (id, title) VALUES ($1, $2)")
        .bind::<Integer, _>(id)
        .bind::<Text, _>(title)
        .execute(conn)
        .await
}

#[audited_action("post_created")]
async fn create_post(
    pool: &DbPool,
    ctx: &AuditContext,
    id: i32,
    title: &str,
    conn: &mut AsyncPgConnection,
) -> Result<i32, threadline::Error> {
    insert(conn, id, title).await?;
    Ok(id)
}

/// An app error that Threadline's errors convert into.
#[derive(Debug)]
enum AppError {
    Rejected(&'static str),
    Audit(threadline::Error),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Rejected(why) => write!(f, "rejected: {why}"),
            AppError::Audit(e) => write!(f, "{e}"),
        }
    }
}

impl From<threadline::Error> for AppError {
    fn from(e: threadline::Error) -> Self {
        AppError::Audit(e)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Audit(e.into())
    }
}

/// Writes, then refuses: everything it wrote must roll back.
#[audited_action("post_published")]
async fn publish_then_refuse(pool: &DbPool, ctx: AuditContext, conn: &mut AsyncPgConnection) -> Result<(), AppError> {
    insert(conn, 1, "draft").await?;
    if ctx.actor().is_some() {
        return Err(AppError::Rejected("not yet"));
    }
    Ok(())
}

/// The same, recording the failed attempt.
#[audited_action("post_published", record_failure)]
async fn publish_then_refuse_recorded(
    pool: &DbPool,
    ctx: AuditContext,
    conn: &mut AsyncPgConnection,
) -> Result<(), AppError> {
    insert(conn, 1, "draft").await?;
    Err(AppError::Rejected("not yet"))
}

/// A second pool argument type that is neither `Data` nor `Pool` by name, chosen with
/// `pool = ...`; the body fails on a duplicate key, through `?`.
type Db = DbPool;

#[audited_action("posts_imported", pool = db, record_failure)]
async fn import_posts(
    db: &Db,
    #[audit_context] audit: Box<AuditContext>,
    ids: &[i32],
    conn: &mut AsyncPgConnection,
) -> Result<usize, AppError> {
    let mut written = 0;
    for id in ids {
        written += insert(conn, *id, &format!("post {id}")).await?;
    }
    Ok(written)
}

#[tokio::test]
async fn ok_commits_with_the_action_linked_to_the_transaction() {
    let (_db, mut admin, pool) = setup().await;
    let id = create_post(&pool, &ctx(), 7, "hello").await.unwrap();
    assert_eq!(id, 7, "the fn returns the body's Ok value");
    assert_eq!(titles(&mut admin), ["hello"]);
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, "post_created");
    assert_eq!(recorded[0].status, "ok");
    assert_eq!(recorded[0].actor, json!({"type": "user", "id": "42"}));
    assert_eq!(recorded[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(recorded[0].correlation_id.as_deref(), Some("flow-1"));
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].action_id, Some(recorded[0].id));
    assert_eq!(txs[0].actor, Some(json!({"type": "user", "id": "42"})));
    let captured = changes(&mut admin);
    assert_eq!(captured.len(), 1);
    assert_eq!(captured[0].transaction_id, txs[0].id);
    assert_eq!(captured[0].op, "insert");
}

#[tokio::test]
async fn each_call_is_its_own_transaction_and_the_context_does_not_outlive_it() {
    let (_db, mut admin, pool) = setup().await;
    create_post(&pool, &ctx(), 1, "a").await.unwrap();
    create_post(&pool, &ctx(), 2, "b").await.unwrap();
    // The pool's only connection, reused without a context: nothing of the action's
    // context is left on it.
    let mut conn = pool.get().await.unwrap();
    insert(&mut conn, 3, "c").await.unwrap();
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 3);
    assert_eq!(actions(&mut admin).len(), 2);
    assert_ne!(txs[0].action_id, txs[1].action_id);
    assert_eq!(txs[2].actor, None);
    assert_eq!(txs[2].action_id, None);
}

#[tokio::test]
async fn err_rolls_back_the_writes_and_the_action() {
    let (_db, mut admin, pool) = setup().await;
    let refused = publish_then_refuse(&pool, ctx()).await;
    assert!(matches!(refused, Err(AppError::Rejected("not yet"))), "{refused:?}");
    assert!(titles(&mut admin).is_empty());
    assert!(actions(&mut admin).is_empty());
    assert!(transactions(&mut admin).is_empty());
    assert!(changes(&mut admin).is_empty());
}

#[tokio::test]
async fn record_failure_keeps_the_failed_attempt_without_changes() {
    let (_db, mut admin, pool) = setup().await;
    let refused = publish_then_refuse_recorded(&pool, ctx()).await;
    assert!(matches!(refused, Err(AppError::Rejected("not yet"))), "{refused:?}");
    assert!(titles(&mut admin).is_empty());
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, "post_published");
    assert_eq!(recorded[0].status, "error");
    assert_eq!(recorded[0].actor, json!({"type": "user", "id": "42"}));
    assert_eq!(recorded[0].request_id.as_deref(), Some("req-1"));
    assert!(transactions(&mut admin).is_empty());
    assert!(changes(&mut admin).is_empty());
}

#[tokio::test]
async fn a_database_error_from_the_body_rolls_back_and_is_recorded_on_request() {
    let (_db, mut admin, pool) = setup().await;
    let written = import_posts(&pool, Box::new(ctx()), &[1, 2]).await.unwrap();
    assert_eq!(written, 2);
    // The third insert hits the key of post 1: the two before it roll back with it.
    let failed = import_posts(&pool, Box::new(ctx()), &[3, 4, 1]).await;
    assert!(
        matches!(&failed, Err(AppError::Audit(threadline::Error::Database(_)))),
        "{failed:?}"
    );
    assert_eq!(titles(&mut admin), ["post 1", "post 2"]);
    let recorded = actions(&mut admin);
    let names: Vec<(&str, &str)> = recorded.iter().map(|a| (a.name.as_str(), a.status.as_str())).collect();
    assert_eq!(names, [("posts_imported", "ok"), ("posts_imported", "error")]);
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].action_id, Some(recorded[0].id));
    assert_eq!(changes(&mut admin).len(), 2);
}

#[tokio::test]
async fn a_context_without_an_actor_is_refused_and_nothing_is_written() {
    let (_db, mut admin, pool) = setup().await;
    let anonymous = AuditContext::new().with_request_id("req-2").unwrap();
    let refused = create_post(&pool, &anonymous, 1, "x").await;
    assert!(matches!(refused, Err(threadline::Error::MissingActor)), "{refused:?}");
    // With record_failure, the failed attempt cannot be recorded either (an action needs
    // an actor): the body's error is still the one returned.
    let refused = import_posts(&pool, Box::new(anonymous), &[1]).await;
    assert!(
        matches!(refused, Err(AppError::Audit(threadline::Error::MissingActor))),
        "{refused:?}"
    );
    assert!(titles(&mut admin).is_empty());
    assert!(actions(&mut admin).is_empty());
}
