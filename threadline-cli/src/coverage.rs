//! `threadline verify-coverage`: the CI gate that every table expected audited is covered.

use std::io::{self, Write};

use serde_json::json;
use threadline::health::{Coverage, Finding, Severity};
use threadline::read::TableName;

use crate::args::{Args, Spec};
use crate::config::Config;
use crate::health::{configured, write_finding};
use crate::{Failure, connect, models};

/// `threadline verify-coverage`.
pub static VERIFY_COVERAGE: Spec = Spec {
    command: "verify-coverage",
    positionals: &[],
    optional: &[],
    options: &["src"],
    switches: &["json"],
    filters: false,
    database: true,
    config: true,
    help: "usage: threadline verify-coverage [--src PATH] [--json]

Checks that every table expected audited is covered: audited, with every capture
trigger present and enabled, and no error-level finding. The expected tables are
coverage.audited of threadline.toml, else the tables of the #[derive(Audited)] models
under the sources. Prints each table, the findings that keep it uncovered with their
fixes, and 'summary: X/Y expected tables covered'. Exits with status 1 when a table
is not covered or the install has an error-level finding (such as strict mode off
while coverage.require_actor = true). Reads the catalog only.

options:
  --src PATH            take the expected tables from the models under PATH instead
                        of coverage.audited (when that is absent, the default is
                        paths.src of threadline.toml, else src)
  --json                print {\"tables\": [{\"table\", \"covered\", \"reason\", \"findings\"}],
                        \"install_findings\": [...], \"summary\": {\"covered\", \"expected\"}};
                        reason is null, \"not audited\", \"no such table\" or
                        \"error-level findings\"; findings as threadline health prints them
  --database-url URL    the database (default: $DATABASE_URL)
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory)",
};

/// The tables expected audited: the configured list, else the models' tables.
fn expected(args: &Args, config: &Config) -> Result<Vec<TableName>, Failure> {
    if let Some(tables) = config.audited.as_ref().filter(|_| args.value("src").is_none()) {
        return Ok(tables.clone());
    }
    let src = args.path_or("src", &config.src);
    let scan = models::scan(&src)?;
    if !scan.errors.is_empty() {
        return Err(Failure::Usage(format!(
            "{}\nfix the #[derive(Audited)] models under {}, or list the tables in coverage.audited",
            scan.errors.join("\n"),
            src.display()
        )));
    }
    let tables = scan
        .models
        .iter()
        .map(|found| TableName::new(&found.model.schema, &found.model.table))
        .collect::<Result<Vec<_>, _>>()?;
    if tables.is_empty() {
        return Err(Failure::Usage(format!(
            "no tables are expected audited: no #[derive(Audited)] models under {} and no coverage.audited in {}",
            src.display(),
            config
                .file
                .as_ref()
                .map_or_else(|| "threadline.toml".to_owned(), |f| f.display().to_string())
        )));
    }
    Ok(tables)
}

/// Runs `threadline verify-coverage`.
pub fn verify_coverage(args: &Args) -> Result<(), Failure> {
    let config = args.config()?;
    let mut expected = expected(args, &config)?;
    let mut seen = std::collections::BTreeSet::new();
    expected.retain(|table| seen.insert(table.to_string()));
    let report = configured(&config, None).run_blocking(&mut connect(args)?)?;
    let install: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.table.is_none() && f.severity == Severity::Error)
        .collect();
    let mut results = Vec::new();
    for table in &expected {
        let name = table.to_string();
        let findings: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && f.table.as_deref() == Some(name.as_str()))
            .collect();
        let reason = match report.tables.iter().find(|t| t.table == name).map(|t| t.coverage) {
            None => Some("no such table"),
            Some(Coverage::Covered) => None,
            Some(_) if findings.is_empty() => Some("not audited"),
            Some(_) => Some("error-level findings"),
        };
        results.push((name, table.sql_literal(), reason, findings));
    }
    let covered = results.iter().filter(|(_, _, reason, _)| reason.is_none()).count();
    let mut out = io::stdout().lock();
    if args.switch("json") {
        let tables: Vec<_> = results
            .iter()
            .map(|(table, _, reason, findings)| {
                json!({"table": table, "covered": reason.is_none(), "reason": reason, "findings": findings})
            })
            .collect();
        let summary = json!({"covered": covered, "expected": expected.len()});
        writeln!(
            out,
            "{}",
            json!({"tables": tables, "install_findings": install, "summary": summary})
        )?;
    } else {
        for (table, literal, reason, findings) in &results {
            match reason {
                None => writeln!(out, "covered      {table}")?,
                Some("not audited") => writeln!(
                    out,
                    "NOT COVERED  {table}: not audited\n  fix: derive Audited on its model and run threadline \
                     gen-triggers, or SELECT threadline.audit_table({literal});"
                )?,
                Some(reason) => writeln!(out, "NOT COVERED  {table}: {}", crate::health::printable(reason))?,
            }
            for finding in findings {
                write_finding(&mut out, finding)?;
            }
        }
        for finding in &install {
            write_finding(&mut out, finding)?;
        }
        writeln!(out, "\nsummary: {covered}/{} expected tables covered", expected.len())?;
    }
    out.flush()?;
    if covered < expected.len() || !install.is_empty() {
        return Err(Failure::Runtime(format!(
            "{} of {} expected tables not covered{}",
            expected.len() - covered,
            expected.len(),
            if install.is_empty() {
                String::new()
            } else {
                format!(", {} install-level errors", install.len())
            }
        )));
    }
    Ok(())
}
