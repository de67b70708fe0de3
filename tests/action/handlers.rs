//! Actix handlers: `#[post(...)]` over `#[audited_action(...)]`, the pool in `web::Data`, the
//! context from the request.

use std::future::{Ready, ready};
use std::ops::Deref;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::{App, FromRequest, HttpMessage, HttpRequest, HttpResponse, post, test, web};
use diesel::sql_types::{Integer, Text};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use threadline::{ActorRef, AuditContext, audited_action};

use crate::support::{actions, changes, transactions};
use crate::{DbPool, setup, titles};

/// The request's audit context, from the `x-user-id` and `x-request-id` headers: what the
/// audit middleware will do, reduced to a test.
fn context_of(req: &HttpRequest) -> Option<AuditContext> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let mut ctx = AuditContext::new().with_actor(ActorRef::user(header("x-user-id")?).ok()?);
    if let Some(id) = header("x-request-id") {
        ctx = ctx.with_request_id(id).ok()?;
    }
    Some(ctx)
}

/// An app's own context extractor: 401 without a user.
struct RequestAudit(AuditContext);

impl Deref for RequestAudit {
    type Target = AuditContext;

    fn deref(&self) -> &AuditContext {
        &self.0
    }
}

impl FromRequest for RequestAudit {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            context_of(req)
                .map(RequestAudit)
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("who are you?")),
        )
    }
}

async fn insert(conn: &mut AsyncPgConnection, post: &Value) -> Result<usize, diesel::result::Error> {
    diesel::sql_query("INSERT INTO posts (id, title) VALUES ($1, $2)")
        .bind::<Integer, _>(post["id"].as_i64().unwrap_or_default() as i32)
        .bind::<Text, _>(post["title"].as_str().unwrap_or_default())
        .execute(conn)
        .await
}

/// The context from the request's extensions, set by a middleware; errors are
/// `threadline::Error`, turned into responses by its `ResponseError`.
#[post("/posts")]
#[audited_action("post_created")]
async fn create_post(
    pool: web::Data<DbPool>,
    ctx: web::ReqData<AuditContext>,
    post: web::Json<Value>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, threadline::Error> {
    insert(conn, &post).await?;
    Ok(HttpResponse::Created().json(json!({"id": post["id"]})))
}

/// The app's own extractor, marked; `actix_web::Error`; a refusal after the write, with the
/// failed attempt recorded. `impl Responder` works too.
#[post("/posts/guarded")]
#[audited_action("post_created", record_failure)]
async fn create_guarded_post(
    data: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    post: web::Json<Value>,
    conn: &mut AsyncPgConnection,
) -> Result<impl actix_web::Responder, actix_web::Error> {
    insert(conn, &post).await.map_err(threadline::Error::from)?;
    if post["title"] == "taken" {
        return Err(actix_web::error::ErrorConflict("that title is taken"));
    }
    Ok(HttpResponse::Created().finish())
}

/// The test app: the audit middleware, reduced to a test (the context into the
/// request's extensions), the pool in `web::Data`, both handlers.
macro_rules! app {
    ($pool:expr) => {
        test::init_service(
            App::new()
                .wrap_fn(|req, srv| {
                    if let Some(ctx) = context_of(req.request()) {
                        req.extensions_mut().insert(ctx);
                    }
                    srv.call(req)
                })
                .app_data(web::Data::new($pool))
                .service(create_post)
                .service(create_guarded_post),
        )
        .await
    };
}

fn post_request(uri: &str, user: Option<&str>, body: Value) -> test::TestRequest {
    let mut req = test::TestRequest::post()
        .uri(uri)
        .insert_header(("x-request-id", "req-77"));
    if let Some(user) = user {
        req = req.insert_header(("x-user-id", user));
    }
    req.set_json(body)
}

#[actix_web::test]
async fn a_handler_commits_with_the_request_context_and_action() {
    let (_db, mut admin, pool) = setup().await;
    let app = app!(pool);
    let resp = test::call_service(
        &app,
        post_request("/posts", Some("42"), json!({"id": 1, "title": "hi"})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body, json!({"id": 1}));
    assert_eq!(titles(&mut admin), ["hi"]);
    let recorded = actions(&mut admin);
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, "post_created");
    assert_eq!(recorded[0].actor, json!({"type": "user", "id": "42"}));
    assert_eq!(recorded[0].request_id.as_deref(), Some("req-77"));
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].action_id, Some(recorded[0].id));
    assert_eq!(txs[0].actor, Some(json!({"type": "user", "id": "42"})));
    assert_eq!(txs[0].request_id.as_deref(), Some("req-77"));
    assert_eq!(changes(&mut admin).len(), 1);
}

#[actix_web::test]
async fn a_database_error_rolls_back_and_answers_500_without_details() {
    let (_db, mut admin, pool) = setup().await;
    let app = app!(pool);
    let first = test::call_service(
        &app,
        post_request("/posts", Some("42"), json!({"id": 1, "title": "hi"})).to_request(),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = test::call_service(
        &app,
        post_request("/posts", Some("42"), json!({"id": 1, "title": "secret"})).to_request(),
    )
    .await;
    assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = test::read_body_json(again).await;
    assert_eq!(body, json!({"error": "internal error"}));
    assert_eq!(titles(&mut admin), ["hi"]);
    assert_eq!(actions(&mut admin).len(), 1);
    assert_eq!(transactions(&mut admin).len(), 1);
}

#[actix_web::test]
async fn a_refusing_handler_rolls_back_and_records_the_failed_attempt() {
    let (_db, mut admin, pool) = setup().await;
    let app = app!(pool);
    let created = test::call_service(
        &app,
        post_request("/posts/guarded", Some("7"), json!({"id": 1, "title": "fine"})).to_request(),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let refused = test::call_service(
        &app,
        post_request("/posts/guarded", Some("7"), json!({"id": 2, "title": "taken"})).to_request(),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(titles(&mut admin), ["fine"]);
    let recorded = actions(&mut admin);
    let rows: Vec<(&str, &str, Option<&str>)> = recorded
        .iter()
        .map(|a| (a.name.as_str(), a.status.as_str(), a.request_id.as_deref()))
        .collect();
    assert_eq!(
        rows,
        [
            ("post_created", "ok", Some("req-77")),
            ("post_created", "error", Some("req-77"))
        ]
    );
    assert_eq!(recorded[1].actor, json!({"type": "user", "id": "7"}));
    let txs = transactions(&mut admin);
    assert_eq!(txs.len(), 1, "the refused attempt wrote nothing");
    assert_eq!(txs[0].action_id, Some(recorded[0].id));
}

#[actix_web::test]
async fn the_context_extractor_refuses_before_any_transaction() {
    let (_db, mut admin, pool) = setup().await;
    let app = app!(pool);
    let resp = test::call_service(
        &app,
        post_request("/posts/guarded", None, json!({"id": 1, "title": "x"})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(titles(&mut admin).is_empty());
    assert!(actions(&mut admin).is_empty());
}

#[actix_web::test]
async fn a_pool_that_cannot_connect_answers_503() {
    let (db, mut admin, _) = setup().await;
    let nowhere = format!("{}_missing", db.url());
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(nowhere);
    let pool = DbPool::builder()
        .connection_timeout(Duration::from_millis(300))
        .build_unchecked(manager);
    let app = app!(pool);
    let resp = test::call_service(
        &app,
        post_request("/posts", Some("42"), json!({"id": 1, "title": "hi"})).to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = test::read_body_json(resp).await;
    assert_eq!(body, json!({"error": "database unavailable"}));
    assert!(titles(&mut admin).is_empty());
}

/// `threadline::Error` as an Actix response: the status its kind calls for, and a body that
/// names no stored value.
#[actix_web::test]
async fn threadline_errors_answer_with_their_status_and_no_values() {
    use actix_web::ResponseError;
    use actix_web::body::MessageBody;

    let not_found = threadline::Error::NotFound { what: "row" };
    let refused = threadline::Error::ScopeRefused("tenant acme only".into());
    let invalid = threadline::Action::new("Bad Name").unwrap_err();
    let cursor = threadline::Error::InvalidCursor("made for another read".into());
    let pool = threadline::Error::Pool("timed out".into());
    let database = threadline::Error::Database(diesel::result::Error::NotFound);
    let decode = threadline::Error::Decode {
        column: "email".into(),
        reason: "\"alice@example.com\" is not a number".into(),
    };
    for (error, status, message) in [
        (not_found, StatusCode::NOT_FOUND, "row not found"),
        (refused, StatusCode::NOT_FOUND, "not found"),
        (cursor, StatusCode::BAD_REQUEST, "invalid cursor: made for another read"),
        (pool, StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
        (database, StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        (decode, StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    ] {
        let response = error.error_response();
        assert_eq!(response.status(), status, "{error}");
        assert_eq!(response.headers().get("content-type").unwrap(), "application/json");
        let body = response.into_body().try_into_bytes().unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({ "error": message }));
    }
    assert_eq!(invalid.status_code(), StatusCode::BAD_REQUEST);
}
