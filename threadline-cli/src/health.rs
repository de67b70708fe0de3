//! `threadline health`: coverage of the user tables and the findings that keep capture from
//! being whole.

use std::io::{self, Write};

use threadline::health::{Coverage, Finding, HealthCheck, Severity};

use crate::args::{Args, Spec};
use crate::config::Config;
use crate::{Failure, connect};

/// `threadline health`.
pub static HEALTH: Spec = Spec {
    command: "health",
    positionals: &[],
    optional: &[],
    options: &["schema"],
    switches: &["all-schemas", "strict", "json"],
    filters: false,
    database: true,
    config: true,
    help: "usage: threadline health [--schema S | --all-schemas] [--strict] [--json]

Reports whether each user table's changes are recorded (covered, uncovered, or
expected uncovered: __diesel_schema_migrations), and every finding that keeps capture
from being whole, with the SQL that fixes it. Reads the catalog only.

options:
  --schema S            the schema to check (default: coverage.schema of
                        threadline.toml, else public)
  --all-schemas         every schema but PostgreSQL's and Threadline's own
  --strict              exit 1 when any finding is an error
  --json                print {\"schema_version\", \"tables\": [{\"table\", \"coverage\"}],
                        \"findings\": [{\"severity\", \"table\", \"code\", \"detail\", \"fix\"}],
                        \"summary\": {\"covered\", \"uncovered\", \"expected_uncovered\", \"errors\", \"warnings\"}}
  --database-url URL    the database (default: $DATABASE_URL)
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory); its coverage.unaudited tables
                        are expected uncovered, and coverage.require_actor = true
                        reports strict mode off as an error",
};

/// The check the configuration asks for, over `schema` (`None`: every schema).
pub fn configured(config: &Config, schema: Option<&str>) -> HealthCheck {
    let mut check = match schema {
        Some(schema) => HealthCheck::new().schema(schema),
        None => HealthCheck::new().all_schemas(),
    };
    for table in &config.unaudited {
        check = check.expect_unaudited(table.clone());
    }
    if config.require_actor {
        check = check.expect_require_actor();
    }
    check
}

/// Runs `threadline health`.
pub fn health(args: &Args) -> Result<(), Failure> {
    let config = args.config()?;
    let schema = match (args.value("schema"), args.switch("all-schemas")) {
        (Some(_), true) => return Err(HEALTH.usage("give --schema or --all-schemas, not both")),
        (Some(schema), false) => Some(schema),
        (None, true) => None,
        (None, false) => config.schema.as_deref(),
    };
    let report = configured(&config, schema).run_blocking(&mut connect(args)?)?;
    let (covered, uncovered, expected) = report.counts();
    let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = report.findings.len() - errors;
    let mut out = io::stdout().lock();
    if args.switch("json") {
        let json = serde_json::json!({
            "schema_version": report.schema_version,
            "tables": report.tables,
            "findings": report.findings,
            "summary": {"covered": covered, "uncovered": uncovered, "expected_uncovered": expected,
                        "errors": errors, "warnings": warnings},
        });
        writeln!(out, "{json}")?;
    } else {
        for table in &report.tables {
            let coverage = match table.coverage {
                Coverage::Covered => "covered",
                Coverage::Uncovered => "UNCOVERED",
                Coverage::ExpectedUncovered => "expected uncovered",
                _ => "unknown",
            };
            writeln!(out, "{coverage:<20} {}", printable(&table.table))?;
        }
        for finding in &report.findings {
            write_finding(&mut out, finding)?;
        }
        writeln!(
            out,
            "\nsummary: {covered} covered, {uncovered} uncovered, {expected} expected uncovered; {errors} errors, {warnings} warnings"
        )?;
    }
    out.flush()?;
    if args.switch("strict") && errors > 0 {
        return Err(Failure::Runtime(format!("{errors} error-level findings (--strict)")));
    }
    Ok(())
}

/// Prints a finding as `error[code]: detail`, then its fix.
pub fn write_finding(out: &mut impl Write, finding: &Finding) -> io::Result<()> {
    let severity = match finding.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        _ => "note",
    };
    writeln!(
        out,
        "\n{severity}[{}]: {}\n  fix: {}",
        finding.code,
        printable(&finding.detail),
        printable(&finding.fix)
    )
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): names in a report are the
/// table owner's to choose, and one holding a newline or a terminal escape must not forge a
/// line of the report or rewrite the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().any(char::is_control) {
        false => text.into(),
        true => text
            .chars()
            .map(|c| match c.is_control() {
                true => c.escape_debug().to_string(),
                false => c.to_string(),
            })
            .collect::<String>()
            .into(),
    }
}
