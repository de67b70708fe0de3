//! `threadline partitions`: partition the audit store by capture time, create partitions
//! ahead, and list them.

use std::io::{self, Write};

use chrono::SecondsFormat;
use serde_json::json;
use threadline::partitions::{self, DEFAULT_AHEAD, MAX_AHEAD, Period};

use crate::args::{Args, Spec};
use crate::{Failure, connect};

/// `threadline partitions`.
pub static PARTITIONS: Spec = Spec {
    command: "partitions",
    positionals: &["convert|ensure|list"],
    optional: &[],
    options: &["period", "ahead"],
    switches: &["json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline partitions convert --period day|week|month [--json]
       threadline partitions ensure [--ahead N] [--json]
       threadline partitions list [--json]

convert makes threadline.audit_changes a table partitioned by capture time, one
partition per day, week or month (UTC), on a live database: no change is lost or
duplicated while writers run, and none waits longer than the moment of the swap. The
changes captured so far stay in one partition, audit_changes_before_<date>, holding
everything before the start of the period after next (an empty trail starts with the
current period); retention drops it whole once the cutoff passes its end.
ensure creates the partitions of the current period and the N after it, and of any
period whose changes landed in the default partition, moving them there. Every
retention run does it too; schedule it (daily) if retention runs less often.
list prints each partition with its range and estimated rows.
Run convert and ensure as the owner of schema threadline (the installing role).

options:
  --period P            day, week or month: the span of one partition
  --ahead N             periods after the current one to create (default 2, at most 400)
  --json                print what was done, or the partitions, as JSON
  --database-url URL    the database (default: $DATABASE_URL)",
};

/// Runs `threadline partitions`.
pub fn partitions(args: &Args) -> Result<(), Failure> {
    let subcommand = args.subcommand("subcommand", &["convert", "ensure", "list"])?;
    let mut out = io::stdout().lock();
    match subcommand {
        "convert" => {
            let period =
                period(args, "period")?.ok_or_else(|| args.usage("convert needs --period day, week or month"))?;
            let done = partitions::convert_blocking(&mut connect(args)?, period)?;
            if args.switch("json") {
                writeln!(out, "{}", json!(done))?;
            } else {
                writeln!(
                    out,
                    "audit_changes is partitioned by {}: changes before {} are in {}, and {} follow{}",
                    done.period,
                    done.boundary.to_rfc3339_opts(SecondsFormat::Secs, true),
                    done.before,
                    crate::counted(done.created, "partition"),
                    if done.created == 1 { "s" } else { "" }
                )?;
            }
        }
        "ensure" => {
            if args.value("period").is_some() {
                return Err(args.usage("--period is convert's: ensure follows the store's own period"));
            }
            let ahead = match args.number::<u32>("ahead")? {
                Some(n) if n > MAX_AHEAD => return Err(args.usage(format!("--ahead: at most {MAX_AHEAD}, got {n}"))),
                Some(n) => n,
                None => DEFAULT_AHEAD,
            };
            let created = partitions::ensure_blocking(&mut connect(args)?, ahead)?;
            if args.switch("json") {
                writeln!(out, "{}", json!({ "created": created }))?;
            } else {
                writeln!(out, "{created} partitions created")?;
            }
        }
        _ => {
            let list = partitions::list_blocking(&mut connect(args)?)?;
            if args.switch("json") {
                writeln!(out, "{}", json!(list))?;
            } else if list.is_empty() {
                writeln!(
                    out,
                    "the audit store is one table: threadline partitions convert partitions it"
                )?;
            }
            for partition in list.iter().filter(|_| !args.switch("json")) {
                let at = |t: Option<chrono::DateTime<chrono::Utc>>, open: &str| {
                    t.map_or_else(|| open.to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                };
                let range = match partition.is_default {
                    true => "what no other partition covers".to_owned(),
                    false => format!(
                        "{} to {}",
                        at(partition.range_start, "the earliest"),
                        at(partition.range_end, "the latest")
                    ),
                };
                writeln!(
                    out,
                    "{}  {range}  about {} rows",
                    partition.name, partition.estimated_rows
                )?;
            }
        }
    }
    Ok(out.flush()?)
}

/// The period flag `flag` names (`period`, or install's `partitioned`), parsed.
pub fn period(args: &Args, flag: &str) -> Result<Option<Period>, Failure> {
    args.value(flag)
        .map(|p| p.parse::<Period>().map_err(|e| args.usage(format!("--{flag}: {e}"))))
        .transpose()
}
