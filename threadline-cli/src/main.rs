//! The `threadline` command.
//!
//! It writes Diesel migrations: the schema install (`threadline install`) and the capture
//! policies of the `#[derive(Audited)]` models (`threadline gen-triggers`). It prints the
//! schema SQL, for installing Threadline with psql or any migration tool
//! (`threadline install-sql | psql -1 "$DATABASE_URL"`), and reads the audit trail: the
//! timeline, a row's history, a row as of a time, one transaction's changes, and exports;
//! and checks that capture is whole (`threadline health`).

mod args;
mod completions;
mod config;
mod coverage;
mod drift;
mod export;
mod export_jobs;
mod gen_triggers;
mod health;
mod install;
mod lifecycle;
mod migrations;
mod models;
mod partitions;
mod policy;
mod read;

use std::io::{self, Write};
use std::process::ExitCode;

use diesel::{Connection, PgConnection};

use args::{Args, Spec};

/// The top-level help, before the configuration keys.
const USAGE: &str = "usage: threadline <command> [arguments]

commands:
  install         write the migration that installs the threadline schema
  gen-triggers    write migrations that deploy the #[derive(Audited)] policies
  timeline        list the newest changes, filtered
  history         list the changes of one row
  as-of           show a row as it was at a time
  incident        show one transaction: its context, action and per-field changes
  export          write the changes a filter selects as CSV, JSON or NDJSON
  export-jobs     queue exports, run them in the background, fetch them (submit, worker, ...)
  health          report which tables are audited and what keeps capture from being whole
  verify-coverage exit 1 unless every table expected audited is covered (for CI)
  policy show     compare the models' capture policies with the deployed ones
  retention       purge changes older than the kept window (purge), list the runs (runs)
  partitions      partition the audit store by time (convert), create partitions ahead (ensure), list them
  evidence show   the evidence recorded about the trail
  views list      the operators' saved views
  completions     print a completion script for bash, zsh, fish, elvish or powershell
  install-sql     print the SQL that installs the threadline schema
  uninstall-sql   print the SQL that removes it, with every audit row
  --version       print the version
  --help          print this help

Run 'threadline <command> --help' for a command's arguments. Commands that read the
database connect to --database-url URL, else to $DATABASE_URL. Commands that take
paths or expectations read threadline.toml, from the current directory or the
nearest ancestor that has one, or from --config PATH; flags override it. Its keys:
";

/// The top-level help.
fn usage() -> String {
    format!("{USAGE}{}", config::reference())
}

/// Runs one command with its parsed arguments.
type Run = fn(&Args) -> Result<(), Failure>;

/// The commands that take arguments, with what each accepts and how it runs.
static COMMANDS: [(&Spec, Run); 16] = [
    (&install::INSTALL, install::install),
    (&gen_triggers::GEN_TRIGGERS, gen_triggers::gen_triggers),
    (&read::TIMELINE, read::timeline),
    (&read::HISTORY, read::history),
    (&read::AS_OF, read::as_of),
    (&read::INCIDENT, read::incident),
    (&export::EXPORT, export::export),
    (&health::HEALTH, health::health),
    (&coverage::VERIFY_COVERAGE, coverage::verify_coverage),
    (&drift::POLICY, drift::policy),
    (&lifecycle::RETENTION, lifecycle::retention),
    (&partitions::PARTITIONS, partitions::partitions),
    (&lifecycle::EVIDENCE, lifecycle::evidence),
    (&lifecycle::VIEWS, lifecycle::views),
    (&export_jobs::EXPORT_JOBS, export_jobs::export_jobs),
    (&completions::COMPLETIONS, completions::completions),
];

/// Why a command failed, and so its exit status.
#[derive(Debug)]
pub enum Failure {
    /// The command line or a value on it was wrong: exit status 2.
    Usage(String),
    /// The command could not do its work (not found, database, output): exit status 1.
    Runtime(String),
    /// Whoever read standard output stopped reading (as `head` does): exit quietly.
    Closed,
}

impl From<threadline::Error> for Failure {
    fn from(error: threadline::Error) -> Self {
        match error {
            threadline::Error::Invalid { .. } | threadline::Error::InvalidCursor(_) => {
                Failure::Usage(error.to_string())
            }
            threadline::Error::Io(io) => Failure::from(io),
            other => Failure::Runtime(other.to_string()),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::Runtime(format!("cannot write the output: {error}"))
        }
    }
}

/// `1 table`, `2 tables`, `1 batch`, `2 batches`.
pub fn counted(n: impl std::fmt::Display, noun: &str) -> String {
    let n = n.to_string();
    let plural = if noun.ends_with('h') { "es" } else { "s" };
    format!("{n} {noun}{}", if n == "1" { "" } else { plural })
}

/// Prints `threadline: <message>` on standard error.
pub fn note(message: impl std::fmt::Display) {
    let _ = writeln!(io::stderr(), "threadline: {message}");
}

/// Connects to the database the arguments name.
pub fn connect(args: &Args) -> Result<PgConnection, Failure> {
    let url = args.database_url()?;
    PgConnection::establish(&url).map_err(|e| Failure::Runtime(format!("cannot connect to the database: {e}")))
}

/// Prints `text` on standard output.
fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(out.flush()?)
}

fn run(args: &[String]) -> Result<(), Failure> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure::Usage(format!("no command given\n\n{}", usage())));
    };
    if let Some((spec, run)) = COMMANDS.iter().find(|(spec, _)| spec.command == command) {
        return match spec.parse(rest)? {
            Some(args) => run(&args),
            None => print(&format!("{}\n", spec.help)),
        };
    }
    match (command.as_str(), rest) {
        ("install-sql", []) => print(threadline::migrations::INSTALL_SQL),
        ("uninstall-sql", []) => print(threadline::migrations::UNINSTALL_SQL),
        ("--version" | "-V", []) => print(&format!("threadline {}\n", env!("CARGO_PKG_VERSION"))),
        ("--help" | "-h" | "help", []) => print(&usage()),
        ("install-sql" | "uninstall-sql" | "--version" | "-V" | "--help" | "-h" | "help", _) => {
            Err(Failure::Usage(format!("{command} takes no arguments")))
        }
        _ => {
            let known: Vec<&str> = COMMANDS
                .iter()
                .map(|(spec, _)| spec.command)
                .chain(["install-sql", "uninstall-sql"])
                .collect();
            let hint = threadline_syntax::suggest(command, &known)
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default();
            Err(Failure::Usage(format!(
                "unknown command {command:?}{hint}\n\n{}",
                usage()
            )))
        }
    }
}

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let result = match args {
        Ok(args) => run(&args),
        Err(arg) => Err(Failure::Usage(format!("arguments must be UTF-8, got {arg:?}"))),
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            note(message);
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            note(message);
            ExitCode::FAILURE
        }
    }
}
