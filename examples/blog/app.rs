//! The blog app: tables, audited models, handlers and the `App` that serves them.
//!
//! `examples/blog/main.rs` runs it on a socket; `tests/e2e` includes this file with
//! `#[path]` and drives the same `App` through `actix_web::test`.
//!
//! Every write handler is an `#[audited_action]`: its body runs in one database transaction
//! that carries the request's audit context (from `threadline_actix::AuditMiddleware`) and
//! names the action. `Ok` commits the rows, their captured changes and the action together;
//! `Err` rolls all of it back and answers with a JSON error.
//!
//! **Demo authentication.** The `x-user-id` header names the acting user, unchecked. It is a
//! stand-in for a real session or token: never trust a header like this in a real app.

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, ResponseError, delete, get, patch, post, web};
use chrono::{DateTime, SecondsFormat, Utc};
use diesel::connection::CacheSize;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use serde::{Deserialize, Serialize};
use serde_json::json;
use threadline::jobs::ExportJobs;
use threadline::model::Version;
use threadline::policy::PolicyCheck;
use threadline::read::Restriction;
use threadline::retention::{Purge, RetentionPolicy};
use threadline::{ActorRef, Audited, audited_action};
use threadline_actix::{AuditMiddleware, RequestAudit};
use threadline_web::{AuditSurface, Denial, Operator};

/// The connection pool the handlers check connections out of.
pub type DbPool = Pool<AsyncPgConnection>;

/// The root `migrations/` folder: the Threadline install, the blog's tables, the
/// `gen-triggers` migrations that audit them, and the demo users.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

diesel::table! {
    users (id) {
        id -> BigInt,
        name -> Text,
        email -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    posts (id) {
        id -> BigInt,
        author_id -> BigInt,
        title -> Text,
        body -> Text,
        author_ip -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    comments (id) {
        id -> BigInt,
        post_id -> BigInt,
        author_id -> BigInt,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(posts -> users (author_id));
diesel::joinable!(comments -> posts (post_id));
diesel::allow_tables_to_appear_in_same_query!(users, posts, comments);

/// A user. The trail stores the email only as `[REDACTED]` and never stores the password
/// hash; the app itself never serves either.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Audited)]
#[diesel(table_name = users)]
#[audited(mask(email), exclude(password_hash))]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A post. The author's address is masked in the trail (and left out of the API's JSON); a
/// change of `updated_at` alone is not a change worth recording.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, Audited)]
#[diesel(table_name = posts)]
#[audited(mask(author_ip), ignore_changes(updated_at))]
pub struct Post {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub body: String,
    #[serde(skip_serializing)]
    pub author_ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A comment on a post; deleting the post deletes its comments (and the trail says so).
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize, Audited)]
#[diesel(table_name = comments)]
pub struct Comment {
    pub id: i64,
    pub post_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /posts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    pub title: String,
    pub body: String,
}

/// `PATCH /posts/{id}`: the fields to change.
#[derive(Debug, Deserialize, AsChangeset)]
#[diesel(table_name = posts)]
#[serde(deny_unknown_fields)]
pub struct PostChanges {
    pub title: Option<String>,
    pub body: Option<String>,
}

/// `POST /posts/{id}/comments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub body: String,
}

/// Every error the app answers with: a status and `{"error": "..."}`. Nothing a request
/// wrote survives one: the handlers' transactions roll back.
#[derive(Debug)]
pub enum AppError {
    /// A status and a message for the client.
    Status(StatusCode, String),
    /// Threadline's own error, answered by its `ResponseError` (no stored values shown).
    Threadline(threadline::Error),
}

impl AppError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError::Status(status, message.into())
    }

    fn bad_request(message: impl Into<String>) -> Self {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(what: &str, id: i64) -> Self {
        AppError::new(StatusCode::NOT_FOUND, format!("{what} {id} not found"))
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Status(_, message) => f.write_str(message),
            AppError::Threadline(error) => error.fmt(f),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Status(status, _) => *status,
            AppError::Threadline(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AppError::Status(status, message) => HttpResponse::build(*status).json(json!({ "error": message })),
            AppError::Threadline(error) => error.error_response(),
        }
    }
}

/// Constraint violations become answers that say what to fix; anything else is a 500 that
/// says nothing more.
impl From<DieselError> for AppError {
    fn from(error: DieselError) -> Self {
        if let DieselError::DatabaseError(kind, info) = &error {
            let constraint = info.constraint_name().unwrap_or_default();
            match (kind, constraint) {
                (DatabaseErrorKind::ForeignKeyViolation, "posts_author_id_fkey" | "comments_author_id_fkey") => {
                    return AppError::new(StatusCode::UNAUTHORIZED, "x-user-id names no user");
                }
                (DatabaseErrorKind::ForeignKeyViolation, "comments_post_id_fkey") => {
                    return AppError::new(StatusCode::NOT_FOUND, "post not found");
                }
                (DatabaseErrorKind::CheckViolation, "posts_title_length") => {
                    return AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "title must be 1 to 200 characters");
                }
                (DatabaseErrorKind::CheckViolation, "comments_body_length") => {
                    return AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "body must be 1 to 2000 characters");
                }
                _ => {}
            }
        }
        AppError::Threadline(error.into())
    }
}

impl From<threadline::Error> for AppError {
    fn from(error: threadline::Error) -> Self {
        match error {
            threadline::Error::Database(error) => error.into(),
            other => AppError::Threadline(other),
        }
    }
}

/// The acting user's id from the demo header `x-user-id`, if any: a positive integer.
pub fn demo_user_id(req: &HttpRequest) -> Result<Option<i64>, AppError> {
    let Some(header) = req.headers().get("x-user-id") else {
        return Ok(None);
    };
    match header.to_str().ok().and_then(|text| text.parse::<i64>().ok()) {
        Some(id) if id > 0 => Ok(Some(id)),
        _ => Err(AppError::bad_request("x-user-id must be a user id, a positive integer")),
    }
}

/// The actor of a request for the audit middleware: `user:<x-user-id>`, or none. Demo only.
pub fn demo_actor(req: &HttpRequest) -> Result<Option<ActorRef>, actix_web::Error> {
    match demo_user_id(req)? {
        Some(id) => Ok(Some(ActorRef::user(id.to_string()).map_err(AppError::from)?)),
        None => Ok(None),
    }
}

/// The signed-in user (demo: `x-user-id`); a handler that takes one answers 401 without it,
/// before any transaction begins.
pub struct ActingUser(pub i64);

impl FromRequest for ActingUser {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(demo_user_id(req).and_then(|id| {
            id.map(ActingUser).ok_or_else(|| {
                AppError::new(
                    StatusCode::UNAUTHORIZED,
                    "sign in first: send x-user-id (demo authentication)",
                )
            })
        }))
    }
}

#[post("/posts")]
#[audited_action("post_created")]
async fn create_post(
    pool: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    user: ActingUser,
    req: HttpRequest,
    form: web::Json<NewPost>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, AppError> {
    let post: Post = diesel::insert_into(posts::table)
        .values((
            posts::author_id.eq(user.0),
            posts::title.eq(&form.title),
            posts::body.eq(&form.body),
            posts::author_ip.eq(req.peer_addr().map(|addr| addr.ip().to_string())),
        ))
        .returning(Post::as_returning())
        .get_result(conn)
        .await?;
    Ok(HttpResponse::Created().json(post))
}

#[patch("/posts/{id}")]
#[audited_action("post_updated")]
async fn update_post(
    pool: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    _user: ActingUser,
    id: web::Path<i64>,
    form: web::Json<PostChanges>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, AppError> {
    if form.title.is_none() && form.body.is_none() {
        return Err(AppError::bad_request("nothing to change: give title, body or both"));
    }
    let id = id.into_inner();
    let post: Post = diesel::update(posts::table.find(id))
        .set((&*form, posts::updated_at.eq(diesel::dsl::now)))
        .returning(Post::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(|| AppError::not_found("post", id))?;
    Ok(HttpResponse::Ok().json(post))
}

#[delete("/posts/{id}")]
#[audited_action("post_deleted")]
async fn delete_post(
    pool: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    _user: ActingUser,
    id: web::Path<i64>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    match diesel::delete(posts::table.find(id)).execute(conn).await? {
        0 => Err(AppError::not_found("post", id)),
        _ => Ok(HttpResponse::NoContent().finish()),
    }
}

#[post("/posts/{id}/comments")]
#[audited_action("comment_created")]
async fn create_comment(
    pool: web::Data<DbPool>,
    #[audit_context] audit: RequestAudit,
    user: ActingUser,
    id: web::Path<i64>,
    form: web::Json<NewComment>,
    conn: &mut AsyncPgConnection,
) -> Result<HttpResponse, AppError> {
    let post_id = id.into_inner();
    let comment: Comment = diesel::insert_into(comments::table)
        .values((
            comments::post_id.eq(post_id),
            comments::author_id.eq(user.0),
            comments::body.eq(&form.body),
        ))
        .returning(Comment::as_returning())
        .get_result(conn)
        .await
        .map_err(|error| match AppError::from(error) {
            AppError::Status(StatusCode::NOT_FOUND, _) => AppError::not_found("post", post_id),
            other => other,
        })?;
    Ok(HttpResponse::Created().json(comment))
}

/// One version of a row as the history routes answer it: who, when, in which request and
/// action, and the row itself (under `post` or `user`), its redacted fields shown as
/// `{"masked": true}` or `{"excluded": true}`.
#[derive(Serialize)]
struct VersionJson<S> {
    transaction_id: i64,
    op: threadline::read::Op,
    captured_at: String,
    actor: Option<ActorRef>,
    action: Option<String>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    changed_fields: Vec<String>,
    /// `{name: row}`, flattened: the row under its model's name.
    #[serde(flatten)]
    row: std::collections::BTreeMap<&'static str, Option<S>>,
}

/// A row's versions as JSON, newest first, each row under `name`.
fn versions_json<S: Serialize>(versions: Vec<Version<S>>, name: &'static str) -> Vec<VersionJson<S>> {
    versions
        .into_iter()
        .map(|version| VersionJson {
            transaction_id: version.transaction_id,
            op: version.op,
            captured_at: version.captured_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            actor: version.actor,
            action: version.action,
            request_id: version.request_id,
            correlation_id: version.correlation_id,
            changed_fields: version.changed_fields,
            row: [(name, version.row)].into(),
        })
        .collect()
}

/// A pooled connection for a read.
async fn read_connection(pool: &DbPool) -> Result<PooledConnection<'_, AsyncPgConnection>, AppError> {
    pool.get()
        .await
        .map_err(|error| threadline::Error::Pool(Box::new(error)).into())
}

/// A history read: a row never captured is a 404.
fn history_or_404<T>(result: Result<T, threadline::Error>, what: &str, id: i64) -> Result<T, AppError> {
    result.map_err(|error| match error {
        threadline::Error::NotFound { .. } => AppError::not_found(what, id),
        other => other.into(),
    })
}

// Reads run in a read-only transaction: one snapshot for the whole read, and behind a
// transaction-mode pooler every statement of it reaches the same server connection.
#[get("/posts/{id}/history")]
async fn post_history(pool: web::Data<DbPool>, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut conn = read_connection(&pool).await?;
    let history = conn
        .build_transaction()
        .read_only()
        .run(async |conn| Post::history(conn, id).await)
        .await;
    let history = history_or_404(history, "post", id)?;
    Ok(HttpResponse::Ok().json(versions_json(history.entries, "post")))
}

#[get("/users/{id}/history")]
async fn user_history(pool: web::Data<DbPool>, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let mut conn = read_connection(&pool).await?;
    let history = conn
        .build_transaction()
        .read_only()
        .run(async |conn| User::history(conn, id).await)
        .await;
    let history = history_or_404(history, "user", id)?;
    Ok(HttpResponse::Ok().json(versions_json(history.entries, "user")))
}

/// Any other path or method.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// The blog app: the audit middleware, the pool, JSON errors for bad bodies and paths, the
/// routes.
#[allow(
    dead_code,
    reason = "tests/e2e builds the app with it; the binary builds its surface once, for every worker"
)]
pub fn app(
    pool: DbPool,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let jobs = export_jobs(&std::env::temp_dir().join("threadline-blog-exports")).expect("a directory for exports");
    app_with(pool.clone(), audit_surface(pool, jobs))
}

/// The blog's `App` with an audit surface built once for every worker (its CSRF key is
/// drawn when it is built).
pub fn app_with(
    pool: DbPool,
    surface: AuditSurface,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(AuditMiddleware::new(demo_actor))
        .app_data(web::Data::new(pool))
        .app_data(
            web::JsonConfig::default()
                .error_handler(|error, _| AppError::bad_request(format!("invalid JSON body: {error}")).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, req| {
            AppError::new(StatusCode::NOT_FOUND, format!("no such resource: {}", req.path())).into()
        }))
        .service(web::scope("/audit").configure(|cfg| surface.configure(cfg)))
        .service(demo_sign_in)
        .service(create_post)
        .service(update_post)
        .service(delete_post)
        .service(create_comment)
        .service(post_history)
        .service(user_history)
        .default_service(web::to(no_route))
}

/// The export queue of the audit pages, its files under `dir`.
pub fn export_jobs(dir: &std::path::Path) -> Result<ExportJobs, threadline::Error> {
    std::fs::create_dir_all(dir)?;
    ExportJobs::local(dir)
}

/// The `/audit` pages. **Demo authorization**: the operator is the `x-user-id` header or
/// the cookie `/demo/sign-in` sets; user 1 may open them with every capability, anyone
/// else is refused. A real app reads its session instead (see the README).
pub fn audit_surface(pool: DbPool, jobs: ExportJobs) -> AuditSurface {
    let policies = PolicyCheck::new()
        .declare_model::<User>()
        .declare_model::<Post>()
        .declare_model::<Comment>();
    let purge = Purge::new(RetentionPolicy::keep_days(365).expect("a valid window"));
    AuditSurface::builder(pool)
        .authorize(demo_operator)
        .policy(policies)
        .retention("default", purge)
        .jobs(jobs)
        .build()
}

/// The demo operator: user 1 only.
fn demo_operator(req: &HttpRequest) -> Result<Operator, Denial> {
    let from_cookie = || {
        req.headers()
            .get_all("cookie")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("demo_user="))
            .and_then(|id| id.parse::<i64>().ok())
    };
    let user = demo_user_id(req).ok().flatten().or_else(from_cookie);
    match user {
        Some(1) => {
            let actor = ActorRef::user("1").map_err(|_| Denial::Forbidden)?;
            Ok(Operator::new(actor, Restriction::unrestricted()).grant_all())
        }
        _ => Err(Denial::Forbidden),
    }
}

/// `GET /demo/sign-in?user=N`: the demo's stand-in for a sign-in form. Sets the demo
/// cookie and opens the audit pages.
#[get("/demo/sign-in")]
async fn demo_sign_in(query: web::Query<SignIn>) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            "set-cookie",
            format!("demo_user={}; Path=/; HttpOnly; SameSite=Lax", query.user),
        ))
        .insert_header(("location", "/audit/"))
        .finish()
}

/// The query of `/demo/sign-in`.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    /// The user to act as.
    pub user: u32,
}

/// Applies the migrations the database lacks (none, when `diesel migration run` applied
/// them already) and returns their versions.
pub fn run_migrations(database_url: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = diesel::PgConnection::establish(database_url)?;
    let applied = conn.run_pending_migrations(MIGRATIONS)?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// A pool of async connections to the database.
pub async fn pool(database_url: &str) -> Result<DbPool, diesel_async::pooled_connection::PoolError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder().build(manager).await
}

/// A pool for a database reached through a pooler in transaction mode (PgBouncer before
/// 1.21, or without `max_prepared_statements`): each statement is prepared afresh inside its
/// transaction, since a statement cached on one server connection would be missing on the
/// next one the pooler hands out; and a pooled connection is checked with a simple-protocol
/// `SELECT 1`, since the default check prepares a statement outside any transaction, whose
/// two round trips the pooler may send to two server connections.
pub async fn pool_behind_transaction_pooler(
    database_url: &str,
) -> Result<DbPool, diesel_async::pooled_connection::PoolError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn: &mut AsyncPgConnection| {
        Box::pin(conn.batch_execute("SELECT 1"))
    }));
    config.custom_setup = Box::new(|url| {
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(url).await?;
            conn.set_prepared_statement_cache_size(CacheSize::Disabled);
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder().build(manager).await
}
