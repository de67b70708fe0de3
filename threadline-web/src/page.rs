//! The frame of every page, the request's context (who, where the surface is mounted), and
//! the small pieces pages share: times, actors, values, links. Everything interpolated is
//! escaped by maud; links built from audited data are always relative paths of the surface
//! with percent-encoded parameters, never a scheme the data chose.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};
use serde_json::{Map, Value};
use threadline::ActorRef;
use threadline::read::{ActorFilter, Change, percent_encode};

use crate::{Capability, Denial, Operator, PageError, Surface};

/// The stylesheet, served as a file of the mount.
const STYLESHEET: &str = include_str!("../static/threadline.css");
/// The copy buttons' script, served as a file of the mount.
const SCRIPT: &str = include_str!("../static/threadline.js");

/// A request the authorize callback accepted: the surface, its operator and where it is
/// mounted.
pub(crate) struct Ctx {
    pub(crate) surface: web::Data<Surface>,
    pub(crate) operator: Operator,
    pub(crate) base: String,
}

/// The `{id}` of a route such as `/transactions/{id}`, read from the match info rather than
/// a `web::Path`, so the surface works inside a host scope with parameters of its own.
pub(crate) fn route_id(req: &HttpRequest) -> &str {
    req.match_info().get("id").unwrap_or_default()
}

impl Ctx {
    /// Authorizes `req`.
    pub(crate) fn open(req: &HttpRequest) -> Result<Ctx, PageError> {
        let surface = surface(req)?;
        let operator = (surface.authorize)(req).map_err(|denial| match denial {
            Denial::Forbidden => PageError::Denied,
            Denial::Redirect(to) => PageError::Redirect(to),
        })?;
        Ok(Ctx {
            surface,
            operator,
            base: base(req),
        })
    }

    /// Authorizes `req` for a screen that needs `capability`.
    pub(crate) fn open_for(req: &HttpRequest, capability: Capability) -> Result<Ctx, PageError> {
        let ctx = Ctx::open(req)?;
        ctx.operator.check(capability)?;
        Ok(ctx)
    }

    /// A path of the surface: `self.link("/timeline")`.
    pub(crate) fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The CSRF token of this operator's forms.
    pub(crate) fn token(&self) -> String {
        self.surface.csrf.token(self.operator.actor())
    }

    /// The hidden field that carries the CSRF token.
    pub(crate) fn token_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.token()); }
    }

    /// A page of the surface.
    pub(crate) fn page(&self, title: &str, body: Markup) -> HttpResponse {
        html_response(
            actix_web::http::StatusCode::OK,
            frame(&self.base, Some(self), title, body),
        )
    }
}

fn surface(req: &HttpRequest) -> Result<web::Data<Surface>, PageError> {
    req.app_data::<web::Data<Surface>>().cloned().ok_or(PageError::Internal)
}

/// Where the surface is mounted: the request path without the segments of the route's
/// own pattern (one of [`crate::ROUTES`]), so a scope with parameters works too.
pub(crate) fn base(req: &HttpRequest) -> String {
    let pattern = req.match_pattern().unwrap_or_default();
    let local = crate::ROUTES
        .iter()
        .map(|(route, _)| *route)
        .filter(|route| pattern.ends_with(route))
        .max_by_key(|route| route.len())
        .unwrap_or("");
    let mut base = req.path().trim_end_matches('/');
    for _ in 0..local.trim_end_matches('/').matches('/').count() {
        base = base.rsplit_once('/').map_or("", |(head, _)| head);
    }
    // A path such as `//host/audit` must not become a link to another host.
    format!("/{}", base.trim_matches('/')).trim_end_matches('/').to_owned()
}

/// An HTML response.
pub(crate) fn html_response(status: actix_web::http::StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// The response of a handler: its page, or the page of its error.
pub(crate) fn respond(req: &HttpRequest, result: Result<HttpResponse, PageError>) -> HttpResponse {
    match result {
        Ok(response) => response,
        Err(PageError::Redirect(to)) => HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish(),
        Err(error) => error_page(req, &error),
    }
}

fn error_page(req: &HttpRequest, error: &PageError) -> HttpResponse {
    let base = base(req);
    let (title, body) = match error {
        PageError::BadInput { field, reason } => (
            "Bad request",
            html! {
                p { "The " strong { (field) } " parameter could not be read: " (reason) }
                p { "Fix it in the address or the form and try again." }
            },
        ),
        PageError::Denied => (
            "Not allowed",
            html! { p { "You are not allowed to open the audit pages. Ask an administrator for access." } },
        ),
        PageError::Missing(capability) => (
            "Not granted",
            html! {
                p { "This page needs a capability you were not granted: it would let you " (capability.describe()) "." }
                p { "The app must grant " code { (capability.to_string()) } " to your operator in its authorize callback." }
                p { "The same answer, from a shell with database access:" }
                pre { code { (capability.cli()) } }
            },
        ),
        PageError::BeyondScope(capability) => (
            "Not within your access",
            html! {
                p { "Your access covers part of the trail, and this page would " (capability.describe()) " beyond it: background exports read the whole trail." }
                p { "Download the timeline's filter instead: it applies your limits." }
            },
        ),
        PageError::Csrf => (
            "Form expired",
            html! { p { "The form's security token was missing or not yours, so nothing was changed. Reload the page and submit it again." } },
        ),
        PageError::NotFound(what) => (
            "Not found",
            html! { p { "No " (what) " with that address exists, or it lies outside what you may see." } },
        ),
        PageError::Conflict(why) => (
            "Busy",
            html! { p { (why) } p { "Nothing was changed. Try again later." } },
        ),
        PageError::Unavailable => (
            "Unavailable",
            html! { p { "The audit database is not reachable right now. Try again in a moment." } },
        ),
        PageError::Internal | PageError::Redirect(_) => (
            "Something failed",
            html! { p { "The audit database failed to answer. The server log has the error's kind." } },
        ),
    };
    html_response(error.status(), frame(&base, None, title, body))
}

/// The frame of every page: header with navigation, main landmark, footer.
fn frame(base: &str, ctx: Option<&Ctx>, title: &str, body: Markup) -> Markup {
    let nav: Vec<(&str, &str, Option<Capability>)> = vec![
        ("Home", "/", None),
        ("Timeline", "/timeline", None),
        ("Saved views", "/views", None),
        ("Exports", "/exports", Some(Capability::BackgroundExport)),
        ("Coverage", "/coverage", Some(Capability::Coverage)),
        ("Policy", "/policy", Some(Capability::Policy)),
        ("Retention", "/retention", Some(Capability::RetentionView)),
        ("Evidence", "/evidence", Some(Capability::Evidence)),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · Audit trail" }
                link rel="stylesheet" href={ (base) "/static/threadline.css" };
                script src={ (base) "/static/threadline.js" } defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    p class="brand" { a href={ (base) "/" } { "Audit trail" } }
                    @if let Some(ctx) = ctx {
                        nav aria-label="Audit pages" {
                            ul {
                                @for (label, path, capability) in &nav {
                                    @if capability.is_none_or(|c| ctx.operator.can(c)) {
                                        li { a href={ (base) (path) } { (label) } }
                                    }
                                }
                            }
                        }
                        p class="who" { "Signed in as " (actor_text(ctx.operator.actor())) }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
                footer { p { "Threadline " (env!("CARGO_PKG_VERSION")) " · read-only audit pages" } }
            }
        }
    }
}

/// `GET /static/threadline.css`.
pub(crate) async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLESHEET)
}

/// `GET /static/threadline.js`.
pub(crate) async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(SCRIPT)
}

/// `user:42`, `anonymous`.
pub(crate) fn actor_text(actor: &ActorRef) -> String {
    ActorFilter::from(actor.clone()).to_string()
}

/// A time, readable and machine-readable.
pub(crate) fn time(at: &DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(SecondsFormat::Micros, true)) {
            (at.format("%Y-%m-%d %H:%M:%S%.6f UTC"))
        }
    }
}

/// An optional time, or a dash.
pub(crate) fn time_opt(at: Option<&DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span class="none" { "—" } },
    }
}

/// A query string of `pairs`, percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Ctx {
    /// A link to the actor's page.
    pub(crate) fn actor_link(&self, actor: Option<&ActorRef>) -> Markup {
        match actor {
            Some(actor) => {
                let text = actor_text(actor);
                html! { a href={ (self.link("/actors")) "?" (query(&[("actor", &text)])) } { (text) } }
            }
            None => html! { span class="none" { "no actor" } },
        }
    }

    /// A link to the correlation page, or a dash.
    pub(crate) fn correlation_link(&self, id: Option<&str>) -> Markup {
        match id {
            Some(id) => html! {
                a href={ (self.link("/correlations")) "?" (query(&[("id", id)])) } { (id) }
            },
            None => html! { span class="none" { "—" } },
        }
    }

    /// A link to the transaction page.
    pub(crate) fn transaction_link(&self, id: i64, text: Markup) -> Markup {
        html! { a href={ (self.link("/transactions/")) (id) } { (text) } }
    }

    /// A link to a row's history.
    pub(crate) fn row_link(&self, schema: &str, table: &str, pk: &Map<String, Value>) -> Markup {
        let name = format!("{schema}.{table}");
        match key_text(pk) {
            Some(key) => html! {
                a href={ (self.link("/rows")) "?" (query(&[("table", &name), ("key", &key)])) } {
                    code { (key) }
                }
            },
            None => html! { span class="none" { "whole table" } },
        }
    }

    /// The changes of a page as a table, each linking to its transaction, row and actor.
    pub(crate) fn change_table(&self, caption: &str, changes: &[Change]) -> Markup {
        html! {
            @if changes.is_empty() {
                p class="empty" { "No changes." }
            } @else {
                div class="scroll" {
                    table {
                        caption { (caption) }
                        thead { tr {
                            th scope="col" { "Captured" } th scope="col" { "Table" } th scope="col" { "Op" }
                            th scope="col" { "Row" } th scope="col" { "Actor" } th scope="col" { "Action" }
                            th scope="col" { "Changed" } th scope="col" { "Correlation" }
                        } }
                        tbody {
                            @for change in changes {
                                tr {
                                    td { (self.transaction_link(change.transaction_id, time(&change.captured_at))) }
                                    td { (change.table_schema) "." (change.table_name) }
                                    td { span class={ "op op-" (change.op) } { (change.op) } }
                                    td { (self.row_link(&change.table_schema, &change.table_name, &change.table_pk)) }
                                    td { (self.actor_link(change.actor.as_ref())) }
                                    td { (change.action.as_deref().unwrap_or("—")) }
                                    td { (change.changed_fields.join(", ")) }
                                    td { (self.correlation_link(change.correlation_id.as_deref())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The key as `RowKey` parses it back: the value of a one-column key, else a JSON object.
pub(crate) fn key_text(pk: &Map<String, Value>) -> Option<String> {
    let single = |v: &Value| v.as_str().map(str::to_owned);
    match pk.len() {
        0 => None,
        1 => pk
            .values()
            .next()
            .and_then(single)
            .filter(|v| !v.is_empty() && !v.contains(['=', ',']) && !v.starts_with(['{', '"']) && v.trim() == v)
            .or_else(|| Some(Value::Object(pk.clone()).to_string())),
        _ => Some(Value::Object(pk.clone()).to_string()),
    }
}

/// A captured value: text as text, anything else as JSON; a masked column says so instead
/// of showing the placeholder as if it were the value.
pub(crate) fn value(v: &Value, masked: bool) -> Markup {
    if masked {
        return html! { span class="masked" { "masked" } };
    }
    match v {
        Value::Null => html! { span class="none" { "null" } },
        Value::String(s) => html! { code class="value" { (s) } },
        other => html! { code class="value" { (other.to_string()) } },
    }
}

/// A definition list of a row's captured columns.
pub(crate) fn row_data(data: Option<&Value>, masked: &[String], excluded: &[String]) -> Markup {
    html! {
        @match data.and_then(Value::as_object) {
            Some(row) => dl class="row" {
                @for (name, v) in row {
                    dt { (name) }
                    dd { (value(v, masked.contains(name))) }
                }
                @for name in excluded {
                    dt { (name) }
                    dd { span class="excluded" { "not recorded (excluded by policy)" } }
                }
            },
            None => p class="empty" { "No row data." },
        }
    }
}

/// A copy button for `text` (the script copies the `data-copy` value; without script
/// the text stays selectable).
pub(crate) fn copy_button(text: &str, label: &str) -> Markup {
    html! { button type="button" class="copy" data-copy=(text) aria-label={ "Copy " (label) } { "Copy" } }
}
