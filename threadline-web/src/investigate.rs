//! The investigation screens: home, timeline, transaction, row history (with as-of),
//! actor and correlation. Each is one read of the read core under the operator's
//! restriction, so a row outside the scope answers 404 exactly as a missing one does.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{TimeDelta, Utc};
use maud::{Markup, html};
use threadline::health::Coverage;
use threadline::jobs::JobState;
use threadline::read::{ActorFilter, AsOf, FieldValue, Filter, RowKey, TableName};
use threadline::retention::{self, RunStatus};
use threadline::views;

use crate::page::{Ctx, copy_button, query, respond, route_id, row_data, time, value};
use crate::params::{Params, id, local_value};
use crate::{COUNT_CAP, Capability, PageError, TIMELINE_PAGE_SIZE};

/// Changes a transaction page shows.
const TRANSACTION_PAGE_SIZE: usize = 100;
/// Versions a row history page shows.
const HISTORY_PAGE_SIZE: usize = 50;
/// Transactions an actor page shows.
const ACTOR_PAGE_SIZE: usize = 50;

/// `GET` of the mount itself: to the home page.
pub(crate) async fn to_home(req: HttpRequest) -> HttpResponse {
    let to = format!("{}/", crate::page::base(&req));
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// `GET /`: health chips, find a row, find a correlation id, recent saved views.
pub(crate) async fn home(req: HttpRequest) -> HttpResponse {
    respond(&req, home_page(&req).await)
}

async fn home_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    Params::query(req)?.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let health = ctx.surface.health.run(&mut conn).await.ok();
    let tables: Vec<String> = health
        .iter()
        .flat_map(|report| &report.tables)
        .filter(|t| t.coverage == Coverage::Covered)
        .filter(|t| {
            t.table
                .parse::<TableName>()
                .is_ok_and(|table| ctx.operator.restriction().allows_table(&table))
        })
        .map(|t| t.table.clone())
        .collect();
    let mut chips: Vec<Markup> = Vec::new();
    if let Some(report) = health.as_ref().filter(|_| ctx.operator.can(Capability::Coverage)) {
        let (_, uncovered, _) = report.counts();
        let class = if uncovered == 0 { "chip ok" } else { "chip bad" };
        chips.push(html! {
                a class=(class) href=(ctx.link("/coverage")) {
                    @if uncovered == 0 { "Every table is audited" } @else { (uncovered) " uncovered " (plural(uncovered, "table", "tables")) }
                }
            });
    }
    if let Some(jobs) = ctx
        .surface
        .jobs
        .as_ref()
        .filter(|_| ctx.operator.can(Capability::BackgroundExport))
    {
        let failed = jobs
            .list(&mut conn, Some(ctx.operator.actor()))
            .await?
            .iter()
            .filter(|j| j.state == JobState::Failed)
            .count();
        if failed > 0 {
            chips.push(html! {
                    a class="chip bad" href=(ctx.link("/exports")) { (failed) " failed " (plural(failed, "export needs", "exports need")) " attention" }
                });
        }
    }
    let last_run = match ctx.operator.can(Capability::RetentionView) {
        true => retention::runs(&mut conn, 1).await?.into_iter().next(),
        false => None,
    };
    if last_run.is_some_and(|run| run.status == RunStatus::Failed) {
        chips.push(html! { a class="chip bad" href=(ctx.link("/retention")) { "Latest retention run failed" } });
    }
    let saved = views::list(&mut conn, ctx.operator.actor()).await.unwrap_or_default();
    let body = html! {
        p class="lead" { "Follow what happened: who changed which row, when, in which request." }
        @if !chips.is_empty() {
            section aria-labelledby="health-heading" {
                h2 id="health-heading" { "Health" }
                ul class="chips" { @for chip in &chips { li { (chip) } } }
            }
        }
        div class="cards" {
            section aria-labelledby="row-heading" class="card" {
                h2 id="row-heading" { "Find a row" }
                form method="get" action=(ctx.link("/rows")) {
                    label for="row-table" { "Table" }
                    @if tables.is_empty() {
                        input id="row-table" name="table" required placeholder="public.posts";
                    } @else {
                        select id="row-table" name="table" required {
                            @for table in &tables { option value=(table) { (table) } }
                        }
                    }
                    label for="row-key" { "Key" }
                    input id="row-key" name="key" required placeholder="42 or tenant=acme,number=7";
                    button type="submit" { "Open row history" }
                }
            }
            section aria-labelledby="correlation-heading" class="card" {
                h2 id="correlation-heading" { "Find a correlation id" }
                form method="get" action=(ctx.link("/correlations")) {
                    label for="correlation-id" { "Correlation id" }
                    input id="correlation-id" name="id" required maxlength=(threadline::MAX_LABEL_BYTES);
                    button type="submit" { "Open the flow" }
                }
            }
            section aria-labelledby="timeline-heading" class="card" {
                h2 id="timeline-heading" { "Browse" }
                p { a href=(ctx.link("/timeline")) { "The timeline of the last 24 hours" } }
            }
        }
        section aria-labelledby="views-heading" {
            h2 id="views-heading" { "Recent saved views" }
            @if saved.is_empty() {
                p class="empty" { "No saved views yet: save one from the timeline." }
            } @else {
                ul { @for view in saved.iter().take(6) {
                    li { a href={ (ctx.link("/timeline")) "?" (view.query) } { (view.name) } }
                } }
            }
        }
    };
    Ok(ctx.page("Home", body))
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// `GET /timeline`: filters, a capped count, keyset pages.
pub(crate) async fn timeline(req: HttpRequest) -> HttpResponse {
    respond(&req, timeline_page(&req).await)
}

async fn timeline_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut params = Params::query(req)?;
    let cursor = params.cursor()?;
    if params.is_empty() && cursor.is_none() {
        let from = local_value(&(Utc::now() - TimeDelta::hours(24)));
        let to = format!("{}?{}", ctx.link("/timeline"), query(&[("from", &from)]));
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish());
    }
    let filter = params.into_filter()?;
    let reader = ctx.operator.reader();
    let mut conn = ctx.surface.conn().await?;
    let count = reader.count_matching(&mut conn, &filter, COUNT_CAP).await?;
    let page = reader
        .timeline_page(&mut conn, &filter, cursor.as_ref(), TIMELINE_PAGE_SIZE)
        .await?;
    let canonical = filter.to_query_string();
    let body = html! {
        (filter_form(&ctx, &filter))
        p class="count" role="status" {
            @if count.capped { "More than " (thousands(count.count)) " changes match." }
            @else { (thousands(count.count)) " " (if count.count == 1 { "change matches." } else { "changes match." }) }
            @if cursor.is_some() { " Showing an older page." }
        }
        (ctx.change_table("Matching changes, newest first", &page.entries))
        nav aria-label="Pages" class="pager" {
            @if cursor.is_some() { a href={ (ctx.link("/timeline")) "?" (canonical) } { "Newest" } }
            @if let Some(next) = &page.next_cursor {
                a href={ (ctx.link("/timeline")) "?" (canonical) "&" (query(&[("cursor", &next.to_string())])) } { "Older" }
            }
        }
        (actions(&ctx, &canonical))
    };
    Ok(ctx.page("Timeline", body))
}

/// `12 345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{a0}');
        }
        out.push(c);
    }
    out
}

/// The timeline's filter form, filled with the current filter.
fn filter_form(ctx: &Ctx, filter: &Filter) -> Markup {
    let pairs = filter.pairs();
    let current = |key: &str| -> String {
        let value = pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        match key {
            "from" | "to" => value
                .and_then(|v| chrono::DateTime::parse_from_rfc3339(&v).ok())
                .map(|t| local_value(&t.with_timezone(&Utc)))
                .unwrap_or_default(),
            _ => value.unwrap_or_default(),
        }
    };
    let text_fields = [
        ("table", "Table", "public.posts"),
        ("actor", "Actor", "user:42 or admin"),
        ("request_id", "Request id", ""),
        ("correlation_id", "Correlation id", ""),
        ("action", "Action", "post_created"),
        ("tenant_id", "Tenant", ""),
    ];
    let op = current("op");
    html! {
        form method="get" action=(ctx.link("/timeline")) class="filters" aria-label="Filter the timeline" {
            @for (key, label, hint) in text_fields {
                div class="field" {
                    label for={ "f-" (key) } { (label) }
                    input id={ "f-" (key) } name=(key) value=(current(key)) placeholder=(hint);
                }
            }
            div class="field" {
                label for="f-op" { "Operation" }
                select id="f-op" name="op" {
                    option value="" selected[op.is_empty()] { "any" }
                    @for name in ["insert", "update", "delete", "truncate"] {
                        option value=(name) selected[op == name] { (name) }
                    }
                }
            }
            div class="field" {
                label for="f-from" { "From (UTC)" }
                input id="f-from" type="datetime-local" step="1" name="from" value=(current("from"));
            }
            div class="field" {
                label for="f-to" { "To (UTC)" }
                input id="f-to" type="datetime-local" step="1" name="to" value=(current("to"));
            }
            div class="buttons" { button type="submit" { "Apply" } }
        }
    }
}

/// Exports, background export and save view, for the current filter.
fn actions(ctx: &Ctx, canonical: &str) -> Markup {
    html! {
        section aria-labelledby="actions-heading" class="actions" {
            h2 id="actions-heading" { "Take this filter elsewhere" }
            @if ctx.operator.can(Capability::Export) {
                p { "Download: "
                    @for format in ["csv", "json", "ndjson"] {
                        a class="button" download href={ (ctx.link("/export")) "?" (crate::export::export_query(format, canonical)) } { (format.to_uppercase()) } " "
                    }
                }
            }
            @if ctx.operator.can(Capability::BackgroundExport) && ctx.surface.jobs.is_some() {
                form method="post" action=(ctx.link("/exports/request")) class="inline" {
                    (ctx.token_field())
                    input type="hidden" name="query" value=(canonical);
                    label for="bg-format" { "Background export as" }
                    select id="bg-format" name="format" {
                        option value="csv" { "CSV" } option value="json" { "JSON" } option value="ndjson" { "NDJSON" }
                    }
                    button type="submit" { "Queue export" }
                }
            }
            form method="post" action=(ctx.link("/views/save")) class="inline" {
                (ctx.token_field())
                input type="hidden" name="query" value=(canonical);
                label for="view-name" { "Save this filter as" }
                input id="view-name" name="name" required maxlength=(threadline::views::MAX_NAME_BYTES);
                button type="submit" { "Save view" }
            }
            p { "Link to this view: " code { (ctx.link("/timeline")) "?" (canonical) } " " (copy_button(&format!("{}?{canonical}", ctx.link("/timeline")), "the link")) }
        }
    }
}

/// `GET /transactions/{id}`: the incident bundle with per-field diffs.
pub(crate) async fn transaction(req: HttpRequest) -> HttpResponse {
    respond(&req, transaction_page(&req, route_id(&req)).await)
}

async fn transaction_page(req: &HttpRequest, path: &str) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let transaction_id = id("transaction id", path)?;
    let mut params = Params::query(req)?;
    let cursor = params.cursor()?;
    params.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let incident = ctx
        .operator
        .reader()
        .incident_bundle(&mut conn, transaction_id, cursor.as_ref(), TRANSACTION_PAGE_SIZE)
        .await?;
    let t = &incident.transaction;
    let here = ctx.link(&format!("/transactions/{transaction_id}"));
    let body = html! {
        dl class="facts" {
            dt { "Transaction" } dd { code { (t.id) } " " (copy_button(&t.id.to_string(), "the transaction id")) " (PostgreSQL xid " code { (t.xact_id) } ")" }
            dt { "Occurred" } dd { (time(&t.occurred_at)) }
            dt { "Actor" } dd { (ctx.actor_link(t.actor.as_ref())) }
            dt { "Request" } dd { (t.request_id.as_deref().unwrap_or("—")) }
            dt { "Correlation" } dd { (ctx.correlation_link(t.correlation_id.as_deref())) }
            dt { "Tenant" } dd { (t.tenant_id.as_deref().unwrap_or("—")) }
            dt { "Source" } dd { (t.source.as_deref().unwrap_or("—")) }
            @if let Some(meta) = &t.meta { dt { "Meta" } dd { (value(meta, false)) } }
        }
        section aria-labelledby="action-heading" {
            h2 id="action-heading" { "Action" }
            @match &t.action {
                Some(action) => dl class="facts" {
                    dt { "Name" } dd { strong { (action.name) } " (" (action.status) ")" }
                    @if let Some(verb) = &action.verb { dt { "Verb" } dd { (verb) } }
                    @if let Some(category) = &action.category { dt { "Category" } dd { (category) } }
                    @if let Some(reason) = &action.reason { dt { "Reason" } dd { (reason) } }
                    @if let Some(comment) = &action.comment { dt { "Comment" } dd { (comment) } }
                    @if let Some(job) = &action.job_id { dt { "Job" } dd { (job) } }
                    dt { "Recorded" } dd { (time(&action.inserted_at)) }
                },
                None => p class="empty" { "No action was recorded: a change made outside a named action (a console, a migration)." },
            }
        }
        section aria-labelledby="changes-heading" {
            h2 id="changes-heading" { "Changes" }
            @if incident.changes.entries.is_empty() { p class="empty" { "No changes on this page." } }
            @for diffed in &incident.changes.entries {
                @let change = &diffed.change;
                article class="change" aria-labelledby={ "change-" (change.id) } {
                    h3 id={ "change-" (change.id) } {
                        span class={ "op op-" (change.op) } { (change.op) } " "
                        (change.table_schema) "." (change.table_name) " "
                        (ctx.row_link(&change.table_schema, &change.table_name, &change.table_pk))
                    }
                    @if diffed.fields.is_empty() {
                        p class="empty" { @if change.op == threadline::read::Op::Truncate { "The whole table was emptied." } @else { "No column changed." } }
                    } @else {
                        div class="scroll" {
                            table class="diff" {
                                caption { "Fields of change " (change.id) }
                                thead { tr { th scope="col" { "Field" } th scope="col" { "Before" } th scope="col" { "After" } } }
                                tbody {
                                    @for field in &diffed.fields {
                                        @let masked = change.masked_fields.contains(&field.name);
                                        tr {
                                            th scope="row" { (field.name) }
                                            td { (side(&field.before, masked)) }
                                            td { (side(&field.after, masked)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if !change.excluded_fields.is_empty() {
                        p class="note" { "Not recorded (excluded by policy): " (change.excluded_fields.join(", ")) }
                    }
                }
            }
            nav aria-label="Pages" class="pager" {
                @if cursor.is_some() { a href=(here) { "First changes" } }
                @if let Some(next) = &incident.changes.next_cursor {
                    a href={ (here) "?" (query(&[("cursor", &next.to_string())])) } { "More changes" }
                }
            }
        }
    };
    Ok(ctx.page(&format!("Transaction {transaction_id}"), body))
}

/// One side of a field's diff.
fn side(v: &FieldValue, masked: bool) -> Markup {
    match v {
        FieldValue::Value(v) => value(v, masked),
        FieldValue::Absent => html! { span class="none" { "—" } },
        FieldValue::NotKept => html! { span class="not-kept" { "prior value not kept" } },
        _ => html! { span class="none" { "a value this page does not know how to show" } },
    }
}

/// `GET /rows?table=&key=&at=`: a row's versions, newest first, and the row as of a time.
pub(crate) async fn row(req: HttpRequest) -> HttpResponse {
    respond(&req, row_page(&req).await)
}

async fn row_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut params = Params::query(req)?;
    let table_text = params.require("table", "the table, such as public.posts")?;
    let key_text = params.require("key", "the row's key, such as 42 or tenant=acme,number=7")?;
    let at = params.take("at").map(|t| crate::params::time("at", &t)).transpose()?;
    let cursor = params.cursor()?;
    params.finish()?;
    let table: TableName = table_text.parse()?;
    let key: RowKey = key_text.parse()?;
    let reader = ctx.operator.reader();
    let mut conn = ctx.surface.conn().await?;
    let history = reader
        .row_history_page(&mut conn, &table, &key, cursor.as_ref(), HISTORY_PAGE_SIZE)
        .await?;
    let as_of = match at {
        Some(at) => Some((at, reader.as_of(&mut conn, &table, &key, at).await?)),
        None => None,
    };
    let table_name = table.to_string();
    let here = format!(
        "{}?{}",
        ctx.link("/rows"),
        query(&[("table", &table_name), ("key", &key_text)])
    );
    let body = html! {
        section aria-labelledby="asof-heading" {
            h2 id="asof-heading" { "The row at a moment" }
            form method="get" action=(ctx.link("/rows")) class="inline" {
                input type="hidden" name="table" value=(table_name);
                input type="hidden" name="key" value=(key_text);
                label for="asof-at" { "As of (UTC)" }
                input id="asof-at" type="datetime-local" step="1" name="at" required value=(at.as_ref().map(local_value).unwrap_or_default());
                button type="submit" { "Show" }
            }
            @if let Some((at, found)) = &as_of {
                div class="asof" role="status" {
                    @match found {
                        AsOf::Found(change) => {
                            p { "At " (time(at)) ", the row was as the " (change.op) " of " (ctx.transaction_link(change.transaction_id, time(&change.captured_at))) " left it:" }
                            (row_data(change.data.as_ref(), &change.masked_fields, &change.excluded_fields))
                        }
                        AsOf::Deleted { at: deleted } => p { "At " (time(at)) ", the row had been deleted: deleted at " (time(deleted)) "." },
                        AsOf::BeforeHorizon => p { "At " (time(at)) ", nothing was captured for this row yet: it did not exist, or predates the audit trail." },
                        _ => p { "The read core returned a state this page does not know." },
                    }
                }
            }
        }
        section aria-labelledby="history-heading" {
            h2 id="history-heading" { "Versions, newest first" }
            ol class="versions" {
                @for change in &history.entries {
                    li {
                        p {
                            span class={ "op op-" (change.op) } { (change.op) } " "
                            (ctx.transaction_link(change.transaction_id, time(&change.captured_at)))
                            " by " (ctx.actor_link(change.actor.as_ref()))
                            @if let Some(action) = &change.action { " in " strong { (action) } }
                            @if !change.changed_fields.is_empty() { " · changed " (change.changed_fields.join(", ")) }
                        }
                        details {
                            summary { "The row " (if change.op == threadline::read::Op::Delete { "before" } else { "after" }) " this change" }
                            (row_data(change.data.as_ref(), &change.masked_fields, &change.excluded_fields))
                        }
                    }
                }
            }
            nav aria-label="Pages" class="pager" {
                @if cursor.is_some() { a href=(here) { "Newest" } }
                @if let Some(next) = &history.next_cursor {
                    a href={ (here) "&" (query(&[("cursor", &next.to_string())])) } { "Older" }
                }
            }
        }
    };
    Ok(ctx.page(&format!("Row {key_text} of {table_name}"), body))
}

/// `GET /actors?actor=type:id`: an actor's transactions, newest first.
pub(crate) async fn actor(req: HttpRequest) -> HttpResponse {
    respond(&req, actor_page(&req).await)
}

async fn actor_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut params = Params::query(req)?;
    let actor_text = params.require("actor", "the actor, as type:id (user:42) or a type (admin)")?;
    let cursor = params.cursor()?;
    params.finish()?;
    let actor = ActorFilter::parse(&actor_text)?;
    let mut conn = ctx.surface.conn().await?;
    let page = ctx
        .operator
        .reader()
        .actor_history(&mut conn, &actor, cursor.as_ref(), ACTOR_PAGE_SIZE)
        .await?;
    let here = format!("{}?{}", ctx.link("/actors"), query(&[("actor", &actor.to_string())]));
    let body = html! {
        p { a href={ (ctx.link("/timeline")) "?" (query(&[("actor", &actor.to_string())])) } { "Every change of this actor in the timeline" } }
        @if page.entries.is_empty() {
            p class="empty" { "No transactions." }
        } @else {
            div class="scroll" {
                table {
                    caption { "Transactions, newest first" }
                    thead { tr { th scope="col" { "Occurred" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Request" } th scope="col" { "Correlation" } th scope="col" { "Tenant" } } }
                    tbody {
                        @for t in &page.entries {
                            tr {
                                td { (ctx.transaction_link(t.id, time(&t.occurred_at))) }
                                td { (ctx.actor_link(t.actor.as_ref())) }
                                td { (t.action.as_ref().map_or("—", |a| a.name.as_str())) }
                                td { (t.request_id.as_deref().unwrap_or("—")) }
                                td { (ctx.correlation_link(t.correlation_id.as_deref())) }
                                td { (t.tenant_id.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
        nav aria-label="Pages" class="pager" {
            @if cursor.is_some() { a href=(here) { "Newest" } }
            @if let Some(next) = &page.next_cursor { a href={ (here) "&" (query(&[("cursor", &next.to_string())])) } { "Older" } }
        }
    };
    Ok(ctx.page(&format!("Actor {actor}"), body))
}

/// `GET /correlations?id=`: a business flow's actions and changes.
pub(crate) async fn correlation(req: HttpRequest) -> HttpResponse {
    respond(&req, correlation_page(&req).await)
}

async fn correlation_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut params = Params::query(req)?;
    let id = params.require("id", "the correlation id")?;
    let cursor = params.cursor()?;
    params.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let bundle = ctx
        .operator
        .reader()
        .correlation_bundle(&mut conn, &id, cursor.as_ref(), TIMELINE_PAGE_SIZE)
        .await?;
    let here = format!("{}?{}", ctx.link("/correlations"), query(&[("id", &id)]));
    let body = html! {
        section aria-labelledby="actions-heading" {
            h2 id="actions-heading" { "Actions, oldest first" }
            @if bundle.actions.is_empty() { p class="empty" { "No action was recorded with this id." } }
            @else {
                ol class="versions" {
                    @for action in &bundle.actions {
                        li { (time(&action.inserted_at)) " " strong { (action.name) } " (" (action.status) ") by " (ctx.actor_link(action.actor.as_ref()))
                            @if let Some(reason) = &action.reason { " — " (reason) } }
                    }
                }
                @if bundle.actions_truncated { p class="note" { "More actions exist than are shown." } }
            }
        }
        section aria-labelledby="flow-changes-heading" {
            h2 id="flow-changes-heading" { "Changes, newest first" }
            (ctx.change_table("Changes of the flow", &bundle.changes.entries))
            nav aria-label="Pages" class="pager" {
                @if cursor.is_some() { a href=(here) { "Newest" } }
                @if let Some(next) = &bundle.changes.next_cursor { a href={ (here) "&" (query(&[("cursor", &next.to_string())])) } { "Older" } }
            }
        }
    };
    Ok(ctx.page(&format!("Correlation {id}"), body))
}
