//! End to end: the blog example's app (`examples/blog/app.rs`, included as it is) over HTTP
//! against a database set up by the repository's migrations, checked both by its answers
//! and by the audit tables; and (`socket`) the example's binary itself, run as a process and
//! spoken to over TCP.

#[path = "../support/mod.rs"]
mod support;

#[path = "../../examples/blog/app.rs"]
mod app;

mod pooler;
mod socket;
mod telemetry;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use futures_util::future::join_all;
use serde_json::{Value, json};
use threadline::Audited;
use threadline::testing::TestDatabase;

use support::{ActionRow, Change, Transaction, actions, changes, changes_of, transactions};

/// A database with every migration of `migrations/` applied (as the example applies them),
/// a blocking connection to read it, and the app's pool. Bind `db` (`db: _db`, not `..`):
/// the database is dropped with it.
struct Blog {
    admin: PgConnection,
    pool: app::DbPool,
    db: TestDatabase,
}

async fn blog() -> Blog {
    let db = TestDatabase::empty().expect("test database");
    let applied = app::run_migrations(db.url()).expect("migrations");
    assert!(
        applied.len() >= 6,
        "the install, the tables, three audits and the seed: {applied:?}"
    );
    let admin = db.connect().expect("connect");
    let pool = app::pool(db.url()).await.expect("pool");
    Blog { admin, pool, db }
}

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    /// The JSON body; `Null` when the body is empty.
    body: Value,
}

impl Answer {
    fn request_id(&self) -> Option<&str> {
        self.headers.get("x-request-id").and_then(|v| v.to_str().ok())
    }

    /// Asserts a JSON error answer with `status`, and returns its message.
    fn error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{self:?}"
        );
        assert_eq!(self.body.as_object().map(|o| o.len()), Some(1), "{self:?}");
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {self:?}"))
    }
}

async fn answer<B: MessageBody>(result: Result<ServiceResponse<B>, actix_web::Error>) -> Answer {
    let (status, headers, bytes) = match result {
        Ok(resp) => {
            let (status, headers) = (resp.status(), resp.headers().clone());
            (status, headers, test::read_body(resp).await)
        }
        // What the server would answer for an error the service returned.
        Err(error) => {
            let resp = error.error_response();
            let (status, headers) = (resp.status(), resp.headers().clone());
            let bytes = actix_web::body::to_bytes(resp.into_body()).await.expect("body");
            (status, headers, bytes)
        }
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{status}: not JSON: {bytes:?}"))
    };
    Answer { status, headers, body }
}

/// Sends a request to the app and reads the answer.
macro_rules! send {
    ($app:expr, $req:expr) => {
        answer($app.call($req.to_request()).await).await
    };
}

/// A request as user `user` (the demo `x-user-id`).
fn as_user(req: TestRequest, user: u32) -> TestRequest {
    req.insert_header(("x-user-id", user.to_string()))
}

fn create(user: u32, title: &str, body: &str) -> TestRequest {
    as_user(TestRequest::post().uri("/posts"), user).set_json(json!({"title": title, "body": body}))
}

/// What the trail holds: audit transactions, actions, changes.
fn written(admin: &mut PgConnection) -> (usize, usize, usize) {
    (transactions(admin).len(), actions(admin).len(), changes(admin).len())
}

fn count(admin: &mut PgConnection, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let row: Count =
        diesel::RunQueryDsl::get_result(diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")), admin)
            .expect("count");
    row.n
}

/// The transaction of a change.
fn transaction_of(admin: &mut PgConnection, change: &Change) -> Transaction {
    transactions(admin)
        .into_iter()
        .find(|t| t.id == change.transaction_id)
        .expect("the change's transaction")
}

/// The action a transaction names.
fn action_of(admin: &mut PgConnection, tx: &Transaction) -> Option<ActionRow> {
    let id = tx.action_id?;
    actions(admin).into_iter().find(|a| a.id == id)
}

fn user(id: u32) -> Value {
    json!({"type": "user", "id": id.to_string()})
}

#[actix_web::test]
async fn a_created_post_carries_actor_request_correlation_and_action() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(
        app,
        create(2, "Hello", "First")
            .insert_header(("x-request-id", "req-e2e-1"))
            .insert_header(("x-correlation-id", "launch-1"))
            .peer_addr("203.0.113.9:5000".parse().unwrap())
    );
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.request_id(), Some("req-e2e-1"), "the request id is echoed");
    let id = created.body["id"].as_i64().expect("the post's id");
    assert_eq!(created.body["author_id"], 2);
    assert_eq!(created.body["title"], "Hello");
    assert_eq!(created.body["body"], "First");
    assert!(
        created.body.get("author_ip").is_none(),
        "the API never serves the address"
    );

    let posts = changes_of(&mut admin, "posts");
    assert_eq!(posts.len(), 1);
    let change = &posts[0];
    assert_eq!(change.op, "insert");
    assert_eq!(change.table_pk, json!({"id": id.to_string()}));
    let data = change.data.as_ref().unwrap();
    assert_eq!(data["title"], "Hello");
    assert_eq!(data["author_ip"], "[REDACTED]", "the address is masked in the trail");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN IF (SELECT author_ip FROM posts WHERE id = {id}) IS DISTINCT FROM '203.0.113.9' \
             THEN RAISE 'the app keeps the address'; END IF; END $$"
        ))
        .unwrap();

    let tx = transaction_of(&mut admin, change);
    assert_eq!(tx.actor, Some(user(2)));
    assert_eq!(tx.request_id.as_deref(), Some("req-e2e-1"));
    assert_eq!(tx.correlation_id.as_deref(), Some("launch-1"));
    let action = action_of(&mut admin, &tx).expect("the transaction names its action");
    assert_eq!(action.name, "post_created");
    assert_eq!(action.status, "ok");
    assert_eq!(action.actor, user(2));
    assert_eq!(action.request_id.as_deref(), Some("req-e2e-1"));
    assert_eq!(action.correlation_id.as_deref(), Some("launch-1"));
    assert_eq!(actions(&mut admin).len(), 1);
}

#[actix_web::test]
async fn a_request_without_an_id_gets_one_echoed_and_recorded() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "No id", "given"));
    assert_eq!(created.status, StatusCode::CREATED);
    let generated = created.request_id().expect("a generated request id").to_owned();
    assert!(!generated.is_empty());
    let first = changes_of(&mut admin, "posts").remove(0);
    let tx = transaction_of(&mut admin, &first);
    assert_eq!(tx.request_id.as_deref(), Some(generated.as_str()));
    assert_eq!(tx.correlation_id, None);

    let again = send!(app, create(1, "Another", "one"));
    assert_ne!(again.request_id(), Some(generated.as_str()), "one id per request");
}

#[actix_web::test]
async fn update_comment_and_delete_are_one_audited_action_each() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "Hello", "First"));
    let id = created.body["id"].as_i64().unwrap();

    let updated = send!(
        app,
        as_user(TestRequest::patch().uri(&format!("/posts/{id}")), 2)
            .insert_header(("x-correlation-id", "edit-1"))
            .set_json(json!({"title": "Hello, world"}))
    );
    assert_eq!(updated.status, StatusCode::OK, "{updated:?}");
    assert_eq!(updated.body["title"], "Hello, world");
    assert_eq!(updated.body["body"], "First", "what the PATCH did not name is kept");
    assert_eq!(updated.body["author_id"], 1);

    let commented = send!(
        app,
        as_user(TestRequest::post().uri(&format!("/posts/{id}/comments")), 3).set_json(json!({"body": "Nice"}))
    );
    assert_eq!(commented.status, StatusCode::CREATED, "{commented:?}");
    assert_eq!(commented.body["post_id"], id);
    assert_eq!(commented.body["author_id"], 3);
    assert_eq!(commented.body["body"], "Nice");

    let deleted = send!(app, as_user(TestRequest::delete().uri(&format!("/posts/{id}")), 1));
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(count(&mut admin, "posts"), 0);
    assert_eq!(count(&mut admin, "comments"), 0);

    let recorded: Vec<(String, Value)> = actions(&mut admin).into_iter().map(|a| (a.name, a.actor)).collect();
    assert_eq!(
        recorded,
        [
            ("post_created".to_owned(), user(1)),
            ("post_updated".to_owned(), user(2)),
            ("comment_created".to_owned(), user(3)),
            ("post_deleted".to_owned(), user(1)),
        ]
    );

    let posts = changes_of(&mut admin, "posts");
    let ops: Vec<&str> = posts.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["insert", "update", "delete"]);
    assert_eq!(
        posts[1].changed_fields.as_deref(),
        Some(&["title".to_owned()][..]),
        "updated_at is ignored"
    );
    assert_eq!(posts[1].changed_from, Some(json!({"title": "Hello"})));
    let edit = transaction_of(&mut admin, &posts[1]);
    assert_eq!(edit.correlation_id.as_deref(), Some("edit-1"));

    // The delete cascaded to the comment: both in the post_deleted transaction.
    let comments = changes_of(&mut admin, "comments");
    let ops: Vec<&str> = comments.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["insert", "delete"]);
    assert_eq!(comments[1].transaction_id, posts[2].transaction_id);
    let removal = transaction_of(&mut admin, &posts[2]);
    assert_eq!(action_of(&mut admin, &removal).unwrap().name, "post_deleted");
    assert_eq!(removal.actor, Some(user(1)));
}

#[actix_web::test]
async fn writes_without_a_known_user_answer_401_and_write_nothing() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "Mine", "post"));
    let id = created.body["id"].as_i64().unwrap();
    let before = written(&mut admin);

    let anonymous = [
        TestRequest::post()
            .uri("/posts")
            .set_json(json!({"title": "t", "body": "b"})),
        TestRequest::patch()
            .uri(&format!("/posts/{id}"))
            .set_json(json!({"title": "t"})),
        TestRequest::delete().uri(&format!("/posts/{id}")),
        TestRequest::post()
            .uri(&format!("/posts/{id}/comments"))
            .set_json(json!({"body": "b"})),
    ];
    for req in anonymous {
        let refused = send!(app, req);
        assert!(refused.error(StatusCode::UNAUTHORIZED).contains("x-user-id"));
    }
    let stranger = send!(app, create(99, "Who", "am I"));
    assert_eq!(stranger.error(StatusCode::UNAUTHORIZED), "x-user-id names no user");
    let stranger = send!(
        app,
        as_user(TestRequest::post().uri(&format!("/posts/{id}/comments")), 99).set_json(json!({"body": "b"}))
    );
    assert_eq!(stranger.error(StatusCode::UNAUTHORIZED), "x-user-id names no user");

    assert_eq!(written(&mut admin), before);
    assert_eq!(count(&mut admin, "posts"), 1);
    assert_eq!(count(&mut admin, "comments"), 0);
}

#[actix_web::test]
async fn unknown_ids_answer_404_and_record_nothing() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let before = written(&mut admin);
    let patch = send!(
        app,
        as_user(TestRequest::patch().uri("/posts/999"), 1).set_json(json!({"title": "x"}))
    );
    assert_eq!(patch.error(StatusCode::NOT_FOUND), "post 999 not found");
    let delete = send!(app, as_user(TestRequest::delete().uri("/posts/999"), 1));
    assert_eq!(delete.error(StatusCode::NOT_FOUND), "post 999 not found");
    let comment = send!(
        app,
        as_user(TestRequest::post().uri("/posts/999/comments"), 1).set_json(json!({"body": "x"}))
    );
    assert_eq!(comment.error(StatusCode::NOT_FOUND), "post 999 not found");
    let history = send!(app, TestRequest::get().uri("/posts/999/history"));
    assert_eq!(history.error(StatusCode::NOT_FOUND), "post 999 not found");
    let bad_id = send!(app, TestRequest::get().uri("/posts/abc/history"));
    bad_id.error(StatusCode::NOT_FOUND);
    let no_route = send!(app, TestRequest::get().uri("/nowhere"));
    assert_eq!(no_route.error(StatusCode::NOT_FOUND), "no route for GET /nowhere");
    assert_eq!(written(&mut admin), before);
    assert_eq!(count(&mut admin, "posts"), 0);
}

#[actix_web::test]
async fn a_constraint_violation_rolls_back_the_write_and_its_action() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "Kept", "as it is"));
    let id = created.body["id"].as_i64().unwrap();
    let before = written(&mut admin);

    let emptied = send!(
        app,
        as_user(TestRequest::patch().uri(&format!("/posts/{id}")), 1).set_json(json!({"title": "", "body": "new"}))
    );
    assert_eq!(
        emptied.error(StatusCode::UNPROCESSABLE_ENTITY),
        "title must be 1 to 200 characters"
    );
    let long = send!(app, create(1, &"x".repeat(201), "b"));
    long.error(StatusCode::UNPROCESSABLE_ENTITY);
    let silent = send!(
        app,
        as_user(TestRequest::post().uri(&format!("/posts/{id}/comments")), 2).set_json(json!({"body": ""}))
    );
    assert_eq!(
        silent.error(StatusCode::UNPROCESSABLE_ENTITY),
        "body must be 1 to 2000 characters"
    );

    assert_eq!(written(&mut admin), before, "no action, no change, no transaction");
    let history = send!(app, TestRequest::get().uri(&format!("/posts/{id}/history")));
    assert_eq!(history.body.as_array().unwrap().len(), 1);
    assert_eq!(history.body[0]["post"]["body"], "as it is");
}

#[actix_web::test]
async fn bad_json_answers_400_with_a_json_error_and_writes_nothing() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "Hello", "First"));
    let id = created.body["id"].as_i64().unwrap();
    let before = written(&mut admin);

    let posts = || as_user(TestRequest::post().uri("/posts"), 1);
    let json_type = ("content-type", "application/json");
    let bad = [
        posts().insert_header(json_type).set_payload(r#"{"title": "#),
        posts().set_json(json!({"titel": "typo", "body": "b"})),
        posts().set_json(json!({"title": "no body"})),
        posts().set_json(json!({"title": 7, "body": "b"})),
        posts()
            .insert_header(("content-type", "text/plain"))
            .set_payload(r#"{"title": "t", "body": "b"}"#),
        as_user(TestRequest::patch().uri(&format!("/posts/{id}")), 1).set_json(json!({"author_id": 2})),
    ];
    for req in bad {
        let refused = send!(app, req);
        assert!(
            refused
                .error(StatusCode::BAD_REQUEST)
                .starts_with("invalid JSON body: "),
            "{refused:?}"
        );
    }
    let nothing = send!(
        app,
        as_user(TestRequest::patch().uri(&format!("/posts/{id}")), 1).set_json(json!({}))
    );
    assert_eq!(
        nothing.error(StatusCode::BAD_REQUEST),
        "nothing to change: give title, body or both"
    );
    assert_eq!(written(&mut admin), before);
    assert_eq!(count(&mut admin, "posts"), 1);
}

#[actix_web::test]
async fn bad_audit_headers_answer_400_and_write_nothing() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let before = written(&mut admin);
    let long = "c".repeat(300);
    let refused = send!(
        app,
        create(1, "t", "b").insert_header(("x-correlation-id", long.as_str()))
    );
    assert!(refused.error(StatusCode::BAD_REQUEST).contains("x-correlation-id"));
    let refused = send!(app, create(1, "t", "b").insert_header(("x-request-id", long.as_str())));
    assert!(refused.error(StatusCode::BAD_REQUEST).contains("x-request-id"));
    let refused = send!(
        app,
        TestRequest::post()
            .uri("/posts")
            .insert_header(("x-user-id", "ada"))
            .set_json(json!({"title": "t", "body": "b"}))
    );
    assert_eq!(
        refused.error(StatusCode::BAD_REQUEST),
        "x-user-id must be a user id, a positive integer"
    );
    assert_eq!(written(&mut admin), before);
    assert_eq!(count(&mut admin, "posts"), 0);
}

#[actix_web::test]
async fn a_console_write_on_another_connection_is_captured_with_no_actor() {
    let Blog { mut admin, pool, db } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(app, create(1, "Tpyo", "First"));
    let id = created.body["id"].as_i64().unwrap();

    // As psql would: its own connection, no context.
    let mut console = PgConnection::establish(db.url()).unwrap();
    console
        .batch_execute(&format!("UPDATE posts SET title = 'Typo' WHERE id = {id}"))
        .unwrap();

    let posts = changes_of(&mut admin, "posts");
    assert_eq!(posts.len(), 2);
    let fix = transaction_of(&mut admin, &posts[1]);
    assert_eq!(fix.actor, None);
    assert_eq!(fix.request_id, None);
    assert_eq!(fix.action_id, None);

    let history = send!(app, TestRequest::get().uri(&format!("/posts/{id}/history")));
    assert_eq!(history.status, StatusCode::OK);
    let newest = &history.body[0];
    assert_eq!(newest["op"], "update");
    assert_eq!(newest["actor"], Value::Null);
    assert_eq!(newest["action"], Value::Null);
    assert_eq!(newest["changed_fields"], json!(["title"]));
    assert_eq!(newest["post"]["title"], "Typo");
    assert_eq!(history.body[1]["action"], "post_created");
}

#[actix_web::test]
async fn concurrent_requests_never_mix_their_contexts() {
    const N: u32 = 20;
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let author = |i: u32| i % 3 + 1;
    let editor = |i: u32| (i + 1) % 3 + 1;

    let created = join_all((0..N).map(|i| {
        let req = create(author(i), &format!("post {i}"), "b")
            .insert_header(("x-request-id", format!("req-c-{i}")))
            .insert_header(("x-correlation-id", format!("corr-{i}")));
        let app = &app;
        async move { send!(app, req) }
    }))
    .await;
    for (i, answer) in created.iter().enumerate() {
        assert_eq!(answer.status, StatusCode::CREATED, "{answer:?}");
        assert_eq!(answer.request_id(), Some(format!("req-c-{i}").as_str()));
        assert_eq!(answer.body["title"], format!("post {i}"));
    }
    let ids: Vec<i64> = created.iter().map(|a| a.body["id"].as_i64().unwrap()).collect();

    let updated = join_all(ids.iter().enumerate().map(|(i, id)| {
        let i = i as u32;
        let req = as_user(TestRequest::patch().uri(&format!("/posts/{id}")), editor(i))
            .insert_header(("x-request-id", format!("req-u-{i}")))
            .insert_header(("x-correlation-id", format!("corr-{i}")))
            .set_json(json!({"body": format!("edited {i}")}));
        let app = &app;
        async move { send!(app, req) }
    }))
    .await;
    assert!(updated.iter().all(|a| a.status == StatusCode::OK), "{updated:?}");

    let posts = changes_of(&mut admin, "posts");
    assert_eq!(posts.len(), 2 * N as usize);
    let txs = transactions(&mut admin);
    let recorded = actions(&mut admin);
    let mut seen = std::collections::HashSet::new();
    for change in &posts {
        assert!(seen.insert(change.transaction_id), "one transaction per request");
        let data = change.data.as_ref().unwrap();
        let i: u32 = data["title"].as_str().unwrap()["post ".len()..].parse().unwrap();
        let tx = txs.iter().find(|t| t.id == change.transaction_id).unwrap();
        let action = recorded.iter().find(|a| Some(a.id) == tx.action_id).unwrap();
        let (who, request, name) = match change.op.as_str() {
            "insert" => (author(i), format!("req-c-{i}"), "post_created"),
            _ => {
                assert_eq!(data["body"], format!("edited {i}"));
                (editor(i), format!("req-u-{i}"), "post_updated")
            }
        };
        assert_eq!(tx.actor, Some(user(who)), "post {i} {}", change.op);
        assert_eq!(tx.request_id.as_deref(), Some(request.as_str()));
        assert_eq!(tx.correlation_id, Some(format!("corr-{i}")));
        assert_eq!(action.name, name);
        assert_eq!(action.actor, user(who));
        assert_eq!(action.request_id.as_deref(), Some(request.as_str()));
    }
}

#[actix_web::test]
async fn history_lists_versions_newest_first_with_redaction_even_after_a_delete() {
    let Blog { pool, db: _db, .. } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let created = send!(
        app,
        create(1, "Hello", "First")
            .insert_header(("x-request-id", "req-h-1"))
            .insert_header(("x-correlation-id", "story-1"))
    );
    let id = created.body["id"].as_i64().unwrap();
    send!(
        app,
        as_user(TestRequest::patch().uri(&format!("/posts/{id}")), 2)
            .insert_header(("x-request-id", "req-h-2"))
            .insert_header(("x-correlation-id", "story-1"))
            .set_json(json!({"body": "Second"}))
    );
    let history = send!(app, TestRequest::get().uri(&format!("/posts/{id}/history")));
    assert_eq!(history.status, StatusCode::OK);
    let versions = history.body.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let newest = &versions[0];
    assert_eq!(newest["op"], "update");
    assert_eq!(newest["actor"], user(2));
    assert_eq!(newest["action"], "post_updated");
    assert_eq!(newest["request_id"], "req-h-2");
    assert_eq!(newest["correlation_id"], "story-1");
    assert_eq!(newest["changed_fields"], json!(["body"]));
    assert_eq!(newest["post"]["id"], id);
    assert_eq!(newest["post"]["title"], "Hello");
    assert_eq!(newest["post"]["body"], "Second");
    assert_eq!(newest["post"]["author_id"], 1);
    assert_eq!(newest["post"]["author_ip"], json!({"masked": true}));
    let oldest = &versions[1];
    assert_eq!(oldest["op"], "insert");
    assert_eq!(oldest["actor"], user(1));
    assert_eq!(oldest["action"], "post_created");
    assert_eq!(oldest["request_id"], "req-h-1");
    assert_eq!(oldest["changed_fields"], json!([]));
    assert_eq!(oldest["post"]["body"], "First");
    assert!(newest["captured_at"].as_str().unwrap() > oldest["captured_at"].as_str().unwrap());
    assert!(newest["transaction_id"].as_i64().unwrap() > oldest["transaction_id"].as_i64().unwrap());

    let deleted = send!(app, as_user(TestRequest::delete().uri(&format!("/posts/{id}")), 3));
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let history = send!(app, TestRequest::get().uri(&format!("/posts/{id}/history")));
    assert_eq!(history.status, StatusCode::OK, "a deleted post keeps its history");
    let versions = history.body.as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["op"], "delete");
    assert_eq!(versions[0]["action"], "post_deleted");
    assert_eq!(versions[0]["actor"], user(3));
    assert_eq!(
        versions[0]["post"]["body"], "Second",
        "a delete keeps the row it removed"
    );
    assert_eq!(versions[1], newest.clone());
}

#[actix_web::test]
async fn user_history_shows_the_seed_with_email_masked_and_password_excluded() {
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    let app = test::init_service(app::app(pool)).await;
    let history = send!(app, TestRequest::get().uri("/users/1/history"));
    assert_eq!(history.status, StatusCode::OK, "{history:?}");
    let versions = history.body.as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["op"], "insert");
    assert_eq!(versions[0]["actor"], Value::Null, "a migration names no actor");
    assert_eq!(versions[0]["user"]["name"], "Ada");
    assert_eq!(versions[0]["user"]["email"], json!({"masked": true}));
    assert_eq!(versions[0]["user"]["password_hash"], json!({"excluded": true}));
    let stored = support::all_stored_text(&mut admin);
    assert!(!stored.contains("ada@example.com"));
    assert!(!stored.contains("demo-not-a-real-hash"));
    let unknown = send!(app, TestRequest::get().uri("/users/4/history"));
    assert_eq!(unknown.error(StatusCode::NOT_FOUND), "user 4 not found");
}

/// `diesel migration run` first (the README's DATABASE_URL path), then the example's own
/// start-up: nothing left to apply, and the app works on that database.
#[actix_web::test]
async fn the_app_runs_on_a_database_the_diesel_cli_migrated() {
    let db = TestDatabase::empty().unwrap();
    let diesel = std::process::Command::new("diesel")
        .args(["migration", "run", "--migration-dir"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .args(["--database-url", db.url()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the Diesel CLI on PATH: cargo install diesel_cli --no-default-features --features postgres");
    assert!(
        diesel.status.success(),
        "diesel migration run: {}",
        String::from_utf8_lossy(&diesel.stderr)
    );
    assert_eq!(app::run_migrations(db.url()).unwrap(), Vec::<String>::new());
    let app = test::init_service(app::app(app::pool(db.url()).await.unwrap())).await;
    let created = send!(app, create(3, "Migrated", "by the CLI"));
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let mut admin = db.connect().unwrap();
    let first = changes_of(&mut admin, "posts").remove(0);
    let tx = transaction_of(&mut admin, &first);
    assert_eq!(tx.actor, Some(user(3)));
}

/// The policy a model's annotations give, next to the one the committed migrations deploy
/// for its table (`threadline.table_policy`).
fn policies<T: Audited>(admin: &mut PgConnection) -> (String, Value, Value) {
    #[derive(diesel::QueryableByName)]
    struct Deployed {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
        policy: Option<Value>,
    }
    let table = format!("{}.{}", T::SCHEMA, T::TABLE);
    let annotated: Value = serde_json::from_str(T::POLICY_JSON).expect("POLICY_JSON is JSON");
    let deployed: Deployed = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT threadline.table_policy($1::text::regclass) AS policy")
            .bind::<diesel::sql_types::Text, _>(&table),
        admin,
    )
    .expect("table_policy");
    (table, annotated, deployed.policy.unwrap_or(Value::Null))
}

/// The example's models and its committed `threadline_audit_*` migrations agree: what the
/// annotations say is what the migrations deploy, for every audited table and no other.
#[test]
fn the_models_annotations_are_what_the_committed_migrations_deploy() {
    let db = TestDatabase::empty().expect("test database");
    app::run_migrations(db.url()).expect("migrations");
    let mut admin = db.connect().expect("connect");
    let models = [
        policies::<app::User>(&mut admin),
        policies::<app::Post>(&mut admin),
        policies::<app::Comment>(&mut admin),
    ];
    for (table, annotated, deployed) in &models {
        assert_eq!(
            deployed, annotated,
            "{table}: the deployed policy (left) is not the annotations' (right); \
             regenerate with `threadline gen-triggers --src examples --migrations migrations`"
        );
    }
    #[derive(diesel::QueryableByName)]
    struct AuditedTable {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut audited: Vec<String> = diesel::RunQueryDsl::load::<AuditedTable>(
        diesel::sql_query("SELECT table_schema || '.' || table_name AS name FROM threadline.audited_tables"),
        &mut admin,
    )
    .expect("audited tables")
    .into_iter()
    .map(|row| row.name)
    .collect();
    audited.sort();
    let mut modelled: Vec<String> = models.into_iter().map(|(table, ..)| table).collect();
    modelled.sort();
    assert_eq!(audited, modelled, "every audited table has a model, and no other");
}
