//! `AuditMiddleware` and `RequestAudit` on an Actix test service: every part of the context,
//! every refusal, and contexts that never mix.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, test, web};
use serde_json::{Value, json};
use threadline::{ActorRef, AuditContext};
use threadline_actix::{AuditMiddleware, RequestAudit};

/// The host's resolver: the user of `x-user-id`, 401 when it is not a valid one.
fn user_from_header(req: &HttpRequest) -> Result<Option<ActorRef>, actix_web::Error> {
    let Some(user) = req.headers().get("x-user-id") else {
        return Ok(None);
    };
    let user = user
        .to_str()
        .map_err(|_| actix_web::error::ErrorUnauthorized("who are you?"))?;
    let actor = ActorRef::user(user).map_err(|_| actix_web::error::ErrorUnauthorized("who are you?"))?;
    Ok(Some(actor))
}

/// A handler that answers with its request's context.
async fn echo(audit: RequestAudit) -> HttpResponse {
    HttpResponse::Ok().json(&*audit)
}

/// The same through `web::ReqData`, and through `into_inner`.
async fn echo_req_data(ctx: web::ReqData<AuditContext>, audit: RequestAudit) -> HttpResponse {
    assert_eq!(ctx.into_inner(), audit.into_inner());
    HttpResponse::Ok().finish()
}

/// A test service of the middleware around [`echo`] at `/`.
macro_rules! service {
    ($middleware:expr) => {
        test::init_service(
            App::new()
                .wrap($middleware)
                .route("/", web::get().to(echo))
                .route("/req-data", web::get().to(echo_req_data)),
        )
        .await
    };
}

fn get(headers: &[(&str, &str)]) -> test::TestRequest {
    headers
        .iter()
        .fold(test::TestRequest::get().uri("/"), |req, &(name, value)| {
            req.insert_header((name, value))
        })
}

/// The status, the echoed `x-request-id` and the JSON body of a response.
async fn answer(resp: ServiceResponse<impl MessageBody>) -> (StatusCode, Option<String>, Value) {
    let status = resp.status();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = test::read_body(resp).await;
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, request_id, body)
}

#[actix_web::test]
async fn the_actor_comes_from_the_hosts_resolver() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let (status, id, body) = answer(
        test::call_service(
            &app,
            get(&[("x-user-id", "42"), ("x-request-id", "req-1")]).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(id.as_deref(), Some("req-1"));
    assert_eq!(
        body,
        json!({"actor": {"type": "user", "id": "42"}, "request_id": "req-1", "source": "request"})
    );

    let (status, _, body) =
        answer(test::call_service(&app, get(&[("x-request-id", "req-2")]).to_request()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"request_id": "req-2", "source": "request"}), "no actor");
}

#[actix_web::test]
async fn a_resolver_error_is_the_response_and_the_handler_never_runs() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let (status, id, body) =
        answer(test::call_service(&app, get(&[("x-user-id", ""), ("x-request-id", "req-3")]).to_request()).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!("who are you?"));
    assert_eq!(id.as_deref(), Some("req-3"), "refusals carry the request id too");
}

#[actix_web::test]
async fn the_request_id_is_echoed_trimmed_or_generated() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let (_, id, body) = answer(test::call_service(&app, get(&[("x-request-id", "  req-7 ")]).to_request()).await).await;
    assert_eq!(id.as_deref(), Some("req-7"));
    assert_eq!(body["request_id"], "req-7");

    let mut generated = Vec::new();
    for _ in 0..3 {
        let (status, id, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
        assert_eq!(status, StatusCode::OK);
        let id = id.expect("a generated id is echoed");
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(body["request_id"], id.as_str());
        generated.push(id);
    }
    generated.sort();
    generated.dedup();
    assert_eq!(generated.len(), 3, "every request gets its own id");
}

#[actix_web::test]
async fn an_invalid_request_id_is_a_400() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let long = "r".repeat(257);
    for value in [long.as_str(), "a\tb", "   "] {
        let (status, id, body) =
            answer(test::call_service(&app, get(&[("x-request-id", value)]).to_request()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value:?}");
        assert_eq!(
            body,
            json!({"error": "invalid x-request-id: must be 1 to 256 bytes without control characters"})
        );
        assert_eq!(id, None, "a refused id is not echoed");
    }
}

#[actix_web::test]
async fn the_correlation_id_is_trimmed() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let (status, _, body) = answer(
        test::call_service(
            &app,
            get(&[("x-correlation-id", " checkout-91  "), ("x-request-id", "req-1")]).to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["correlation_id"], "checkout-91");
    let (_, _, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
    assert_eq!(body.get("correlation_id"), None, "none without the header");
    let exact = "c".repeat(256);
    let (status, _, body) =
        answer(test::call_service(&app, get(&[("x-correlation-id", &exact)]).to_request()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["correlation_id"],
        exact.as_str(),
        "256 bytes is the limit, inclusive"
    );
}

#[actix_web::test]
async fn a_correlation_id_too_long_empty_or_with_control_characters_is_a_400() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let long = "c".repeat(257);
    for value in [long.as_str(), "flow\t9", "  "] {
        let (status, id, body) = answer(
            test::call_service(
                &app,
                get(&[("x-correlation-id", value), ("x-request-id", "req-9")]).to_request(),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value:?}");
        assert_eq!(
            body,
            json!({"error": "invalid x-correlation-id: must be 1 to 256 bytes without control characters"})
        );
        assert_eq!(id.as_deref(), Some("req-9"));
    }
    let not_utf8 = test::TestRequest::get()
        .uri("/")
        .insert_header(("x-correlation-id", HeaderValue::from_bytes(b"caf\xe9").unwrap()))
        .to_request();
    let (status, _, body) = answer(test::call_service(&app, not_utf8).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "invalid x-correlation-id: not UTF-8"}));
    let utf8 = test::TestRequest::get()
        .uri("/")
        .insert_header(("x-correlation-id", HeaderValue::from_str("café-7").unwrap()))
        .to_request();
    let (status, _, body) = answer(test::call_service(&app, utf8).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["correlation_id"], "café-7");
}

#[actix_web::test]
async fn without_the_middleware_the_extractor_is_a_500_naming_the_fix() {
    let app = test::init_service(App::new().route("/", web::get().to(echo))).await;
    let (status, _, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": "no audit context: wrap the app with threadline_actix::AuditMiddleware"})
    );
}

#[actix_web::test]
async fn the_tenant_comes_from_the_hosts_tenant_resolver() {
    let middleware = AuditMiddleware::new(user_from_header).tenant(|req| {
        let tenant = req.headers().get("x-tenant")?;
        tenant.to_str().ok().map(str::to_owned)
    });
    let app = service!(middleware);
    let (_, _, body) = answer(test::call_service(&app, get(&[("x-tenant", "acme")]).to_request()).await).await;
    assert_eq!(body["tenant_id"], "acme");
    let (_, _, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
    assert_eq!(body.get("tenant_id"), None);
    let long = "t".repeat(300);
    let (status, _, body) = answer(test::call_service(&app, get(&[("x-tenant", &long)]).to_request()).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid tenant_id: must be 1 to 256 bytes without control characters"})
    );
}

#[actix_web::test]
async fn the_client_address_goes_into_meta() {
    let forwarded = || {
        get(&[("x-forwarded-for", "203.0.113.9")])
            .peer_addr("10.0.0.1:5000".parse().unwrap())
            .to_request()
    };
    let app = service!(AuditMiddleware::new(user_from_header));
    let (_, _, body) = answer(test::call_service(&app, forwarded()).await).await;
    assert_eq!(
        body["meta"],
        json!({"client_addr": "10.0.0.1"}),
        "a header a client can write is ignored"
    );
    let (_, _, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
    assert_eq!(body.get("meta"), None, "no address known, no meta");

    let app = service!(AuditMiddleware::new(user_from_header).client_addr_from_forwarded());
    let (_, _, body) = answer(test::call_service(&app, forwarded()).await).await;
    assert_eq!(
        body["meta"],
        json!({"client_addr": "203.0.113.9"}),
        "behind a proxy, the forwarded address"
    );
    let direct = get(&[]).peer_addr("10.0.0.1:5000".parse().unwrap()).to_request();
    let (_, _, body) = answer(test::call_service(&app, direct).await).await;
    assert_eq!(body["meta"], json!({"client_addr": "10.0.0.1"}));
}

#[actix_web::test]
async fn req_data_and_into_inner_see_the_same_context() {
    let app = service!(AuditMiddleware::new(user_from_header));
    let req = test::TestRequest::get()
        .uri("/req-data")
        .insert_header(("x-user-id", "5"))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), StatusCode::OK);
}

/// An app's own async extractor: the API client named by `x-api-key`, looked up after a
/// pause (a database round trip, say), 401 without the header.
struct ApiClient(String);

impl FromRequest for ApiClient {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = req.headers().get("x-api-key").cloned();
        Box::pin(async move {
            let key = key.ok_or_else(|| actix_web::error::ErrorUnauthorized("an API key, please"))?;
            let key = key.to_str().map_err(actix_web::error::ErrorUnauthorized)?.to_owned();
            // Later keys answer sooner, so concurrent requests finish out of order.
            let pause = 60u64.saturating_sub(key.trim_start_matches("key-").parse().unwrap_or(0));
            actix_web::rt::time::sleep(Duration::from_millis(pause)).await;
            Ok(ApiClient(format!("client-{key}")))
        })
    }
}

fn api_client(client: ApiClient) -> Result<Option<ActorRef>, actix_web::Error> {
    let actor = ActorRef::service_account(client.0).map_err(actix_web::error::ErrorUnauthorized)?;
    Ok(Some(actor))
}

#[actix_web::test]
async fn the_actor_can_come_from_an_async_extractor() {
    let app = service!(AuditMiddleware::with_extractor(api_client));
    let (status, _, body) = answer(test::call_service(&app, get(&[("x-api-key", "key-3")]).to_request()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["actor"], json!({"type": "service_account", "id": "client-key-3"}));

    let (status, id, body) = answer(test::call_service(&app, get(&[("x-request-id", "r-1")]).to_request()).await).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the extractor's error is the response"
    );
    assert_eq!(body, json!("an API key, please"));
    assert_eq!(id.as_deref(), Some("r-1"));

    // `Option<E>` lets requests without one through, with no actor.
    let optional = AuditMiddleware::with_extractor::<Option<ApiClient>>(|client| {
        client.map(api_client).transpose().map(Option::flatten)
    });
    let app = service!(optional);
    let (status, _, body) = answer(test::call_service(&app, get(&[]).to_request()).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.get("actor"), None);
}

#[actix_web::test]
async fn an_extractor_in_the_middleware_leaves_the_body_to_the_handler() {
    async fn body_length(_: RequestAudit, body: web::Bytes) -> HttpResponse {
        HttpResponse::Ok().body(body.len().to_string())
    }
    let middleware = AuditMiddleware::with_extractor(|body: web::Bytes| {
        assert!(body.is_empty(), "the middleware's extractor sees no body");
        Ok(None)
    });
    let app = test::init_service(App::new().wrap(middleware).route("/", web::post().to(body_length))).await;
    let req = test::TestRequest::post().uri("/").set_payload("hello").to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(test::read_body(resp).await, "5");
}

#[actix_web::test]
async fn concurrent_requests_never_mix_contexts() {
    let app = service!(AuditMiddleware::with_extractor(api_client).tenant(|req| {
        let tenant = req.headers().get("x-tenant")?;
        tenant.to_str().ok().map(str::to_owned)
    }));
    let completed = std::cell::RefCell::new(Vec::new());
    let calls = (0..50).map(|n| {
        let key = format!("key-{n}");
        let request_id = format!("req-{n}");
        let correlation_id = format!("flow-{n}");
        let tenant = format!("tenant-{}", n % 7);
        let req = get(&[
            ("x-api-key", &key),
            ("x-request-id", &request_id),
            ("x-correlation-id", &correlation_id),
            ("x-tenant", &tenant),
        ])
        .to_request();
        let (app, completed) = (&app, &completed);
        async move {
            let (status, id, body) = answer(test::call_service(app, req).await).await;
            completed.borrow_mut().push(n);
            assert_eq!(status, StatusCode::OK);
            assert_eq!(id, Some(request_id.clone()));
            assert_eq!(
                body,
                json!({
                    "actor": {"type": "service_account", "id": format!("client-{key}")},
                    "request_id": request_id,
                    "correlation_id": correlation_id,
                    "tenant_id": tenant,
                    "source": "request",
                })
            );
            n
        }
    });
    let finished = futures_util::future::join_all(calls).await;
    assert_eq!(finished, (0..50).collect::<Vec<_>>());
    let completed = completed.into_inner();
    assert_eq!(completed.len(), 50);
    assert_ne!(completed, finished, "the requests overlapped and finished out of order");
}
