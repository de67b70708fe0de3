//! `threadline policy show`: the policies the `#[derive(Audited)]` models declare against
//! the ones the database deployed.

use std::io::{self, Write};
use std::path::Path;

use serde_json::json;
use threadline::policy::{PolicyCheck, PolicyReport, PolicyStatus};
use threadline::read::TableName;

use crate::args::{Args, Spec};
use crate::models::Scan;
use crate::{Failure, connect, models};

/// `threadline policy`.
pub static POLICY: Spec = Spec {
    command: "policy",
    positionals: &["show"],
    optional: &[],
    options: &["src"],
    switches: &["check", "json"],
    filters: false,
    database: true,
    config: true,
    help: "usage: threadline policy show [--src PATH] [--check] [--json]

Compares, table by table, the capture policy each #[derive(Audited)] model declares
(read from the sources, not compiled) with the policy the database deployed
(threadline.table_policy): matches, differs (which columns are masked, excluded or
ignored on one side and not the other), declared but not deployed, or deployed but
not declared. Shows policies only, never row values.

options:
  --src PATH            the Rust sources (default: paths.src of threadline.toml, else src)
  --check               exit with status 1 when any table does not match (for CI)
  --json                print {\"tables\": [{\"table\", \"status\", \"declared\", \"deployed\",
                        \"differences\": [{\"key\", \"declared\", \"deployed\", \"added\", \"removed\"}]}],
                        \"summary\": {\"matches\", \"differs\", \"declared_not_deployed\",
                        \"deployed_not_declared\"}}; status is one of the summary's keys
  --database-url URL    the database (default: $DATABASE_URL)
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory)",
};

/// The models under `src`, refused with their mistakes.
pub fn scan_models(src: &Path) -> Result<Scan, Failure> {
    let scan = models::scan(src)?;
    if scan.errors.is_empty() {
        return Ok(scan);
    }
    let mut err = io::stderr().lock();
    for error in &scan.errors {
        writeln!(err, "{error}")?;
    }
    Err(Failure::Usage(format!(
        "{} error{} in the #[derive(Audited)] models under {}",
        scan.errors.len(),
        if scan.errors.len() == 1 { "" } else { "s" },
        src.display()
    )))
}

/// Compares the models of `scan` with the database `args` name.
pub fn compare(args: &Args, scan: &Scan) -> Result<PolicyReport, Failure> {
    let mut check = PolicyCheck::new();
    for found in &scan.models {
        let table = TableName::new(&found.model.schema, &found.model.table)?;
        check = check.declare(&table, found.policy.clone());
    }
    Ok(check.run_blocking(&mut connect(args)?)?)
}

/// Runs `threadline policy show`.
pub fn policy(args: &Args) -> Result<(), Failure> {
    args.subcommand("policy command", &["show"])?;
    let config = args.config()?;
    let scan = scan_models(&args.path_or("src", &config.src))?;
    let report = compare(args, &scan)?;
    let counts = [
        ("matches", PolicyStatus::Matches),
        ("differs", PolicyStatus::Differs),
        ("declared_not_deployed", PolicyStatus::DeclaredNotDeployed),
        ("deployed_not_declared", PolicyStatus::DeployedNotDeclared),
    ]
    .map(|(name, status)| (name, report.count(status)));
    let mut out = io::stdout().lock();
    if args.switch("json") {
        let summary: serde_json::Map<String, serde_json::Value> =
            counts.iter().map(|(name, n)| ((*name).to_owned(), json!(n))).collect();
        writeln!(out, "{}", json!({"tables": report.tables, "summary": summary}))?;
    } else {
        for table in &report.tables {
            let (label, note) = match table.status {
                PolicyStatus::Matches => ("matches", String::new()),
                PolicyStatus::Differs => ("DIFFERS", String::new()),
                PolicyStatus::DeclaredNotDeployed => (
                    "NOT DEPLOYED",
                    ": declared by a model, not audited; run threadline gen-triggers, then diesel migration run"
                        .to_owned(),
                ),
                PolicyStatus::DeployedNotDeclared => (
                    "NOT DECLARED",
                    format!(
                        ": audited, but no #[derive(Audited)] model names it; derive Audited on its model, or \
                         unaudit it with SELECT threadline.unaudit_table({});",
                        table
                            .table
                            .parse::<TableName>()
                            .map_or_else(|_| "'...'".to_owned(), |t| t.sql_literal())
                    ),
                ),
                _ => ("UNKNOWN", ": a status this release of the CLI does not know".to_owned()),
            };
            writeln!(out, "{label:<13} {}{note}", table.table)?;
            for sentence in table
                .differences
                .iter()
                .flat_map(|d| d.explain("the code", "the database"))
            {
                writeln!(out, "  {sentence}")?;
            }
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(name, n)| format!("{n} {}", name.replace('_', " ")))
            .collect();
        writeln!(out, "\nsummary: {}", summary.join(", "))?;
    }
    out.flush()?;
    if args.switch("check") && report.drifted() {
        let drifted = report.tables.len() - report.count(PolicyStatus::Matches);
        return Err(Failure::Runtime(format!(
            "{drifted} of {} tables do not match (--check)",
            report.tables.len()
        )));
    }
    Ok(())
}
