//! Feature `identity`: the actix-identity identity as a user actor.
#![cfg(feature = "identity")]

use actix_identity::{Identity, IdentityMiddleware};
use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpResponse, test, web};
use serde_json::{Value, json};
use threadline_actix::{AuditMiddleware, RequestAudit, identity};

async fn actor(audit: RequestAudit) -> HttpResponse {
    HttpResponse::Ok().json(audit.actor())
}

/// The answer of an app where `user` (if any) has logged in.
async fn answer(user: Option<&'static str>) -> (StatusCode, Value) {
    let app = test::init_service(
        App::new()
            .wrap(AuditMiddleware::with_extractor(identity::user))
            // A login earlier in the session: through actix-identity's own API.
            .wrap_fn(move |req, srv| {
                if let Some(user) = user {
                    Identity::login(&req.extensions(), user.to_owned()).unwrap();
                }
                srv.call(req)
            })
            .wrap(IdentityMiddleware::default())
            .route("/", web::get().to(actor)),
    )
    .await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    (resp.status(), test::read_body_json(resp).await)
}

#[actix_web::test]
async fn the_identity_is_the_user_actor() {
    assert_eq!(
        answer(Some("alice")).await,
        (StatusCode::OK, json!({"type": "user", "id": "alice"}))
    );
    assert_eq!(
        answer(None).await,
        (StatusCode::OK, Value::Null),
        "no identity, no actor"
    );
}

#[actix_web::test]
async fn an_identity_that_is_no_actor_id_is_a_500() {
    assert_eq!(
        answer(Some("")).await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "invalid identity: invalid actor id: must be 1 to 255 bytes without control characters"})
        )
    );
}
