//! `threadline retention`, `threadline evidence` and `threadline views`: pruning the trail,
//! the evidence recorded about it, and operators' saved views.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use serde_json::json;
use threadline::evidence::EvidenceQuery;
use threadline::read::parse_time;
use threadline::retention::{Purge, RetentionPolicy, RetentionRun};

use crate::args::{Args, Spec};
use crate::{Failure, connect, counted, note};

/// `threadline retention`.
pub static RETENTION: Spec = Spec {
    command: "retention",
    positionals: &["purge|runs"],
    optional: &[],
    options: &["keep-days", "batch-size", "max-batches"],
    switches: &["dry-run", "execute", "json"],
    filters: false,
    database: true,
    config: true,
    help: "usage: threadline retention purge --dry-run | --execute [--keep-days N] [--batch-size N]
                                 [--max-batches N] [--json]
       threadline retention runs [--json]

purge deletes the changes captured before the cutoff (now minus the kept days,
exclusive), oldest first in batches with a pause between them, then the
transactions left without changes; on a partitioned store (threadline partitions)
it first drops whole every partition that ends by the cutoff, then creates the
partitions ahead. Actions and evidence are never deleted. One of
--dry-run (count what would go, delete nothing) and --execute is required. A real
run is logged in threadline.retention_runs; only one runs at a time (an advisory
lock): a second one exits with status 1 saying so, having deleted nothing. A run
left running by a killed process is marked abandoned by the next one.
runs lists the newest 20 runs of the log.

options:
  --keep-days N         days to keep (default: retention.keep_days of threadline.toml)
  --batch-size N        changes per batch (default: retention.batch_size, else 10000)
  --max-batches N       stop after N batches; the run says whether more is left
  --json                print the plan, the run, or the runs as JSON
  --database-url URL    the database (default: $DATABASE_URL); connect directly, not
                        through a transaction-mode pooler (the lock is a session's)
  --config PATH         the threadline.toml to read",
};

/// `threadline evidence`.
pub static EVIDENCE: Spec = Spec {
    command: "evidence",
    positionals: &["show"],
    optional: &[],
    options: &["subject", "from", "to"],
    switches: &["history", "json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline evidence show [--subject S] [--history] [--from T] [--to T] [--json]

Shows the evidence recorded about the trail (threadline.evidence_records): the latest
record of each subject, or with --history every record, newest first.

options:
  --subject S           one subject, such as coverage:public or retention
  --history             every record, not only the latest per subject
  --from RFC3339        recorded at or after
  --to RFC3339          recorded at or before
  --json                print [{\"id\", \"kind\", \"subject\", \"claim\", \"verdict\", \"payload\",
                        \"recorded_by\", \"recorded_role\", \"recorded_at\"}]; recorded_by
                        is who the recorder said acted, recorded_role the database role
  --database-url URL    the database (default: $DATABASE_URL)",
};

/// `threadline views`.
pub static VIEWS: Spec = Spec {
    command: "views",
    positionals: &["list"],
    optional: &[],
    options: &["owner"],
    switches: &["json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline views list [--owner ACTOR] [--json]

Lists the operators' saved views (threadline.saved_views): owner, name and the
filter's query string, which timeline and export take as flags.

options:
  --owner ACTOR         one operator's views, as type:id (admin:7)
  --json                print [{\"id\", \"owner\", \"name\", \"query\", \"created_at\", \"updated_at\"}]
  --database-url URL    the database (default: $DATABASE_URL)",
};

/// One line about a run.
fn describe(run: &RetentionRun) -> String {
    format!(
        "run {} {}: {} and {} captured before {} deleted in {}{}{}",
        run.id,
        run.status.as_str(),
        counted(run.changes_deleted, "change"),
        counted(run.transactions_deleted, "transaction"),
        run.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        match run.partitions_dropped {
            0 => String::new(),
            n => format!("{} dropped whole and ", counted(n, "partition")),
        },
        counted(run.batches, "batch"),
        run.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
    )
}

/// Runs `threadline retention`.
pub fn retention(args: &Args) -> Result<(), Failure> {
    let subcommand = args.subcommand("subcommand", &["purge", "runs"])?;
    let mut out = io::stdout().lock();
    if subcommand == "runs" {
        let runs = threadline::retention::runs_blocking(&mut connect(args)?, 20)?;
        if args.switch("json") {
            writeln!(out, "{}", json!(runs))?;
        } else if runs.is_empty() {
            writeln!(out, "no retention runs yet")?;
        }
        for run in runs.iter().filter(|_| !args.switch("json")) {
            writeln!(out, "{}", describe(run))?;
        }
        return Ok(out.flush()?);
    }
    let config = args.config()?;
    let (dry_run, execute) = (args.switch("dry-run"), args.switch("execute"));
    if dry_run == execute {
        return Err(args.usage("give --dry-run (count what would go) or --execute (delete it), one of the two"));
    }
    let keep_days = match args.number::<i64>("keep-days")? {
        Some(days) => days,
        None => config.keep_days.ok_or_else(|| {
            args.usage("no retention window: pass --keep-days N or set retention.keep_days in threadline.toml")
        })?,
    };
    let policy = RetentionPolicy::keep_days(keep_days).map_err(|e| args.usage(format!("--keep-days: {e}")))?;
    let mut purge = Purge::new(policy);
    if let Some(size) = args
        .number::<usize>("batch-size")?
        .or(config.batch_size.map(|n| n as usize))
    {
        purge = purge
            .batch_size(size)
            .map_err(|e| args.usage(format!("--batch-size: {e}")))?;
    }
    if let Some(max) = args.number::<u64>("max-batches")? {
        purge = purge
            .max_batches(max)
            .map_err(|e| args.usage(format!("--max-batches: {e}")))?;
    }
    if let Some(ms) = config.pause_ms {
        purge = purge.pause(Duration::from_millis(ms.unsigned_abs()));
    }
    let mut conn = connect(args)?;
    if dry_run {
        let plan = purge.dry_run_blocking(&mut conn)?;
        if args.switch("json") {
            writeln!(out, "{}", json!(plan))?;
        } else {
            writeln!(
                out,
                "dry run: {} and {} captured before {} would be deleted{}; nothing was deleted",
                counted(plan.changes, "change"),
                counted(plan.transactions, "transaction"),
                plan.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                match plan.partitions {
                    0 => String::new(),
                    n => format!(", {} of them by dropping whole", counted(n, "partition")),
                }
            )?;
        }
        return Ok(out.flush()?);
    }
    let terminal = io::stderr().is_terminal();
    let outcome = purge.execute_blocking(&mut conn, |run| {
        if terminal {
            let _ = write!(
                io::stderr(),
                "\r{} changes deleted, {} partitions dropped, batch {}",
                run.changes_deleted,
                run.partitions_dropped,
                run.batches
            );
        }
    })?;
    if terminal {
        let _ = writeln!(io::stderr());
    }
    for id in &outcome.abandoned {
        note(format!(
            "run {id} had been left running by a process that died; marked abandoned"
        ));
    }
    if args.switch("json") {
        writeln!(out, "{}", json!(outcome))?;
    } else {
        writeln!(out, "{}", describe(&outcome.run))?;
        if outcome.run.more_left {
            writeln!(out, "more changes are older than the cutoff: run it again")?;
        }
    }
    Ok(out.flush()?)
}

/// Runs `threadline evidence show`.
pub fn evidence(args: &Args) -> Result<(), Failure> {
    args.subcommand("subcommand", &["show"])?;
    let mut query = EvidenceQuery::new();
    if let Some(subject) = args.value("subject") {
        query = query.subject(subject);
    }
    if args.switch("history") {
        query = query.history();
    }
    for (flag, value) in [("from", args.value("from")), ("to", args.value("to"))] {
        if let Some(text) = value {
            let at = parse_time(if flag == "from" { "from" } else { "to" }, text)
                .map_err(|e| args.usage(format!("--{flag}: {e}")))?;
            query = if flag == "from" { query.from(at) } else { query.to(at) };
        }
    }
    let records = query.run_blocking(&mut connect(args)?)?;
    let mut out = io::stdout().lock();
    if args.switch("json") {
        writeln!(out, "{}", json!(records))?;
    } else if records.is_empty() {
        writeln!(out, "no evidence recorded")?;
    }
    for record in records.iter().filter(|_| !args.switch("json")) {
        writeln!(
            out,
            "{}  {:<12} {:<24} {}  (by {} as role {}, {})",
            record.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            record.verdict.as_str(),
            record.subject,
            record.claim,
            threadline::read::ActorFilter::Is(record.recorded_by.clone()),
            record.recorded_role,
            record.kind
        )?;
    }
    Ok(out.flush()?)
}

/// Runs `threadline views list`.
pub fn views(args: &Args) -> Result<(), Failure> {
    args.subcommand("subcommand", &["list"])?;
    let owner = args.actor("owner", "operator")?;
    let mut conn = connect(args)?;
    let views = match owner {
        Some(owner) => threadline::views::list_blocking(&mut conn, &owner)?,
        None => threadline::views::list_all_blocking(&mut conn)?,
    };
    let mut out = io::stdout().lock();
    if args.switch("json") {
        writeln!(out, "{}", json!(views))?;
    } else if views.is_empty() {
        writeln!(out, "no saved views")?;
    }
    for view in views.iter().filter(|_| !args.switch("json")) {
        writeln!(
            out,
            "{:<20} {:<30} {}",
            threadline::read::ActorFilter::Is(view.owner.clone()).to_string(),
            view.name,
            view.query
        )?;
    }
    Ok(out.flush()?)
}
