//! The commands' arguments: each [`Spec`] declares a command's positionals and flags once,
//! clap parses them (`--flag value`, `--flag=value`, switches, `--`, `--help`), and
//! refusals are worded here, with the project's one "did you mean" rule.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};
use threadline_syntax::suggest;

use threadline::ActorRef;
use threadline::read::{ActorFilter, Cursor, Filter, MAX_PAGE_SIZE};

use crate::Failure;
use crate::config::Config;

/// The help text of the filter flags, shared by the commands that take them.
macro_rules! filter_help {
    () => {
        "filters (all optional; every one given must hold):
  --table T             schema.table, or table in public
  --actor type:id|type  one actor (user:42) or every actor of a type (admin)
  --from RFC3339        captured at or after, e.g. 2026-11-27T09:30:00Z
  --to RFC3339          captured at or before
  --request-id X        the transaction's request id
  --correlation-id X    the transaction's correlation id
  --action NAME         the transaction's action
  --op OP               insert, update, delete or truncate
  --tenant X            the transaction's tenant
"
    };
}
pub(crate) use filter_help;

/// The filter flags of `timeline` and `export`, each with the
/// [`Filter::from_pairs`] key it maps to.
pub const FILTER_FLAGS: [(&str, &str); 9] = [
    ("table", "table"),
    ("actor", "actor"),
    ("from", "from"),
    ("to", "to"),
    ("request-id", "request_id"),
    ("correlation-id", "correlation_id"),
    ("action", "action"),
    ("op", "op"),
    ("tenant", "tenant_id"),
];

/// The flag of the commands that connect to the database.
const DATABASE_URL: &str = "database-url";
/// The flag of the commands that read `threadline.toml`.
const CONFIG: &str = "config";

/// The clap id of a command's positional arguments, counted against its [`Spec`].
const POSITIONALS: &str = "arguments";

/// Page size of the read commands when `--page-size` is not given.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// What one command accepts.
#[derive(Debug)]
pub struct Spec {
    /// The command's name, as typed.
    pub command: &'static str,
    /// Names of its positional arguments, in order; all are required.
    pub positionals: &'static [&'static str],
    /// Names of positional arguments that may follow them.
    pub optional: &'static [&'static str],
    /// Flags that take a value (without the leading `--`), besides `--database-url` and
    /// the filter flags.
    pub options: &'static [&'static str],
    /// Flags that take no value.
    pub switches: &'static [&'static str],
    /// Whether the [`FILTER_FLAGS`] are accepted.
    pub filters: bool,
    /// Whether `--database-url` is accepted: the command connects to the database.
    pub database: bool,
    /// Whether `--config PATH` is accepted: the command reads `threadline.toml`.
    pub config: bool,
    /// The text `--help` prints.
    pub help: &'static str,
}

impl Spec {
    /// Every flag name the command accepts, for hints.
    fn flag_names(&self) -> Vec<&'static str> {
        let filters = FILTER_FLAGS.iter().filter(|_| self.filters).map(|(flag, _)| *flag);
        let mut names: Vec<&'static str> = self
            .options
            .iter()
            .chain(self.switches)
            .copied()
            .chain(filters)
            .collect();
        if self.database {
            names.push(DATABASE_URL);
        }
        if self.config {
            names.push(CONFIG);
        }
        names.push("help");
        names
    }

    fn takes_value(&self, flag: &str) -> bool {
        (self.database && flag == DATABASE_URL)
            || (self.config && flag == CONFIG)
            || self.options.contains(&flag)
            || (self.filters && FILTER_FLAGS.iter().any(|(name, _)| *name == flag))
    }

    /// A usage error that points at the command's help.
    pub fn usage(&self, message: impl std::fmt::Display) -> Failure {
        Failure::Usage(format!("{message}\nrun 'threadline {} --help' for usage", self.command))
    }

    /// The command as clap declares it: the positionals, then every flag. Its `--help` is
    /// [`Spec::help`].
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.command).override_help(self.help).arg(
            Arg::new(POSITIONALS)
                .num_args(0..)
                .action(ArgAction::Append)
                .allow_negative_numbers(true)
                .value_name(self.positionals.first().copied().unwrap_or("ARG")),
        );
        for name in self.flag_names().into_iter().filter(|name| *name != "help") {
            let flag = Arg::new(name).long(name);
            command = command.arg(if self.takes_value(name) {
                // A value may begin with `-` (a request id, a cursor); one that begins with
                // `--` is the next flag, refused below as a missing value.
                flag.num_args(1).action(ArgAction::Set).allow_hyphen_values(true)
            } else {
                flag.action(ArgAction::SetTrue)
            });
        }
        command
    }

    /// Parses the arguments after the command name; `None` when help was asked for.
    pub fn parse(&'static self, raw: &[String]) -> Result<Option<Args>, Failure> {
        let matches = match self.command().no_binary_name(true).try_get_matches_from(raw) {
            Ok(matches) => matches,
            Err(error) if error.kind() == ErrorKind::DisplayHelp => return Ok(None),
            Err(error) => return Err(self.clap_error(&error)),
        };
        let mut args = Args {
            spec: self,
            positionals: matches
                .get_many::<String>(POSITIONALS)
                .map(|given| given.cloned().collect())
                .unwrap_or_default(),
            values: Vec::new(),
            switches: Vec::new(),
        };
        for name in self.flag_names().into_iter().filter(|name| *name != "help") {
            if self.takes_value(name) {
                if let Some(value) = matches.get_one::<String>(name) {
                    if value.starts_with("--") && !raw.iter().any(|a| a.starts_with(&format!("--{name}="))) {
                        return Err(self.usage(format!("--{name} needs a value")));
                    }
                    args.values.push((name, value.clone()));
                }
            } else if matches.get_flag(name) {
                args.switches.push(name);
            }
        }
        let (given, required) = (args.positionals.len(), self.positionals.len());
        if given < required || given > required + self.optional.len() {
            let expected = match (self.positionals, self.optional) {
                ([], []) => "no arguments".to_owned(),
                (names, optional) => names
                    .iter()
                    .map(|n| format!("<{n}>"))
                    .chain(optional.iter().map(|n| format!("[{n}]")))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            return Err(self.usage(format!(
                "{} takes {expected}, got {} argument{}",
                self.command,
                args.positionals.len(),
                if args.positionals.len() == 1 { "" } else { "s" }
            )));
        }
        Ok(Some(args))
    }

    /// clap's refusal in the words of this command, with the project's "did you mean".
    fn clap_error(&self, error: &clap::Error) -> Failure {
        // clap names an argument as `--op <OP>`, or an unknown one as typed (`--tabel=x`).
        let flag = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => arg.split([' ', '=']).next().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        match error.kind() {
            ErrorKind::UnknownArgument => match flag.strip_prefix("--") {
                Some(name) => {
                    let hint = suggest(name, &self.flag_names())
                        .map(|known| format!(" (did you mean --{known}?)"))
                        .unwrap_or_default();
                    self.usage(format!("unknown flag --{name} for {}{hint}", self.command))
                }
                None => self.usage(format!("unknown flag {flag}")),
            },
            ErrorKind::TooManyValues => self.usage(format!("{flag} takes no value")),
            ErrorKind::InvalidValue => self.usage(format!("{flag} needs a value")),
            ErrorKind::ArgumentConflict => self.usage(format!("{flag} is given twice")),
            _ => {
                let rendered = error.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                self.usage(first.strip_prefix("error: ").unwrap_or(first))
            }
        }
    }
}

/// A parsed command line, checked against its [`Spec`].
#[derive(Debug)]
pub struct Args {
    spec: &'static Spec,
    positionals: Vec<String>,
    values: Vec<(&'static str, String)>,
    switches: Vec<&'static str>,
}

impl Args {
    /// The positional argument at `index` (the parser checked there are enough).
    pub fn positional(&self, index: usize) -> &str {
        &self.positionals[index]
    }

    /// The first positional argument, which must be one of `known`: a usage error naming
    /// it as `what` ("subcommand"), with a "did you mean", otherwise.
    pub fn subcommand(&self, what: &str, known: &[&str]) -> Result<&str, Failure> {
        let given = self.positional(0);
        if known.contains(&given) {
            return Ok(given);
        }
        let hint = suggest(given, known)
            .map(|s| format!(" (did you mean {s}?)"))
            .unwrap_or_default();
        Err(self.usage(format!("unknown {what} {given:?}{hint}")))
    }

    /// One actor (an `operator`, an `actor`: `who`) named by a flag as `type:id`
    /// (`admin:7`), if the flag is given.
    pub fn actor(&self, flag: &str, who: &str) -> Result<Option<ActorRef>, Failure> {
        let Some(text) = self.value(flag) else {
            return Ok(None);
        };
        match ActorFilter::parse(text).map_err(|e| self.usage(format!("--{flag}: {e}")))? {
            ActorFilter::Is(actor) => Ok(Some(actor)),
            ActorFilter::OfType(_) => Err(self.usage(format!("--{flag}: name one {who}, as type:id (admin:7)"))),
        }
    }

    /// The optional positional argument at `index` after the required ones, if given.
    pub fn optional(&self, index: usize) -> Option<&str> {
        self.positionals
            .get(self.spec.positionals.len() + index)
            .map(String::as_str)
    }

    /// The value of a flag, if given.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(name, _)| *name == flag)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a switch was given.
    pub fn switch(&self, flag: &str) -> bool {
        self.switches.contains(&flag)
    }

    /// A usage error of this command.
    pub fn usage(&self, message: impl std::fmt::Display) -> Failure {
        self.spec.usage(message)
    }

    /// A flag's value parsed as a number.
    pub fn number<T: FromStr>(&self, flag: &str) -> Result<Option<T>, Failure> {
        self.value(flag)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| self.usage(format!("--{flag}: {text:?} is not a whole number")))
            })
            .transpose()
    }

    /// `--page-size`, checked to be 1 to [`MAX_PAGE_SIZE`]; `None` when not given.
    pub fn page_size(&self) -> Result<Option<usize>, Failure> {
        match self.number::<usize>("page-size")? {
            Some(size) if size == 0 || size > MAX_PAGE_SIZE => {
                Err(self.usage(format!("--page-size: {size} is not between 1 and {MAX_PAGE_SIZE}")))
            }
            size => Ok(size),
        }
    }

    /// `--cursor`, parsed; `None` when not given.
    pub fn cursor(&self) -> Result<Option<Cursor>, Failure> {
        self.value("cursor")
            .map(|text| text.trim().parse().map_err(|e| self.usage(e)))
            .transpose()
    }

    /// The filter the filter flags describe, validated by [`Filter::from_pairs`].
    pub fn filter(&self) -> Result<Filter, Failure> {
        let pairs = self.values.iter().filter_map(|(flag, value)| {
            FILTER_FLAGS
                .iter()
                .find(|(name, _)| name == flag)
                .map(|(_, key)| (*key, value.as_str()))
        });
        Filter::from_pairs(pairs).map_err(|error| match error {
            threadline::Error::Invalid { field, reason } => match FILTER_FLAGS.iter().find(|(_, key)| *key == field) {
                Some((flag, _)) => self.usage(format!("--{flag}: {reason}")),
                None => self.usage(format!("invalid {field}: {reason}")),
            },
            other => self.usage(other),
        })
    }

    /// The settings of `threadline.toml`: the file `--config` names, else the nearest one.
    pub fn config(&self) -> Result<Config, Failure> {
        Config::load(self.value(CONFIG).map(Path::new))
    }

    /// A path flag's value, else the configured path.
    pub fn path_or(&self, flag: &str, configured: &Path) -> PathBuf {
        self.value(flag).map_or_else(|| configured.to_owned(), PathBuf::from)
    }

    /// The database URL: `--database-url`, else `DATABASE_URL`.
    pub fn database_url(&self) -> Result<String, Failure> {
        self.value(DATABASE_URL)
            .map(str::to_owned)
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| self.usage("no database: pass --database-url URL or set DATABASE_URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words, candidates and the hint expected: the macros' rule (`threadline_syntax`) and
    /// the core's (filter keys) must give the same answer to each.
    const HINTS: &[(&str, &[&str], Option<&str>)] = &[
        ("tabel", &["table", "actor"], Some("table")),
        ("zzz", &["table", "actor"], None),
        (
            "corelation_id",
            &["request_id", "correlation_id"],
            Some("correlation_id"),
        ),
        ("op", &["op", "to"], Some("op")),
        ("mask", &["mask", "exclude", "ignore_changes"], Some("mask")),
        (
            "ignore_change",
            &["mask", "exclude", "ignore_changes"],
            Some("ignore_changes"),
        ),
        ("from", &["to", "form"], Some("form")),
        (
            "verify-coverag",
            &["health", "verify-coverage"],
            Some("verify-coverage"),
        ),
        ("x", &[], None),
    ];

    #[test]
    fn every_did_you_mean_follows_one_rule() {
        for (word, candidates, expected) in HINTS {
            assert_eq!(suggest(word, candidates), *expected, "syntax: {word:?}");
            assert_eq!(
                threadline::__support::suggest(word, candidates),
                *expected,
                "core: {word:?}"
            );
        }
    }

    static SPEC: Spec = Spec {
        command: "demo",
        positionals: &["table"],
        optional: &[],
        options: &["page-size"],
        switches: &["json"],
        filters: true,
        database: true,
        config: false,
        help: "",
    };

    fn parse(args: &[&str]) -> Result<Option<Args>, Failure> {
        SPEC.parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn usage(args: &[&str]) -> String {
        match parse(args) {
            Err(Failure::Usage(message)) => message,
            other => panic!("{args:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn both_value_forms_switches_and_the_terminator_parse() {
        let args = parse(&["--page-size", "5", "posts", "--op=update", "--json"])
            .unwrap()
            .unwrap();
        assert_eq!(args.positional(0), "posts");
        assert_eq!(args.page_size().unwrap(), Some(5));
        assert_eq!(args.value("op"), Some("update"));
        assert!(args.switch("json"));
        for positional in ["-5", "-", "é"] {
            assert_eq!(parse(&[positional]).unwrap().unwrap().positional(0), positional);
        }
        let args = parse(&["posts", "--op", "-x", "--page-size=-Xk2"]).unwrap().unwrap();
        assert_eq!((args.value("op"), args.value("page-size")), (Some("-x"), Some("-Xk2")));
        assert_eq!(parse(&["posts", "--op=--x"]).unwrap().unwrap().value("op"), Some("--x"));
        let args = parse(&["--", "--json"]).unwrap().unwrap();
        assert_eq!(args.positional(0), "--json");
        assert!(!args.switch("json"));
        assert!(parse(&["posts", "--help"]).unwrap().is_none());
    }

    #[test]
    fn mistakes_are_usage_errors() {
        assert!(usage(&["posts", "--tabel", "x"]).contains("did you mean --table?"));
        assert!(usage(&["posts", "--json=yes"]).contains("takes no value"));
        assert!(usage(&["posts", "--op"]).contains("needs a value"));
        assert!(usage(&["posts", "--op", "--json"]).contains("needs a value"));
        assert!(usage(&["posts", "--op=insert", "--op=update"]).contains("twice"));
        assert!(usage(&[]).contains("takes <table>, got 0 arguments"));
        assert!(usage(&["posts", "-x"]).contains("unknown flag -x"));
        let args = parse(&["posts", "--page-size=0", "--from=yesterday"]).unwrap().unwrap();
        assert!(matches!(args.page_size(), Err(Failure::Usage(m)) if m.contains("between 1 and")));
        assert!(
            matches!(args.filter(), Err(Failure::Usage(m)) if m.starts_with("--from: \"yesterday\" is not an RFC 3339"))
        );
    }

    #[test]
    fn filter_flags_map_to_filter_keys() {
        let args = parse(&["posts", "--tenant", "acme", "--request-id=r1", "--actor", "user:42"])
            .unwrap()
            .unwrap();
        let expected = Filter::from_pairs([("tenant_id", "acme"), ("request_id", "r1"), ("actor", "user:42")]).unwrap();
        assert_eq!(args.filter().unwrap(), expected);
    }
}
