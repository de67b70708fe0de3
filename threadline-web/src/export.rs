//! Exports: the direct download of the current filter, streamed chunk by chunk from the
//! read core's export (the bytes `threadline export` writes), and the background jobs of
//! the operator.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use maud::html;
use threadline::export::{ExportOptions, Format};
use threadline::read::Filter;

use crate::page::{Ctx, query, respond, route_id, time, time_opt};
use crate::params::{Params, id};
use crate::{Capability, PageError};

fn content_type(format: Format) -> &'static str {
    match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Json => "application/json",
        _ => "application/x-ndjson",
    }
}

fn extension(format: &str) -> &str {
    match format {
        "json" => "json",
        "ndjson" => "ndjson",
        _ => "csv",
    }
}

/// `GET /export?format=csv&<filter>[&max_rows=N]`: a chunked body whose memory stays flat
/// whatever the row count, cut at the surface's row cap.
pub(crate) async fn direct(req: HttpRequest) -> HttpResponse {
    respond(&req, direct_export(&req).await)
}

async fn direct_export(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::Export)?;
    let mut params = Params::query(req)?;
    let format: Format = params.require("format", "the format: csv, json or ndjson")?.parse()?;
    let cap = ctx.surface.export_row_cap;
    let max_rows = match params.take("max_rows") {
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=cap).contains(n))
            .ok_or_else(|| PageError::bad("max_rows", format!("{text:?} is not a number from 1 to {cap}")))?,
        None => cap,
    };
    let filter = params.into_filter()?;
    let export = ctx
        .operator
        .reader()
        .export(&filter, ExportOptions::new(format).max_rows(max_rows))?;
    let conn = ctx.surface.pool.get_owned().await.map_err(|_| PageError::Unavailable)?;
    let chunks = futures_util::stream::unfold(Some((export, conn)), |state| async move {
        let (mut export, mut conn) = state?;
        match export.next_chunk(&mut conn).await {
            Ok(Some(chunk)) => Some((Ok(web::Bytes::from(chunk)), Some((export, conn)))),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(target: "threadline::web", "direct export stopped by an error");
                Some((Err(actix_web::Error::from(error)), None))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type(content_type(format))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"changes.{format}\""),
        ))
        .streaming(chunks.boxed_local()))
}

/// `GET /exports`: the operator's background jobs.
pub(crate) async fn jobs(req: HttpRequest) -> HttpResponse {
    respond(&req, jobs_page(&req).await)
}

async fn jobs_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::BackgroundExport)?;
    Params::query(req)?.finish()?;
    let Some(queue) = &ctx.surface.jobs else {
        return Ok(ctx.page(
            "Exports",
            html! { p class="empty" { "The app configured no background export queue for these pages." } },
        ));
    };
    let mut conn = ctx.surface.conn().await?;
    let jobs = queue.list(&mut conn, Some(ctx.operator.actor())).await?;
    let body = html! {
        p { "Queue a background export from the " a href=(ctx.link("/timeline")) { "timeline" } "'s filter. " a href=(ctx.link("/exports")) { "Refresh" } }
        @if jobs.is_empty() { p class="empty" { "You have no background exports." } } @else {
            div class="scroll" {
                table {
                    caption { "Your background exports, newest first" }
                    thead { tr { th scope="col" { "Job" } th scope="col" { "Filter" } th scope="col" { "Format" } th scope="col" { "State" } th scope="col" { "Rows" } th scope="col" { "Submitted" } th scope="col" { "Expires" } th scope="col" { "File" } } }
                    tbody {
                        @for job in &jobs {
                            tr {
                                td { (job.id) }
                                td { a href={ (ctx.link("/timeline")) "?" (job.filter) } { code { (if job.filter.is_empty() { "(everything)" } else { job.filter.as_str() }) } } }
                                td { (job.format) }
                                td { span class={ "badge state-" (job.state.as_str()) } { (job.state.as_str()) } @if let Some(error) = &job.error { " — " (error) } }
                                td { (job.rows_written) @if job.truncated == Some(true) { " (cut at the row cap)" } }
                                td { (time(&job.submitted_at)) }
                                td { (time_opt(job.expires_at.as_ref())) }
                                td { @if job.state != threadline::jobs::JobState::Completed { "—" }
                                    @else if job.is_folder() { "A folder of Parquet files: " code { "threadline export-jobs fetch " (job.id) } }
                                    @else { a href={ (ctx.link(&format!("/exports/{}/download", job.id))) } download { "Download" } } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("Exports", body))
}

/// `POST /exports/request`: queues a background export of a filter for the operator
/// (the queue records the `export_requested` action).
pub(crate) async fn request(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(&req, request_export(&req, &body).await)
}

async fn request_export(req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut form = Params::form(body)?;
    let token = form.take("csrf").unwrap_or_default();
    if !ctx.surface.csrf.verify(ctx.operator.actor(), &token) {
        return Err(PageError::Csrf);
    }
    ctx.operator.check(Capability::BackgroundExport)?;
    let queue = ctx.surface.jobs.as_ref().ok_or(PageError::NotFound("export queue"))?;
    let format: Format = form.require("format", "the format: csv, json or ndjson")?.parse()?;
    let filter = Filter::from_query_string(&form.take("query").unwrap_or_default())?;
    form.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let job = queue
        .submit(
            &mut conn,
            ctx.operator.actor(),
            &filter,
            format,
            Some(ctx.surface.export_row_cap),
        )
        .await?;
    tracing::info!(target: "threadline::web", job, "background export requested");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, ctx.link("/exports")))
        .finish())
}

/// `GET /exports/{id}/download`: the file of one of the operator's completed jobs; 404
/// for another operator's job, as for a missing one.
pub(crate) async fn download(req: HttpRequest) -> HttpResponse {
    respond(&req, download_job(&req, route_id(&req)).await)
}

async fn download_job(req: &HttpRequest, path: &str) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::BackgroundExport)?;
    let job_id = id("job id", path)?;
    Params::query(req)?.finish()?;
    let queue = ctx.surface.jobs.as_ref().ok_or(PageError::NotFound("export job"))?;
    let mut conn = ctx.surface.conn().await?;
    let job = queue.status(&mut conn, job_id, ctx.operator.actor()).await?;
    let bytes = queue.open(&mut conn, job_id, ctx.operator.actor()).await?;
    let format: Format = job.format.parse()?;
    let name = format!("export-{job_id}.{}", extension(&job.format));
    Ok(HttpResponse::Ok()
        .content_type(content_type(format))
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")))
        .streaming(bytes.map(|chunk| chunk.map_err(actix_web::Error::from))))
}

/// The query of a direct export of `filter`, for links.
pub(crate) fn export_query(format: &str, canonical: &str) -> String {
    let head = query(&[("format", format)]);
    if canonical.is_empty() {
        head
    } else {
        format!("{head}&{canonical}")
    }
}
