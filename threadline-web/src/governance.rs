//! The governance screens: coverage, policy drift, retention runs with "prune now", and
//! evidence. Each needs its own capability.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use threadline::evidence::EvidenceQuery;
use threadline::health::Coverage;
use threadline::policy::PolicyStatus;
use threadline::retention;
use threadline::{Action, AuditContext};

use crate::page::{Ctx, respond, time, time_opt, value};
use crate::params::Params;
use crate::{Capability, PageError};

/// Retention runs the screen lists.
const RUNS_SHOWN: usize = 40;
/// Evidence records the screen lists.
const EVIDENCE_SHOWN: usize = 100;

/// `GET /coverage`: every table's coverage and every finding with its fix.
pub(crate) async fn coverage(req: HttpRequest) -> HttpResponse {
    respond(&req, coverage_page(&req).await)
}

async fn coverage_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::Coverage)?;
    Params::query(req)?.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let report = ctx.surface.health.run(&mut conn).await?;
    let (covered, uncovered, expected) = report.counts();
    let body = html! {
        p role="status" { (covered) " covered, " (uncovered) " uncovered, " (expected) " expected uncovered; schema version " (report.schema_version) "." }
        div class="scroll" {
            table {
                caption { "Tables" }
                thead { tr { th scope="col" { "Table" } th scope="col" { "Coverage" } } }
                tbody {
                    @for table in &report.tables {
                        @let (class, text) = match table.coverage {
                            Coverage::Covered => ("ok", "covered"),
                            Coverage::Uncovered => ("bad", "UNCOVERED"),
                            _ => ("muted", "expected uncovered"),
                        };
                        tr { td { (table.table) } td { span class={ "badge " (class) } { (text) } } }
                    }
                }
            }
        }
        h2 { "Findings" }
        @if report.findings.is_empty() { p class="empty" { "No findings: capture is whole." } }
        @for finding in &report.findings {
            article class="finding" {
                h3 { span class={ "badge " (if finding.severity == threadline::health::Severity::Error { "bad" } else { "warn" }) } { (format!("{:?}", finding.severity).to_lowercase()) } " " code { (finding.code) } @if let Some(table) = &finding.table { " on " (table) } }
                p { (finding.detail) }
                p { "Fix:" }
                pre { code { (finding.fix) } }
            }
        }
    };
    Ok(ctx.page("Coverage", body))
}

/// `GET /policy`: the declared policies against the deployed ones, never a value.
pub(crate) async fn policy(req: HttpRequest) -> HttpResponse {
    respond(&req, policy_page(&req).await)
}

async fn policy_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::Policy)?;
    Params::query(req)?.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let report = ctx.surface.policy.run(&mut conn).await?;
    let body = html! {
        p role="status" {
            (report.count(PolicyStatus::Matches)) " match, " (report.count(PolicyStatus::Differs)) " differ, "
            (report.count(PolicyStatus::DeclaredNotDeployed)) " not deployed, " (report.count(PolicyStatus::DeployedNotDeclared)) " not declared."
        }
        div class="scroll" {
            table {
                caption { "Capture policies by table" }
                thead { tr { th scope="col" { "Table" } th scope="col" { "Status" } th scope="col" { "Differences" } } }
                tbody {
                    @for table in &report.tables {
                        @let (class, text) = match table.status {
                            PolicyStatus::Matches => ("ok", "matches"),
                            PolicyStatus::Differs => ("bad", "DIFFERS"),
                            PolicyStatus::DeclaredNotDeployed => ("bad", "NOT DEPLOYED"),
                            _ => ("warn", "NOT DECLARED"),
                        };
                        tr {
                            td { (table.table) }
                            td { span class={ "badge " (class) } { (text) } }
                            td { ul { @for difference in &table.differences {
                                @for line in difference.explain("the code", "the database") { li { (line) } }
                            } } }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page("Policy drift", body))
}

/// `GET /retention`: the newest runs, and "prune now" when granted.
pub(crate) async fn retention(req: HttpRequest) -> HttpResponse {
    respond(&req, retention_page(&req).await)
}

async fn retention_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::RetentionView)?;
    Params::query(req)?.finish()?;
    let mut conn = ctx.surface.conn().await?;
    let runs = retention::runs(&mut conn, RUNS_SHOWN).await?;
    let horizon = retention::horizon(&mut conn).await?;
    let body = html! {
        p { "The trail starts at " (time_opt(horizon.as_ref())) ". " a href=(ctx.link("/retention")) { "Refresh" } }
        @if runs.is_empty() { p class="empty" { "No retention run yet." } } @else {
            div class="scroll" {
                table {
                    caption { "Retention runs, newest first" }
                    thead { tr { th scope="col" { "Run" } th scope="col" { "Started" } th scope="col" { "Finished" } th scope="col" { "Status" } th scope="col" { "Cutoff" } th scope="col" { "Changes deleted" } th scope="col" { "Transactions deleted" } th scope="col" { "Error" } } }
                    tbody {
                        @for run in &runs {
                            tr {
                                td { (run.id) } td { (time(&run.started_at)) } td { (time_opt(run.finished_at.as_ref())) }
                                td { span class={ "badge " (if run.status == retention::RunStatus::Failed { "bad" } else { "ok" }) } { (run.status.as_str()) } @if run.more_left { " (more left)" } }
                                td { (time(&run.cutoff)) } td { (run.changes_deleted) } td { (run.transactions_deleted) }
                                td { (run.error.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        }
        @if ctx.operator.can(Capability::RetentionPrune) {
            @if let Some((name, _)) = &ctx.surface.retention {
                section aria-labelledby="prune-heading" class="danger" {
                    h2 id="prune-heading" { "Prune now" }
                    p { "Deletes every change older than the policy's window, for good. Type the policy's name, " code { (name) } ", to confirm." }
                    form method="post" action=(ctx.link("/retention/prune")) class="inline" {
                        (ctx.token_field())
                        label for="prune-confirm" { "Policy name" }
                        input id="prune-confirm" name="confirm" required autocomplete="off";
                        button type="submit" class="danger" { "Prune now" }
                    }
                }
            } @else {
                p class="note" { "The app configured no retention policy for the pages, so they cannot prune." }
            }
        }
    };
    Ok(ctx.page("Retention", body))
}

/// `POST /retention/prune`: records the operator's action, then starts the purge in the
/// background.
pub(crate) async fn prune(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    respond(&req, prune_now(&req, &body).await)
}

async fn prune_now(req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open(req)?;
    let mut form = Params::form(body)?;
    let token = form.take("csrf").unwrap_or_default();
    if !ctx.surface.csrf.verify(ctx.operator.actor(), &token) {
        return Err(PageError::Csrf);
    }
    ctx.operator.check(Capability::RetentionPrune)?;
    let (name, purge) = ctx
        .surface
        .retention
        .clone()
        .ok_or(PageError::NotFound("retention policy"))?;
    let confirm = form.require("confirm", "the policy's name")?;
    form.finish()?;
    if confirm.trim() != name {
        return Err(PageError::bad(
            "confirm",
            format!("type the policy's name exactly, {name:?}, to prune"),
        ));
    }
    let mut conn = ctx.surface.conn().await?;
    let audit = AuditContext::new().with_actor(ctx.operator.actor().clone());
    let action = Action::new("retention_prune_requested")?.with_reason(format!("prune now of policy {name}"))?;
    threadline::record_action(&mut conn, &audit, &action).await?;
    drop(conn);
    let pool = ctx.surface.pool.clone();
    actix_web::rt::spawn(async move {
        let outcome = match pool.get_owned().await {
            Ok(mut conn) => purge.execute(&mut conn, |_| {}).await.map(|_| ()),
            Err(error) => Err(threadline::Error::Pool(Box::new(error))),
        };
        if let Err(error) = outcome {
            tracing::warn!(target: "threadline::web", locked = matches!(error, threadline::Error::Locked(_)), "prune now did not run");
        }
    });
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, ctx.link("/retention")))
        .finish())
}

/// `GET /evidence`: the newest evidence records.
pub(crate) async fn evidence(req: HttpRequest) -> HttpResponse {
    respond(&req, evidence_page(&req).await)
}

async fn evidence_page(req: &HttpRequest) -> Result<HttpResponse, PageError> {
    let ctx = Ctx::open_for(req, Capability::Evidence)?;
    let mut params = Params::query(req)?;
    let subject = params.take("subject");
    params.finish()?;
    let mut query = EvidenceQuery::new().history().limit(EVIDENCE_SHOWN);
    if let Some(subject) = &subject {
        query = query.subject(subject.clone());
    }
    let mut conn = ctx.surface.conn().await?;
    let records = query.run(&mut conn).await?;
    let body = html! {
        form method="get" action=(ctx.link("/evidence")) class="inline" {
            label for="ev-subject" { "Subject" }
            input id="ev-subject" name="subject" value=(subject.clone().unwrap_or_default());
            button type="submit" { "Filter" }
        }
        @if records.is_empty() { p class="empty" { "No evidence recorded." } }
        @for record in &records {
            article class="finding" {
                h3 { span class={ "badge " (match record.verdict { threadline::evidence::Verdict::Proven => "ok", threadline::evidence::Verdict::Inferred => "warn", _ => "bad" }) } { (record.verdict.as_str()) } " " (record.kind) ": " (record.subject) }
                p { (record.claim) }
                p class="note" { "Recorded " (time(&record.recorded_at)) " by " (ctx.actor_link(Some(&record.recorded_by))) " as role " code { (record.recorded_role) } }
                details { summary { "Payload" } (value(&record.payload, false)) }
            }
        }
    };
    Ok(ctx.page("Evidence", body))
}
