//! The middleware's context on real PostgreSQL: a handler under `#[audited_action]` takes it
//! as `#[audit_context] RequestAudit`, and a background job writes under the same actor and
//! correlation id from the context it was handed as JSON.

use std::sync::Mutex;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, post, test, web};
use diesel::QueryableByName;
use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use threadline::testing::TestDatabase;
use threadline::{ActorRef, AuditContext, Source, audited_action};
use threadline_actix::{AuditMiddleware, RequestAudit};

type DbPool = Pool<AsyncPgConnection>;

/// The jobs handlers enqueue: each one the JSON of its request's context.
struct Queue(Mutex<Vec<String>>);

fn user_from_header(req: &HttpRequest) -> Result<Option<ActorRef>, actix_web::Error> {
    req.headers()
        .get("x-user-id")
        .map(|user| {
            let user = user.to_str().map_err(actix_web::error::ErrorUnauthorized)?;
            ActorRef::user(user).map_err(actix_web::error::ErrorUnauthorized)
        })
        .transpose()
}

/// Inserts a post as the audited action `post_created`, and enqueues a job with the context.
#[post("/posts/{id}")]
#[audited_action("post_created", pool = pool)]
async fn create_post(
    pool: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    queue: web::Data<Queue>,
    id: web::Path<i32>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, actix_web::Error> {
    diesel::sql_query("INSERT INTO posts (id, title) VALUES ($1, 'hello')")
        .bind::<Integer, _>(*id)
        .execute(conn)
        .await
        .map_err(threadline::Error::from)?;
    let job = serde_json::to_string(&*audit).map_err(actix_web::error::ErrorInternalServerError)?;
    queue.0.lock().unwrap().push(job);
    Ok(HttpResponse::Created().finish())
}

#[derive(Debug, QueryableByName)]
struct TransactionRow {
    #[diesel(sql_type = Nullable<Jsonb>)]
    actor: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    source: Option<String>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    meta: Option<Value>,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
    #[diesel(sql_type = BigInt)]
    changes: i64,
}

/// Every audit transaction, oldest first, with its action's name and its change count.
fn transactions(conn: &mut diesel::PgConnection) -> Vec<TransactionRow> {
    let query = diesel::sql_query(
        "SELECT t.actor, t.request_id, t.correlation_id, t.tenant_id, t.source, t.meta, a.name AS action,
                (SELECT count(*) FROM threadline.audit_changes c WHERE c.transaction_id = t.id) AS changes
           FROM threadline.audit_transactions t LEFT JOIN threadline.audit_actions a ON a.id = t.action_id
          ORDER BY t.id",
    );
    diesel::RunQueryDsl::load(query, conn).expect("read audit_transactions")
}

#[actix_web::test]
async fn a_request_context_reaches_the_trail_and_a_job_writes_under_it() {
    let db = TestDatabase::new().expect("test database");
    let mut admin = db.connect().expect("connect");
    admin
        .batch_execute(
            "CREATE TABLE posts (id int PRIMARY KEY, title text NOT NULL);
             SELECT threadline.audit_table('posts');",
        )
        .unwrap();
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
    let pool = Pool::builder().max_size(1).build(manager).await.expect("pool");
    let queue = web::Data::new(Queue(Mutex::new(Vec::new())));
    let app = test::init_service(
        App::new()
            .wrap(AuditMiddleware::new(user_from_header).tenant(|_| Some("acme".to_owned())))
            .app_data(web::Data::new(pool.clone()))
            .app_data(queue.clone())
            .service(create_post),
    )
    .await;
    let req = test::TestRequest::post()
        .uri("/posts/1")
        .insert_header(("x-user-id", "42"))
        .insert_header(("x-request-id", "req-77"))
        .insert_header(("x-correlation-id", "checkout-91"))
        .peer_addr("192.0.2.4:40000".parse().unwrap())
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-77");

    // The worker: the context back from JSON, as a job, through the same audited path.
    let job = queue.0.lock().unwrap().pop().expect("a job was enqueued");
    let ctx = serde_json::from_str::<AuditContext>(&job)
        .unwrap()
        .with_source(Source::Job);
    let mut conn = pool.get().await.unwrap();
    let worked = threadline::transaction(&mut conn, &ctx, async |conn| {
        diesel::sql_query("UPDATE posts SET title = 'published' WHERE id = 1")
            .execute(conn)
            .await?;
        Ok::<_, threadline::Error>(())
    })
    .await
    .unwrap();
    assert!(worked.transaction_id.is_some());

    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 2, "{txs:?}");
    for (tx, source, action) in [(&txs[0], "request", Some("post_created")), (&txs[1], "job", None)] {
        assert_eq!(tx.actor, Some(json!({"type": "user", "id": "42"})));
        assert_eq!(tx.request_id.as_deref(), Some("req-77"));
        assert_eq!(tx.correlation_id.as_deref(), Some("checkout-91"));
        assert_eq!(tx.tenant_id.as_deref(), Some("acme"));
        assert_eq!(tx.source.as_deref(), Some(source));
        assert_eq!(tx.meta, Some(json!({"client_addr": "192.0.2.4"})));
        assert_eq!(tx.action.as_deref(), action);
        assert_eq!(tx.changes, 1);
    }
}
