//! The `/audit` operator surface over HTTP (actix's test service): who may open it, what
//! each capability unlocks, scope, bad input, CSRF, security headers, escaping, exports
//! and the writes it makes. The trail is written by the blog example's own handlers.

#[path = "../support/mod.rs"]
mod support;

#[path = "../../examples/blog/app.rs"]
#[allow(dead_code, reason = "the pooler setup of the example is tested by tests/e2e")]
mod app;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpRequest, web};
use diesel::PgConnection;
use serde_json::json;
use threadline::ActorRef;
use threadline::export::{ExportOptions, Format};
use threadline::jobs::{ExportJobs, JobFormat};
use threadline::read::{Filter, Reader, Restriction};
use threadline::retention::{Purge, RetentionPolicy};
use threadline::testing::TestDatabase;
use threadline_web::{AuditSurface, CAPABILITIES, CONTENT_SECURITY_POLICY, Capability, Denial, Operator};

use support::actions;

mod browser;

/// A database migrated as the example migrates it, with a small trail written through the
/// blog's handlers: user 2 creates a post with a hostile title, user 3 comments on it,
/// user 2 retitles it.
struct Site {
    admin: PgConnection,
    pool: app::DbPool,
    exports: std::path::PathBuf,
    _db: TestDatabase,
}

const HOSTILE: &str = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>\"'&";

async fn site() -> Site {
    let db = TestDatabase::empty().expect("test database");
    app::run_migrations(db.url()).expect("migrations");
    let admin = db.connect().expect("connect");
    let pool = app::pool(db.url()).await.expect("pool");
    let blog = test::init_service(app::app(pool.clone())).await;
    let post = |user: u32, title: &str| {
        TestRequest::post()
            .uri("/posts")
            .insert_header(("x-user-id", user.to_string()))
            .insert_header(("x-correlation-id", "flow-1"))
            .set_json(json!({"title": title, "body": HOSTILE}))
            .to_request()
    };
    assert_eq!(blog.call(post(2, HOSTILE)).await.unwrap().status(), StatusCode::CREATED);
    let comment = TestRequest::post()
        .uri("/posts/1/comments")
        .insert_header(("x-user-id", "3"))
        .insert_header(("x-request-id", HOSTILE))
        .insert_header(("x-correlation-id", HOSTILE))
        .set_json(json!({"body": HOSTILE}))
        .to_request();
    assert_eq!(blog.call(comment).await.unwrap().status(), StatusCode::CREATED);
    let retitle = TestRequest::patch()
        .uri("/posts/1")
        .insert_header(("x-user-id", "2"))
        .set_json(json!({"title": "Plain"}))
        .to_request();
    assert_eq!(blog.call(retitle).await.unwrap().status(), StatusCode::OK);
    let exports = std::env::temp_dir().join(format!("threadline-web-test-{}", db.url().rsplit('/').next().unwrap()));
    Site {
        admin,
        pool,
        exports,
        _db: db,
    }
}

/// The operator a test request names: `x-operator: user:1` and `x-caps: export,coverage`
/// (or `all`); `x-scope: table` limits it to `public.comments`.
fn test_operator(req: &HttpRequest) -> Result<Operator, Denial> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(who) = header("x-operator") else {
        return Err(Denial::Forbidden);
    };
    if who == "redirect" {
        return Err(Denial::Redirect("/sign-in".into()));
    }
    let id = who.strip_prefix("user:").ok_or(Denial::Forbidden)?;
    let restriction = match header("x-scope").as_deref() {
        Some("table") => Restriction::new().table("public.comments").unwrap(),
        _ => Restriction::unrestricted(),
    };
    let mut operator = Operator::new(ActorRef::user(id).unwrap(), restriction);
    for cap in header("x-caps").unwrap_or_default().split(',') {
        operator = match cap.trim() {
            "all" => operator.grant_all(),
            "export" => operator.grant(Capability::Export),
            "background_export" => operator.grant(Capability::BackgroundExport),
            "coverage" => operator.grant(Capability::Coverage),
            "policy" => operator.grant(Capability::Policy),
            "retention_view" => operator.grant(Capability::RetentionView),
            "retention_prune" => operator.grant(Capability::RetentionPrune),
            "evidence" => operator.grant(Capability::Evidence),
            _ => operator,
        };
    }
    Ok(operator)
}

fn cap_name(cap: Capability) -> &'static str {
    match cap {
        Capability::Export => "export",
        Capability::BackgroundExport => "background_export",
        Capability::Coverage => "coverage",
        Capability::Policy => "policy",
        Capability::RetentionView => "retention_view",
        Capability::RetentionPrune => "retention_prune",
        Capability::Evidence => "evidence",
        _ => unreachable!("a new capability needs a name here"),
    }
}

fn jobs(site: &Site) -> ExportJobs {
    app::export_jobs(&site.exports).expect("export dir")
}

fn surface(site: &Site) -> AuditSurface {
    AuditSurface::builder(site.pool.clone())
        .authorize(test_operator)
        .retention("default", Purge::new(RetentionPolicy::keep_days(1).unwrap()))
        .jobs(jobs(site))
        .build()
}

/// The surface mounted at `/audit` of a bare app.
macro_rules! service {
    ($surface:expr) => {{
        let surface = $surface;
        test::init_service(App::new().service(web::scope("/audit").configure(move |cfg| surface.configure(cfg)))).await
    }};
}

/// The [`Page`] `audit` answers to `GET uri` by operator `user:1` with the capabilities `caps`.
macro_rules! open {
    ($audit:expr, $uri:expr, $caps:expr) => {
        answer!($audit, get($uri, $caps))
    };
}

/// The [`Page`] `audit` answers to a [`TestRequest`].
macro_rules! answer {
    ($audit:expr, $request:expr) => {
        read($audit.call($request.to_request()).await.unwrap()).await
    };
}

/// A whole answer: status, headers, body as text.
struct Page {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

async fn read(resp: ServiceResponse) -> Page {
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = test::read_body(resp).await;
    Page {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
    }
}

fn get(uri: &str, caps: &str) -> TestRequest {
    TestRequest::get()
        .uri(uri)
        .insert_header(("x-operator", "user:1"))
        .insert_header(("x-caps", caps.to_owned()))
}

fn assert_security_headers(page: &Page, uri: &str) {
    let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(header("content-security-policy"), CONTENT_SECURITY_POLICY, "{uri}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{uri}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{uri}");
    assert_eq!(header("cache-control"), "no-store", "{uri}");
}

/// Every page a reader may open, with a trail to show.
const PAGES: [&str; 17] = [
    "/audit/",
    "/audit/timeline?table=public.posts",
    "/audit/timeline?table=public.comments",
    "/audit/rows?table=public.comments&key=1",
    // the correlation id `HOSTILE`, percent-encoded
    "/audit/correlations?id=%3Cscript%3Edocument.title%3D%27pwned%27%3C%2Fscript%3E%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%22%27%26",
    "/audit/transactions/2",
    // the comment's: its request id, correlation id and body are the payload
    "/audit/transactions/3",
    "/audit/rows?table=public.posts&key=1",
    "/audit/rows?table=public.posts&key=1&at=2100-01-01T00:00",
    "/audit/actors?actor=user:2",
    "/audit/correlations?id=flow-1",
    "/audit/views",
    "/audit/coverage",
    "/audit/policy",
    "/audit/retention",
    "/audit/exports",
    "/audit/evidence",
];

#[actix_web::test]
async fn nobody_opens_a_page_the_callback_refuses_and_every_answer_carries_the_headers() {
    let site = site().await;
    let audit = service!(surface(&site));
    for uri in PAGES {
        let refused = answer!(audit, TestRequest::get().uri(uri));
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(refused.body.contains("not allowed"), "{uri}: {}", refused.body);
        assert!(!refused.body.contains("pwned"), "{uri}: a refused page shows no trail");
        assert_security_headers(&refused, uri);
        let redirected = audit
            .call(
                TestRequest::get()
                    .uri(uri)
                    .insert_header(("x-operator", "redirect"))
                    .to_request(),
            )
            .await
            .unwrap();
        assert_eq!(redirected.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(redirected.headers().get("location").unwrap(), "/sign-in");
        let allowed = open!(audit, uri, "all");
        assert_eq!(allowed.status, StatusCode::OK, "{uri}: {}", allowed.body);
        assert_security_headers(&allowed, uri);
        assert!(allowed.body.contains("Signed in as user:1"), "{uri}");
    }
    let css = open!(audit, "/audit/static/threadline.css", "");
    assert_eq!(css.headers.get("content-type").unwrap(), "text/css; charset=utf-8");
    assert!(css.body.contains("prefers-color-scheme: dark"));
}

#[actix_web::test]
async fn each_capability_is_denied_until_granted_and_the_denial_names_it_and_the_cli() {
    let site = site().await;
    let audit = service!(surface(&site));
    let screens = [
        (Capability::Coverage, "/audit/coverage"),
        (Capability::Policy, "/audit/policy"),
        (Capability::RetentionView, "/audit/retention"),
        (Capability::BackgroundExport, "/audit/exports"),
        (Capability::Evidence, "/audit/evidence"),
        (Capability::Export, "/audit/export?format=csv"),
    ];
    for (cap, uri) in screens {
        let others: Vec<&str> = CAPABILITIES
            .iter()
            .filter(|c| **c != cap)
            .map(|c| cap_name(*c))
            .collect();
        let denied = open!(audit, uri, &others.join(","));
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{uri}");
        assert!(
            denied.body.contains(&cap.to_string()),
            "{uri} names {cap}: {}",
            denied.body
        );
        let cli = cap.cli().replace('\'', "&#39;");
        assert!(
            denied.body.contains(cap.cli()) || denied.body.contains(&cli),
            "{uri} names the CLI"
        );
        let granted = audit.call(get(uri, cap_name(cap)).to_request()).await.unwrap();
        assert_eq!(granted.status(), StatusCode::OK, "{uri} with {cap}");
    }
    // The home page shows governance chips only to those granted them.
    let plain = open!(audit, "/audit/", "");
    assert!(!plain.body.contains("/audit/coverage"), "{}", plain.body);
    let covered = open!(audit, "/audit/", "coverage");
    assert!(covered.body.contains("Every table is audited"), "{}", covered.body);
}

#[actix_web::test]
async fn outside_the_scope_reads_as_missing() {
    let site = site().await;
    let audit = service!(surface(&site));
    let scoped = |uri: &str| get(uri, "").insert_header(("x-scope", "table")).to_request();
    // Transaction 2 created the post; the comment is in transaction 3.
    let hidden = read(audit.call(scoped("/audit/transactions/2")).await.unwrap()).await;
    let missing = read(audit.call(scoped("/audit/transactions/99999")).await.unwrap()).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        hidden.body, missing.body,
        "a hidden transaction reads exactly as a missing one"
    );
    let home = read(audit.call(scoped("/audit/")).await.unwrap()).await;
    assert!(
        home.body.contains("<option value=\"public.comments\">"),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("<option value=\"public.posts\">"),
        "the row picker offers only the tables of the scope"
    );
    let everyone = open!(audit, "/audit/", "");
    assert!(everyone.body.contains("<option value=\"public.posts\">"));
    let seen = audit.call(scoped("/audit/transactions/3")).await.unwrap();
    assert_eq!(seen.status(), StatusCode::OK);
    let row = audit
        .call(scoped("/audit/rows?table=public.posts&key=1"))
        .await
        .unwrap();
    assert_eq!(row.status(), StatusCode::NOT_FOUND);
    let timeline = read(audit.call(scoped("/audit/timeline?actor=user")).await.unwrap()).await;
    assert!(timeline.body.contains("1 change matches."), "{}", timeline.body);
}

#[actix_web::test]
async fn bad_input_answers_400_saying_what_to_fix() {
    let site = site().await;
    let audit = service!(surface(&site));
    let cases = [
        ("/audit/transactions/abc", "transaction id"),
        ("/audit/transactions/-4", "transaction id"),
        ("/audit/rows?table=public.posts", "key"),
        ("/audit/rows?table=public.posts&key=a%3D", "row key"),
        ("/audit/rows?table=public.posts&key=1&at=yesterday", "at"),
        (
            "/audit/rows?table=public.posts&key=1&at=-5000-01-01T00:00",
            "years 1 to 9999",
        ),
        (
            "/audit/rows?table=public.posts&key=1&at=%2B12345-01-01T00:00",
            "years 1 to 9999",
        ),
        ("/audit/timeline?tabel=posts", "did you mean"),
        ("/audit/timeline?from=2026-13-01T00:00", "from"),
        ("/audit/timeline?table=posts&cursor=nonsense", "cursor"),
        ("/audit/timeline?op=upsert", "op"),
        ("/audit/timeline?table=%ZZ", "percent"),
        ("/audit/actors?actor=wizard:1", "actor"),
        ("/audit/export?format=xml", "format"),
        ("/audit/export?format=csv&max_rows=0", "max_rows"),
        ("/audit/exports/x/download", "job id"),
        ("/audit/views?page=2", "page"),
    ];
    for (uri, hint) in cases {
        let page = open!(audit, uri, "all");
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}: {}", page.body);
        assert!(page.body.contains(hint), "{uri} says {hint:?}: {}", page.body);
        assert_security_headers(&page, uri);
    }
}

/// The CSRF token in the first form of a page.
fn token(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a token") + 19;
    body[at..at + 64].to_owned()
}

fn post(uri: &str, operator: &str, form: &str) -> TestRequest {
    TestRequest::post()
        .uri(uri)
        .insert_header(("x-operator", operator.to_owned()))
        .insert_header(("x-caps", "all"))
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(form.to_owned())
}

#[actix_web::test]
async fn form_posts_need_the_operators_own_token_and_are_recorded_as_actions() {
    let mut site = site().await;
    let audit = service!(surface(&site));
    let timeline = open!(audit, "/audit/timeline?table=public.posts", "all");
    let mine = token(&timeline.body);
    let theirs = {
        let other = get("/audit/timeline?table=public.posts", "all").insert_header(("x-operator", "user:9"));
        token(&answer!(audit, other).body)
    };
    assert_ne!(mine, theirs, "a token is bound to its operator");
    let form = |token: &str| format!("csrf={token}&name=posts&query=table%3Dpublic.posts");
    let before = actions(&mut site.admin).len();
    for bad in [String::new(), "00".repeat(32), theirs.clone()] {
        let refused = audit
            .call(post("/audit/views/save", "user:1", &form(&bad)).to_request())
            .await;
        let refused = read(refused.unwrap()).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert!(refused.body.contains("nothing was changed"));
    }
    let refused = answer!(audit, post("/audit/retention/prune", "user:1", "confirm=default"));
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(actions(&mut site.admin).len(), before, "a refused post writes nothing");
    let views = open!(audit, "/audit/views", "");
    assert!(views.body.contains("No saved views yet"));

    let saved = audit
        .call(post("/audit/views/save", "user:1", &form(&mine)).to_request())
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let views = open!(audit, "/audit/views", "");
    assert!(
        views
            .body
            .contains("href=\"/audit/timeline?table=public.posts\">posts</a>"),
        "{}",
        views.body
    );
    let recorded = actions(&mut site.admin);
    let last = recorded.last().unwrap();
    assert_eq!(last.name, "audit_view_saved");
    assert_eq!(last.actor, json!({"type": "user", "id": "1"}));

    let deleted = audit
        .call(post("/audit/views/delete", "user:1", &format!("csrf={mine}&name=posts")).to_request())
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(actions(&mut site.admin).last().unwrap().name, "audit_view_deleted");
    let views = open!(audit, "/audit/views", "");
    assert!(views.body.contains("No saved views yet"));
}

#[actix_web::test]
async fn prune_now_needs_the_policy_name_typed_and_records_the_request_first() {
    let mut site = site().await;
    let audit = service!(surface(&site));
    let page = open!(audit, "/audit/retention", "all");
    assert!(page.body.contains("Prune now"));
    let token = token(&page.body);
    let before = actions(&mut site.admin).len();
    let wrong = answer!(
        audit,
        post(
            "/audit/retention/prune",
            "user:1",
            &format!("csrf={token}&confirm=defualt")
        )
    );
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(wrong.body.contains("&quot;default&quot;"), "{}", wrong.body);
    assert_eq!(actions(&mut site.admin).len(), before);
    let pruned = audit
        .call(
            post(
                "/audit/retention/prune",
                "user:1",
                &format!("csrf={token}&confirm=default"),
            )
            .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(pruned.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        actions(&mut site.admin).last().unwrap().name,
        "retention_prune_requested"
    );
    let mut seen = String::new();
    for _ in 0..100 {
        seen = open!(audit, "/audit/retention", "all").body;
        if seen.contains(">completed<") {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen.contains(">completed<"), "the run shows on the page: {seen}");
}

#[actix_web::test]
async fn audited_values_are_text_everywhere() {
    let site = site().await;
    let audit = service!(surface(&site));
    for uri in PAGES {
        let page = open!(audit, uri, "all");
        assert!(!page.body.contains("<script>document"), "{uri}");
        assert!(!page.body.contains("<img src=x"), "{uri}");
        assert!(!page.body.contains("onerror=alert(1)>"), "{uri}");
    }
    // The payload shows as text where the trail holds it: a post's title, a comment's
    // body, a correlation id.
    for uri in [
        PAGES[3],
        PAGES[4],
        "/audit/transactions/2",
        "/audit/transactions/3",
        "/audit/rows?table=public.posts&key=1",
    ] {
        let page = open!(audit, uri, "all");
        assert!(
            page.body.contains(
                "&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&quot;'&amp;"
            ) || page.body.contains("&lt;script&gt;document.title=&#39;pwned&#39;"),
            "{uri}: the payload shows as text: {}",
            page.body
        );
    }
    let transaction = open!(audit, "/audit/transactions/2", "");
    // The masked address shows as masked, never as its placeholder.
    assert!(transaction.body.contains("<span class=\"masked\">masked</span>"));
    assert!(!transaction.body.contains("[REDACTED]"));
}

#[actix_web::test]
async fn a_direct_export_streams_the_bytes_the_read_core_writes() {
    let site = site().await;
    let audit = service!(surface(&site));
    let mut conn = site.pool.get().await.unwrap();
    for format in ["csv", "ndjson", "json"] {
        let uri = format!("/audit/export?format={format}&table=public.posts");
        let resp = audit.call(get(&uri, "export").to_request()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("content-length").is_none(), "streamed, not buffered");
        let served = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        let filter = Filter::new().table("public.posts").unwrap();
        let mut export = Reader::new()
            .export(
                &filter,
                ExportOptions::new(format.parse::<Format>().unwrap()).max_rows(100_000),
            )
            .unwrap();
        let mut expected = Vec::new();
        export.write_to(&mut conn, &mut expected, |_| {}).await.unwrap();
        let expected = String::from_utf8(expected).unwrap();
        let without_time = |text: &str| {
            text.split(",\"generated_at\"").next().unwrap().to_owned()
                + text.split_once("\",\"changes\"").map_or("", |(_, rest)| rest)
        };
        assert_eq!(without_time(&served), without_time(&expected), "{format}");
        assert!(served.matches("public").count() >= 2, "{format}: {served}");
    }
    let capped = audit
        .call(get("/audit/export?format=ndjson&max_rows=1", "export").to_request())
        .await
        .unwrap();
    let body = test::read_body(capped).await;
    assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 1);
}

#[actix_web::test]
async fn a_background_export_is_queued_run_listed_and_downloaded_by_its_owner_only() {
    let mut site = site().await;
    let audit = service!(surface(&site));
    let timeline = open!(audit, "/audit/timeline?table=public.posts", "all");
    let token = token(&timeline.body);
    let queued = audit
        .call(
            post(
                "/audit/exports/request",
                "user:1",
                &format!("csrf={token}&format=csv&query=table%3Dpublic.posts"),
            )
            .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(queued.status(), StatusCode::SEE_OTHER);
    assert_eq!(actions(&mut site.admin).last().unwrap().name, "export_requested");
    let mut conn = site.pool.get().await.unwrap();
    let job = jobs(&site)
        .run_once(&mut conn, "test")
        .await
        .unwrap()
        .expect("a job ran");
    let list = open!(audit, "/audit/exports", "background_export");
    assert!(list.body.contains("state-completed"), "{}", list.body);
    let link = format!("/audit/exports/{}/download", job.id);
    assert!(list.body.contains(&link));
    let file = audit.call(get(&link, "background_export").to_request()).await.unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    let file = test::read_body(file).await;
    let direct = test::read_body(
        audit
            .call(get("/audit/export?format=csv&table=public.posts", "export").to_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(file, direct, "a job's file holds the direct export's bytes");
    let stranger = audit
        .call(
            get(&link, "background_export")
                .insert_header(("x-operator", "user:9"))
                .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(
        stranger.status(),
        StatusCode::NOT_FOUND,
        "another operator's job does not exist for them"
    );

    // A Parquet job, queued from the CLI, is a folder: the screen names the command.
    let owner = ActorRef::user("1").unwrap();
    let parquet = jobs(&site)
        .submit(&mut conn, &owner, &Filter::new(), JobFormat::Parquet, None)
        .await
        .unwrap();
    jobs(&site)
        .run_once(&mut conn, "test")
        .await
        .unwrap()
        .expect("a job ran");
    let list = open!(audit, "/audit/exports", "background_export");
    assert!(
        list.body.contains(&format!("threadline export-jobs fetch {parquet}")),
        "{}",
        list.body
    );
    let link = format!("/audit/exports/{parquet}/download");
    assert!(!list.body.contains(&link), "{}", list.body);
    let refused = open!(audit, &link, "background_export");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("folder of Parquet files"), "{}", refused.body);
}

#[actix_web::test]
async fn a_restricted_operator_queues_no_background_export_since_jobs_read_the_whole_trail() {
    let mut site = site().await;
    let audit = service!(surface(&site));
    let scoped = |req: TestRequest| req.insert_header(("x-scope", "table"));
    let timeline = answer!(audit, scoped(get("/audit/timeline?table=public.comments", "all")));
    assert_eq!(timeline.status, StatusCode::OK);
    assert!(
        !timeline.body.contains("/exports/request"),
        "no queue button for a restricted operator"
    );
    let before = actions(&mut site.admin).len();
    let form = format!("csrf={}&format=csv&query=", token(&timeline.body));
    let queued = answer!(audit, scoped(post("/audit/exports/request", "user:1", &form)));
    assert_eq!(queued.status, StatusCode::FORBIDDEN);
    assert!(queued.body.contains("Not within your access"), "{}", queued.body);
    assert_eq!(
        actions(&mut site.admin).len(),
        before,
        "nothing queued, nothing recorded"
    );
    let list = answer!(audit, scoped(get("/audit/exports", "all")));
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    // The direct download applies the restriction: only the comments' changes.
    let direct = answer!(audit, scoped(get("/audit/export?format=csv", "all")));
    assert_eq!(direct.status, StatusCode::OK);
    let rows: Vec<&str> = direct.body.lines().skip(1).collect();
    assert!(
        !rows.is_empty() && rows.iter().all(|row| row.contains(",public,comments,")),
        "{}",
        direct.body
    );
}

#[actix_web::test]
async fn the_surface_mounts_in_any_scope_and_links_within_it() {
    let site = site().await;
    let surface = surface(&site);
    let nested = test::init_service(
        App::new().service(web::scope("/admin/{tenant}/audit").configure(move |cfg| surface.configure(cfg))),
    )
    .await;
    let page = read(
        nested
            .call(get("/admin/acme/audit/transactions/2", "").to_request())
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("href=\"/admin/acme/audit/static/threadline.css\""));
    assert!(
        page.body
            .contains("href=\"/admin/acme/audit/rows?table=public.posts&amp;key=1\""),
        "{}",
        page.body
    );
    let home = nested.call(get("/admin/acme/audit", "").to_request()).await.unwrap();
    assert_eq!(home.headers().get("location").unwrap(), "/admin/acme/audit/");
}

#[actix_web::test]
async fn the_blog_mounts_it_for_user_one_and_signs_in_a_browser_with_a_cookie() {
    let site = site().await;
    let blog = test::init_service(app::app(site.pool.clone())).await;
    let as_user = |user: &str| {
        TestRequest::get()
            .uri("/audit/")
            .insert_header(("x-user-id", user.to_owned()))
    };
    assert_eq!(
        blog.call(as_user("1").to_request()).await.unwrap().status(),
        StatusCode::OK
    );
    for refused in ["2", "3"] {
        assert_eq!(
            blog.call(as_user(refused).to_request()).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }
    let sign_in = blog
        .call(TestRequest::get().uri("/demo/sign-in?user=1").to_request())
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(sign_in.headers().get("location").unwrap(), "/audit/");
    let cookie = sign_in
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"));
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let home = blog
        .call(
            TestRequest::get()
                .uri("/audit/")
                .insert_header(("cookie", cookie))
                .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::OK);
}
