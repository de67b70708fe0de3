//! `threadline gen-triggers`: a Diesel migration for each `#[derive(Audited)]` policy the
//! migrations do not deploy yet.

use std::io::{self, Write};

use chrono::Utc;
use threadline_syntax::AuditedModel;

use crate::args::{Args, Spec};
use crate::drift::compare;
use crate::migrations::Migrations;
use crate::models::{self, Found};
use crate::policy::{self, Deployed};
use crate::{Failure, counted};
use threadline::policy::{PolicyDifference, PolicyStatus, differences};

/// `threadline gen-triggers`.
pub static GEN_TRIGGERS: Spec = Spec {
    command: "gen-triggers",
    positionals: &[],
    optional: &[],
    options: &["src", "migrations"],
    switches: &["dry-run", "check"],
    filters: false,
    database: true,
    config: true,
    help: "usage: threadline gen-triggers [--src PATH] [--migrations PATH] [--dry-run | --check [--database-url URL]]

Writes a Diesel migration for each #[derive(Audited)] model whose #[audited(...)]
policy differs from the one the latest migration of its table deploys, or that no
migration deploys yet. Existing migrations are never changed.

options:
  --src PATH            the Rust sources: every .rs file below, parsed (not compiled)
                        for #[derive(Audited)] structs (default: paths.src of
                        threadline.toml, else src)
  --migrations PATH     the Diesel migrations folder (default: paths.migrations of
                        threadline.toml, else migrations)
  --dry-run             print the migrations that would be written; write nothing
  --check               write nothing; exit with status 1, saying why, when a table
                        needs a migration (for CI)
  --database-url URL    with --check: compare the annotations with what that
                        database deployed too, and fail when they differ (a
                        migration not applied, or a policy changed by hand)
  --config PATH         the threadline.toml to read (default: the nearest one up
                        from the current directory)

Each migration is a folder <version>_threadline_audit_<table>, dated after every
existing migration. Its up.sql calls threadline.audit_table and records the policy
on a '-- threadline:policy <schema.table> <json>' line, which later runs compare the
annotations with; its down.sql restores the previous policy, or stops the capture.
Apply them with 'diesel migration run'. A mistake in a source file is reported as
file:line:col: message, and exits with status 2 before anything is written. A table
whose model is gone stays audited: unaudit it with a migration of your own.",
};

/// A table that needs a migration.
struct Plan<'a> {
    /// The model.
    found: &'a Found,
    /// What the migrations deploy for its table now, if anything.
    deployed: Option<&'a Deployed>,
}

impl Plan<'_> {
    /// `schema.table`.
    fn table(&self) -> String {
        self.found.model.qualified_table()
    }

    /// How the annotation differs from the deployed policy, key by key.
    fn differences(&self) -> Vec<PolicyDifference> {
        self.deployed
            .map(|deployed| differences(&self.found.policy, &deployed.policy))
            .unwrap_or_default()
    }

    /// Why the table needs a migration, briefly: `new`, `policy changed: mask +email`.
    fn reason(&self) -> String {
        match self.deployed {
            None => "new".into(),
            Some(_) => {
                let summaries: Vec<String> = self.differences().iter().map(PolicyDifference::summary).collect();
                format!("policy changed: {}", summaries.join(", "))
            }
        }
    }

    /// Why the table needs a migration, in sentences, for `--check`.
    fn explanation(&self) -> String {
        let Some(deployed) = self.deployed else {
            return format!(
                "#[derive(Audited)] on `{}` ({}) audits it, no migration does",
                self.found.model.ident, self.found.at
            );
        };
        let latest = format!("the latest migration ({})", deployed.folder);
        let sentences: Vec<String> = self
            .differences()
            .iter()
            .enumerate()
            .flat_map(|(i, difference)| {
                difference.explain("the annotation", if i == 0 { &latest } else { "the latest migration" })
            })
            .collect();
        sentences.join("; ")
    }
}

/// The name of a table's policy migration, after its version: `threadline_audit_<table>`,
/// with the schema before the table outside `public`.
fn migration_name(model: &AuditedModel) -> String {
    let name = if model.schema == "public" {
        model.table.clone()
    } else {
        format!("{}_{}", model.schema, model.table)
    };
    let safe: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    format!("threadline_audit_{safe}")
}

/// Runs `threadline gen-triggers`.
pub fn gen_triggers(args: &Args) -> Result<(), Failure> {
    let (dry_run, check) = (args.switch("dry-run"), args.switch("check"));
    if dry_run && check {
        return Err(args.usage("--dry-run and --check cannot be combined"));
    }
    if args.value("database-url").is_some() && !check {
        return Err(args.usage("--database-url is only read with --check"));
    }
    let config = args.config()?;
    let src = &args.path_or("src", &config.src);
    let migrations = Migrations::read(&args.path_or("migrations", &config.migrations))?;
    let scan = models::scan(src)?;
    if !scan.errors.is_empty() {
        let mut err = io::stderr().lock();
        for error in &scan.errors {
            writeln!(err, "{error}")?;
        }
        return Err(Failure::Usage(format!(
            "{} in the #[derive(Audited)] models under {}; nothing was written",
            counted(scan.errors.len(), "error"),
            src.display()
        )));
    }
    let deployed = policy::deployed(&migrations)?;
    let mut plans = Vec::new();
    let mut matching = Vec::new();
    for found in &scan.models {
        match deployed.get(&found.model.qualified_table()) {
            Some(latest) if latest.policy == found.policy => matching.push((found.model.qualified_table(), latest)),
            latest => plans.push(Plan {
                found,
                deployed: latest,
            }),
        }
    }
    let mut out = io::stdout().lock();
    if check {
        for plan in &plans {
            writeln!(
                out,
                "{}: {}; run threadline gen-triggers",
                plan.table(),
                plan.explanation()
            )?;
        }
    } else {
        let versions = migrations.next_versions(plans.len(), Utc::now())?;
        for (plan, version) in plans.iter().zip(versions) {
            let model = &plan.found.model;
            let folder = format!("{version}_{}", migration_name(model));
            let path = migrations.path(&folder);
            if dry_run {
                writeln!(out, "would write {path} ({}: {})", plan.table(), plan.reason())?;
                writeln!(out, "  up.sql:")?;
                for line in model.up_sql().lines() {
                    writeln!(out, "    {line}")?;
                }
            } else {
                let previous = plan.deployed.map(|deployed| deployed.json.as_str());
                migrations.write(&folder, &model.up_sql(), &model.down_sql(previous))?;
                writeln!(out, "wrote {path} ({}: {})", plan.table(), plan.reason())?;
            }
        }
    }
    if check || dry_run {
        for (table, latest) in &matching {
            writeln!(out, "{table}: matches {}", migrations.path(&latest.folder))?;
        }
    }
    for (table, latest) in &deployed {
        if !scan.models.iter().any(|found| found.model.qualified_table() == *table) {
            writeln!(
                out,
                "note: {table} has a policy migration ({}) but no #[derive(Audited)] model; it stays audited \
                 until a migration of yours runs SELECT threadline.unaudit_table('{table}')",
                migrations.path(&latest.folder)
            )?;
        }
    }
    if !check && !plans.is_empty() && migrations.install()?.is_none() {
        writeln!(
            out,
            "note: no migration installs the threadline schema; run threadline install first, unless the app \
             installs it in code (threadline::migrations::install)"
        )?;
    }
    let up_to_date = counted(matching.len(), "table");
    let mut undeployed = 0;
    if check && args.value("database-url").is_some() {
        let planned: Vec<String> = plans.iter().map(Plan::table).collect();
        // A table that needs a migration is reported above: its fix is gen-triggers first.
        for table in compare(args, &scan)?
            .tables
            .into_iter()
            .filter(|t| !planned.contains(&t.table))
        {
            let fix = "; run diesel migration run, or deploy the annotation again if the policy was changed by hand";
            let sentences: Vec<String> = match table.status {
                PolicyStatus::Matches | PolicyStatus::DeployedNotDeclared => continue,
                PolicyStatus::DeclaredNotDeployed => vec!["the annotation audits it, the database does not".to_owned()],
                PolicyStatus::Differs => table
                    .differences
                    .iter()
                    .flat_map(|d| d.explain("the annotation", "the database"))
                    .collect(),
                _ => vec!["the annotation and the database disagree in a way this release does not know".to_owned()],
            };
            undeployed += 1;
            writeln!(out, "{}: {}{fix}", table.table, sentences.join("; "))?;
        }
    }
    if check {
        let mut failures = Vec::new();
        if !plans.is_empty() {
            failures.push(format!(
                "{} of {} need{} a migration; run threadline gen-triggers",
                plans.len(),
                counted(scan.models.len(), "table"),
                if plans.len() == 1 { "s" } else { "" }
            ));
        }
        if undeployed > 0 {
            failures.push(format!(
                "{undeployed} of {} differ{} from what the database deployed",
                counted(scan.models.len(), "table"),
                if undeployed == 1 { "s" } else { "" }
            ));
        }
        if !failures.is_empty() {
            return Err(Failure::Runtime(failures.join("; ")));
        }
        if args.value("database-url").is_some() {
            writeln!(out, "migrations and the database match the annotations")?;
        } else {
            writeln!(out, "migrations match the annotations")?;
        }
    } else if scan.models.is_empty() {
        writeln!(
            out,
            "no #[derive(Audited)] models under {}; nothing to write",
            src.display()
        )?;
    } else if dry_run {
        writeln!(
            out,
            "dry run: would write {}, {up_to_date} up to date; nothing was written",
            counted(plans.len(), "migration")
        )?;
    } else if plans.is_empty() {
        writeln!(out, "nothing to write: {up_to_date} up to date")?;
    } else {
        writeln!(
            out,
            "wrote {}, {up_to_date} up to date; apply them with diesel migration run",
            counted(plans.len(), "migration")
        )?;
    }
    Ok(())
}
