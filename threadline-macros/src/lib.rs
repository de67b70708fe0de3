//! Procedural macros of Threadline, one module per macro.
//!
//! This crate is re-exported by the `threadline` facade: depend on `threadline`, not on it
//! directly. Generated code names everything through `::threadline`, so users need no
//! imports of their own.

mod action;
mod audited;

use proc_macro::TokenStream;

/// Audits a Diesel model's table: see `threadline::Audited` for what it generates.
///
/// ```ignore
/// #[derive(Queryable, Selectable, Identifiable, Audited)]
/// #[diesel(table_name = users)]
/// #[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
/// pub struct User { pub id: i64, pub email: String, pub updated_at: DateTime<Utc> }
/// ```
#[proc_macro_derive(Audited, attributes(audited))]
pub fn derive_audited(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    audited::expand(&input)
        .unwrap_or_else(|error| audited::fallback(&input, error))
        .into()
}

/// Runs an async fn's body as one audited transaction that records a named action, on a
/// connection checked out of the fn's pool: `threadline::transaction` with the action in
/// the context, for Actix handlers and plain async fns alike.
///
/// ```ignore
/// use actix_web::{HttpResponse, post, web};
/// use diesel_async::{AsyncPgConnection, RunQueryDsl};
/// use threadline::{AuditContext, audited_action};
///
/// type DbPool = diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>;
///
/// #[post("/posts")]
/// #[audited_action("post_created")]
/// async fn create_post(
///     pool: web::Data<DbPool>,         // the pool
///     ctx: web::ReqData<AuditContext>, // who acts, in which request
///     form: web::Json<NewPost>,
///     conn: &mut AsyncPgConnection,    // the transaction's connection: not an Actix argument
/// ) -> Result<HttpResponse, threadline::Error> {
///     diesel::insert_into(posts::table).values(&*form).execute(conn).await?;
///     Ok(HttpResponse::Created().finish())
/// }
///
/// // A plain async fn: the pool by reference, chosen by name; failures recorded.
/// #[audited_action("posts_archived", pool = db, record_failure)]
/// async fn archive(db: &DbPool, ctx: &AuditContext, conn: &mut AsyncPgConnection) -> Result<usize, AppError> {
///     Ok(diesel::update(posts::table).set(posts::archived.eq(true)).execute(conn).await?)
/// }
/// // called as `archive(&pool, &ctx).await?`: the connection parameter is gone
/// ```
///
/// **Syntax.** `#[audited_action("name")]`, then, in any order, `pool = <argument>` and
/// `record_failure`: `#[audited_action("post_created", pool = db, record_failure)]`. The name
/// follows `threadline::Action::new`: 1 to 128 characters of `a-z`, `0-9`, `_`, `.`, `:`,
/// `-`, starting with a letter; it is checked at compile time.
///
/// **Arguments.** The fn must be an `async fn` and declare:
///
/// - **the connection**, a parameter of type `&mut AsyncPgConnection` (any path ending in
///   `AsyncPgConnection`). It is removed from the signature (callers and Actix never see it);
///   the body runs with it bound to the transaction's connection.
/// - **the pool**, a bb8 pool of diesel-async connections
///   (`diesel_async::pooled_connection::bb8::Pool<AsyncPgConnection>`), by value, by
///   reference or in `web::Data` (threadline's `actix` feature). It is the parameter named by
///   `pool = ...` or marked `#[audit_pool]`, else the one whose type names a pool (`...Pool`:
///   `&DbPool`, `web::Data<DbPool>`), else the only `web::Data<_>`; other `web::Data`
///   parameters (`web::Data<Config>`) are ordinary ones.
/// - **the context**, the one parameter of type `AuditContext`, `&AuditContext` or
///   `Wrapper<AuditContext>` (`web::ReqData<AuditContext>`, which the audit middleware fills),
///   or the parameter marked `#[audit_context]`, of any type that implements
///   `Deref<Target = AuditContext>` (an extractor of the app's own). Its action, if any, is
///   replaced by the named one.
///
/// The fn returns `Result<T, E>` with `E: From<threadline::Error>` (`impl Trait` inside is
/// fine): `threadline::Error` itself, `actix_web::Error` (with the `actix` feature, which
/// makes `threadline::Error` a `ResponseError`), or the app's own error type.
///
/// **Behaviour.** `Ok(value)` commits the body's writes with the action linked to their
/// audit transaction, and the fn returns `Ok(value)`. `Err` rolls back everything, action
/// included, and is returned as it is; with `record_failure`, the failed attempt is then
/// recorded on its own (`threadline::record_action`, status `error`, no changes), and the
/// body's error is returned even when that record fails. A pool that yields no connection
/// is `threadline::Error::Pool`, converted into `E`.
///
/// **What it expands to**, with every name reached through `::threadline::__support`, so
/// no imports are needed:
///
/// ```ignore
/// async fn create_post(pool: web::Data<DbPool>, ctx: web::ReqData<AuditContext>, form: web::Json<NewPost>)
///     -> Result<HttpResponse, threadline::Error>
/// {
///     run_action(
///         AuditPool::pool(&pool),                            // &bb8::Pool<AsyncPgConnection>
///         Clone::clone(ContextSource::audit_context(&ctx)),  // AuditContext
///         "post_created",
///         false,                                             // record_failure
///         async |conn: &mut AsyncPgConnection| -> Result<HttpResponse, threadline::Error> { /* body */ },
///     )
///     .await
/// }
/// ```
///
/// Mistakes are compile errors that say what to write instead: a missing or invalid name,
/// an unknown option, a fn that is not `async`, no return type, a missing or ambiguous pool,
/// context or connection, a pool or context of a type that cannot serve, and a return type
/// that is not such a `Result`. Beside the error the fn stays, in the signature the expansion
/// would give it, so code that names it (a route, a test) does not fail with it.
#[proc_macro_attribute]
pub fn audited_action(attr: TokenStream, item: TokenStream) -> TokenStream {
    action::expand_or_keep(attr.into(), item.into()).into()
}
