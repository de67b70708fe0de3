//! Saved views: an operator's named timeline filters. Saving and deleting are form posts
//! with the operator's CSRF token, each recorded as the operator's action.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use threadline::read::Filter;
use threadline::{Action, AuditContext, views as saved};

use crate::PageError;
use crate::page::{Ctx, respond, time};
use crate::params::Params;

/// `GET /views`: the operator's saved views.
pub(crate) async fn list(req: HttpRequest) -> HttpResponse {
    respond(&req, list_page(&req).await)
}

async fn list_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    Params::query(req)?.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let views = saved::list(&mut conn, ctx.operator.actor()).await?;
    let body = html! {
        @if views.is_empty() { p class="empty" { "No saved views yet: filter the " a href=(ctx.link("/timeline")) { "timeline" } " and save it." } } @else {
            div class="scroll" {
                table {
                    caption { "Your saved views" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Filter" } th scope="col" { "Saved" } th scope="col" { span class="visually-hidden" { "Delete" } } } }
                    tbody {
                        @for view in &views {
                            tr {
                                td { a href={ (ctx.link("/timeline")) "?" (view.query) } { (view.name) } }
                                td { code { (view.query) } }
                                td { (time(&view.updated_at)) }
                                td {
                                    form method="post" action=(ctx.link("/views/delete")) {
                                        (ctx.token_field())
                                        input type="hidden" name="name" value=(view.name);
                                        button type="submit" aria-label={ "Delete the view " (view.name) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("Saved views", body))
}

/// Checks a post's token and returns its remaining fields.
fn checked_form(ctx: &Ctx, body: &[u8]) -> Result<Params, PageError> {
    let mut form = Params::form(body)?;
    let token = form.take("csrf").unwrap_or_default();
    if !ctx.surface.csrf.verify(ctx.operator.actor(), &token) {
        return Err(PageError::Csrf);
    }
    Ok(form)
}

/// The operator's audit context for an action of the surface.
fn audit(ctx: &Ctx, action: &str, name: &str) -> Result<AuditContext, PageError> {
    let action = Action::new(action)?.with_reason(format!("saved view {name}"))?;
    Ok(AuditContext::new()
        .with_actor(ctx.operator.actor().clone())
        .with_action(action))
}

fn to_views(ctx: &Ctx) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, ctx.link("/views")))
        .finish()
}

/// `POST /views/save`: saves (or replaces) a view of the operator.
pub(crate) async fn save(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(&req, save_view(&req, &body).await)
}

async fn save_view(req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut form = checked_form(&ctx, body)?;
    let name = form.require("name", "the view's name")?;
    let filter = Filter::from_query_string(&form.take("query").unwrap_or_default())?;
    form.finish()?;
    let audit = audit(&ctx, "audit_view_saved", &name)?;
    let mut conn = ctx.surface.conn().await?;
    let owner = ctx.operator.actor().clone();
    let saved = threadline::transaction(&mut conn, &audit, async |conn| {
        saved::save(conn, &owner, &name, &filter).await
    })
    .await?;
    tracing::info!(target: "threadline::web", view = saved.value.id, "view saved");
    Ok(to_views(&ctx))
}

/// `POST /views/delete`: deletes a view of the operator.
pub(crate) async fn delete(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(&req, delete_view(&req, &body).await)
}

async fn delete_view(req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut form = checked_form(&ctx, body)?;
    let name = form.require("name", "the view's name")?;
    form.finish()?;
    let audit = audit(&ctx, "audit_view_deleted", &name)?;
    let mut conn = ctx.surface.conn().await?;
    let owner = ctx.operator.actor().clone();
    let _deleted: threadline::Committed<()> =
        threadline::transaction(&mut conn, &audit, async |conn| saved::delete(conn, &owner, &name).await).await?;
    Ok(to_views(&ctx))
}
