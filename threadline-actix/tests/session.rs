//! Feature `session`: the actor from a key of the actix-session session.
#![cfg(feature = "session")]

use actix_session::SessionExt;
use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, test, web};
use serde_json::{Value, json};
use threadline::ActorType;
use threadline_actix::{AuditMiddleware, RequestAudit, session};

async fn actor(audit: RequestAudit) -> HttpResponse {
    HttpResponse::Ok().json(audit.actor())
}

/// The answer of an app whose session holds `user_id` (as JSON), if given.
async fn answer(user_id: Option<Value>) -> (StatusCode, Value) {
    let app = test::init_service(
        App::new()
            .wrap(AuditMiddleware::with_extractor(session::actor_from_key(
                "user_id",
                ActorType::User,
            )))
            // What SessionMiddleware does for a signed-in user: the session's state in place.
            .wrap_fn(move |req, srv| {
                if let Some(user_id) = &user_id {
                    req.get_session().insert("user_id", user_id).unwrap();
                }
                srv.call(req)
            })
            .route("/", web::get().to(actor)),
    )
    .await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    (resp.status(), test::read_body_json(resp).await)
}

#[actix_web::test]
async fn the_actor_is_the_session_key_as_a_string_or_a_number() {
    assert_eq!(
        answer(Some(json!("42"))).await,
        (StatusCode::OK, json!({"type": "user", "id": "42"}))
    );
    assert_eq!(
        answer(Some(json!(7))).await,
        (StatusCode::OK, json!({"type": "user", "id": "7"}))
    );
    assert_eq!(answer(None).await, (StatusCode::OK, Value::Null), "no key, no actor");
}

#[actix_web::test]
async fn a_session_value_that_is_no_actor_is_a_500() {
    assert_eq!(
        answer(Some(json!(true))).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "invalid session key user_id: neither a string nor a number"})
        )
    );
    assert_eq!(
        answer(Some(json!(""))).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "invalid session key user_id: invalid actor id: must be 1 to 255 bytes without control characters"})
        )
    );
}
