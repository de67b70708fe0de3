//! `threadline.toml`: where the project's sources and migrations are, and what the health
//! commands expect of the database. Found the way `diesel.toml` is: in the current
//! directory or the nearest ancestor that has one, unless `--config PATH` names it.
//! Paths in it are relative to its own folder; flags override it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use threadline::read::TableName;
use threadline_syntax::suggest;
use toml::{Table, Value};

use crate::Failure;

/// The file's name.
pub const FILE_NAME: &str = "threadline.toml";

/// The type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A path, relative to the file's folder.
    Path,
    /// A schema name.
    Schema,
    /// `true` or `false`.
    Bool,
    /// An array of table names, `schema.table` or `table` (in `public`).
    Tables,
    /// A whole number, 1 or more.
    Count,
    /// A whole number, 0 or more.
    Millis,
}

impl Kind {
    /// What a value of the kind looks like, for errors.
    fn expected(self) -> &'static str {
        match self {
            Kind::Path => "a path string, like \"src\"",
            Kind::Schema => "a schema name string, like \"public\"",
            Kind::Bool => "true or false",
            Kind::Tables => "an array of table names, like [\"public.posts\", \"users\"]",
            Kind::Count => "a whole number, 1 or more",
            Kind::Millis => "a whole number of milliseconds, 0 or more",
        }
    }
}

/// One key of the file: its dotted name, type, default and meaning. The one list the
/// parser checks the file against, the `--help` texts and the README are written from.
#[derive(Debug)]
pub struct Key {
    /// `section.key`.
    pub name: &'static str,
    kind: Kind,
    /// The value when the key is absent, as TOML would write it.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every key `threadline.toml` accepts.
pub static KEYS: [Key; 12] = [
    Key {
        name: "paths.src",
        kind: Kind::Path,
        default: "\"src\"",
        doc: "the Rust sources scanned for #[derive(Audited)] models (gen-triggers, policy show, verify-coverage)",
    },
    Key {
        name: "paths.migrations",
        kind: Kind::Path,
        default: "\"migrations\"",
        doc: "the Diesel migrations folder (install, gen-triggers)",
    },
    Key {
        name: "coverage.schema",
        kind: Kind::Schema,
        default: "\"public\"",
        doc: "the schema health reports on",
    },
    Key {
        name: "coverage.all_schemas",
        kind: Kind::Bool,
        default: "false",
        doc: "report on every schema but PostgreSQL's and Threadline's own instead",
    },
    Key {
        name: "coverage.audited",
        kind: Kind::Tables,
        default: "the tables of the #[derive(Audited)] models under paths.src",
        doc: "the tables verify-coverage requires to be covered",
    },
    Key {
        name: "coverage.unaudited",
        kind: Kind::Tables,
        default: "[]",
        doc: "tables expected to stay unaudited, reported as expected uncovered \
              (public.__diesel_schema_migrations always is)",
    },
    Key {
        name: "coverage.require_actor",
        kind: Kind::Bool,
        default: "false",
        doc: "expect strict mode on: health reports an error while threadline.require_actor is off",
    },
    Key {
        name: "retention.keep_days",
        kind: Kind::Count,
        default: "none: retention purge needs --keep-days",
        doc: "how many days of changes retention purge keeps",
    },
    Key {
        name: "retention.batch_size",
        kind: Kind::Count,
        default: "10000",
        doc: "changes deleted per batch",
    },
    Key {
        name: "retention.pause_ms",
        kind: Kind::Millis,
        default: "100",
        doc: "the pause between batches, so the app keeps its throughput",
    },
    Key {
        name: "exports.dir",
        kind: Kind::Path,
        default: "\"threadline-exports\"",
        doc: "the folder export-jobs writes objects to",
    },
    Key {
        name: "exports.ttl_days",
        kind: Kind::Count,
        default: "7",
        doc: "the days a completed export job's object is kept",
    },
];

/// The settings a command runs with: the file's, else the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file read, if one was found.
    pub file: Option<PathBuf>,
    /// `paths.src`, resolved against the file's folder.
    pub src: PathBuf,
    /// `paths.migrations`, resolved against the file's folder.
    pub migrations: PathBuf,
    /// `coverage.schema`; `None` with `coverage.all_schemas`.
    pub schema: Option<String>,
    /// `coverage.audited`, if given.
    pub audited: Option<Vec<TableName>>,
    /// `coverage.unaudited`.
    pub unaudited: Vec<TableName>,
    /// `coverage.require_actor`.
    pub require_actor: bool,
    /// `retention.keep_days`.
    pub keep_days: Option<i64>,
    /// `retention.batch_size`.
    pub batch_size: Option<i64>,
    /// `retention.pause_ms`.
    pub pause_ms: Option<i64>,
    /// `exports.dir`, resolved against the file's folder.
    pub exports_dir: PathBuf,
    /// `exports.ttl_days`.
    pub ttl_days: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            file: None,
            src: PathBuf::from("src"),
            migrations: PathBuf::from("migrations"),
            schema: Some("public".to_owned()),
            audited: None,
            unaudited: Vec::new(),
            require_actor: false,
            keep_days: None,
            batch_size: None,
            pause_ms: None,
            exports_dir: PathBuf::from("threadline-exports"),
            ttl_days: None,
        }
    }
}

/// The nearest `threadline.toml` in `dir` or an ancestor.
fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().map(|d| d.join(FILE_NAME)).find(|path| path.is_file())
}

impl Config {
    /// The settings for a command: the file `explicit` names (which must exist), else the
    /// nearest `threadline.toml` from the current directory up, else the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, Failure> {
        let file = match explicit {
            Some(path) if path.is_file() => path.to_owned(),
            Some(path) if path.is_dir() => {
                return Err(Failure::Usage(format!(
                    "--config {}: a folder; name the threadline.toml file",
                    path.display()
                )));
            }
            Some(path) => return Err(Failure::Usage(format!("--config {}: no such file", path.display()))),
            None => {
                let cwd = std::env::current_dir()
                    .map_err(|e| Failure::Runtime(format!("cannot read the current directory: {e}")))?;
                match find(&cwd) {
                    Some(file) => file,
                    None => return Ok(Config::default()),
                }
            }
        };
        let text =
            fs::read_to_string(&file).map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", file.display())))?;
        Config::parse(&text, &file).map_err(|errors| {
            Failure::Usage(errors.iter().fold(String::new(), |mut out, error| {
                let _ = write!(
                    out,
                    "{}{}: {error}",
                    if out.is_empty() { "" } else { "\n" },
                    file.display()
                );
                out
            }))
        })
    }

    /// Reads the text of `file`: every mistake, each naming its key.
    fn parse(text: &str, file: &Path) -> Result<Config, Vec<String>> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| vec![located(text, &e)])?;
        let base = file.parent().unwrap_or(Path::new("."));
        let mut config = Config {
            file: Some(file.to_owned()),
            src: base.join("src"),
            migrations: base.join("migrations"),
            exports_dir: base.join("threadline-exports"),
            ..Config::default()
        };
        let mut errors = Vec::new();
        let mut all_schemas = None;
        for (section, value) in &table {
            let Some(keys) = value.as_table() else {
                errors.push(match KEYS.iter().find(|k| k.name.ends_with(&format!(".{section}"))) {
                    Some(key) => format!("{section} belongs in a [{}] section", section_of(key)),
                    None => unknown(section, &sections()),
                });
                continue;
            };
            if !sections().contains(&section.as_str()) {
                errors.push(unknown(&format!("[{section}]"), &sections()));
                continue;
            }
            for (name, value) in keys {
                let dotted = format!("{section}.{name}");
                let Some(key) = KEYS.iter().find(|k| k.name == dotted) else {
                    errors.push(unknown_key(section, name));
                    continue;
                };
                let result = match (key.name, value) {
                    ("paths.src", Value::String(path)) => {
                        config.src = base.join(path);
                        Ok(())
                    }
                    ("exports.dir", Value::String(path)) => {
                        config.exports_dir = base.join(path);
                        Ok(())
                    }
                    ("exports.ttl_days", Value::Integer(n)) if *n >= 1 => {
                        config.ttl_days = Some(*n);
                        Ok(())
                    }
                    ("paths.migrations", Value::String(path)) => {
                        config.migrations = base.join(path);
                        Ok(())
                    }
                    ("coverage.schema", Value::String(schema)) if schema.is_empty() => {
                        Err(format!("{dotted} is empty; name a schema, like \"public\""))
                    }
                    ("coverage.schema", Value::String(schema)) => {
                        config.schema = Some(schema.clone());
                        Ok(())
                    }
                    ("coverage.all_schemas", Value::Boolean(all)) => {
                        all_schemas = Some(*all);
                        Ok(())
                    }
                    ("coverage.require_actor", Value::Boolean(on)) => {
                        config.require_actor = *on;
                        Ok(())
                    }
                    ("retention.keep_days" | "retention.batch_size", Value::Integer(n)) if *n >= 1 => {
                        *if key.name == "retention.keep_days" {
                            &mut config.keep_days
                        } else {
                            &mut config.batch_size
                        } = Some(*n);
                        Ok(())
                    }
                    ("retention.pause_ms", Value::Integer(n)) if *n >= 0 => {
                        config.pause_ms = Some(*n);
                        Ok(())
                    }
                    ("coverage.audited", Value::Array(items)) => {
                        tables(&dotted, items).map(|tables| config.audited = Some(tables))
                    }
                    ("coverage.unaudited", Value::Array(items)) => {
                        tables(&dotted, items).map(|tables| config.unaudited = tables)
                    }
                    (_, value) => Err(format!(
                        "{dotted} must be {}, not {}",
                        key.kind.expected(),
                        describe(value)
                    )),
                };
                if let Err(error) = result {
                    errors.push(error);
                }
            }
        }
        if all_schemas == Some(true) {
            if keys_of(&table, "coverage").any(|k| k == "schema") {
                errors.push("give coverage.schema or coverage.all_schemas = true, not both".to_owned());
            }
            config.schema = None;
        }
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }
}

/// A syntax error with its line and column: `line 3, column 7: unclosed table`.
fn located(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(at) = error.span().map(|span| span.start.min(text.len())) else {
        return message.to_owned();
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
}

/// The sections of [`KEYS`], in order.
fn sections() -> Vec<&'static str> {
    let mut out: Vec<&str> = KEYS.iter().map(section_of).collect();
    out.dedup();
    out
}

fn section_of(key: &Key) -> &'static str {
    key.name.split_once('.').map_or(key.name, |(section, _)| section)
}

/// The key names given in a section of the file.
fn keys_of<'a>(table: &'a Table, section: &str) -> impl Iterator<Item = &'a str> {
    table
        .get(section)
        .and_then(Value::as_table)
        .into_iter()
        .flat_map(|t| t.keys().map(String::as_str))
}

/// `unknown key x (did you mean y?)`.
fn unknown(what: &str, known: &[&str]) -> String {
    let bare = what.trim_start_matches('[').trim_end_matches(']');
    let hint = suggest(bare, known)
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    format!("unknown key {what}{hint}; known sections: {}", known.join(", "))
}

/// An unknown key in a known section: a near name in it, or the section it belongs in.
fn unknown_key(section: &str, name: &str) -> String {
    let dotted = format!("{section}.{name}");
    let names: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
    if let Some(key) = KEYS.iter().find(|k| k.name.ends_with(&format!(".{name}"))) {
        return format!(
            "unknown key {dotted}: {name} belongs in [{}] ({})",
            section_of(key),
            key.name
        );
    }
    let hint = suggest(&dotted, &names)
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    let in_section: Vec<&str> = names
        .iter()
        .filter(|n| n.starts_with(&format!("{section}.")))
        .copied()
        .collect();
    format!(
        "unknown key {dotted}{hint}; [{section}] takes {}",
        in_section.join(", ")
    )
}

/// The table names of an array, each checked.
fn tables(key: &str, items: &[Value]) -> Result<Vec<TableName>, String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(name) => name.parse::<TableName>().map_err(|e| format!("{key}[{i}]: {e}")),
            other => Err(format!(
                "{key}[{i}] must be a table name string, like \"public.posts\", not {}",
                describe(other)
            )),
        })
        .collect()
}

/// A TOML value's type, for errors: `a string ("yes")`.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("a string ({s:?})"),
        Value::Integer(n) => format!("an integer ({n})"),
        Value::Float(x) => format!("a float ({x})"),
        Value::Boolean(b) => format!("a boolean ({b})"),
        Value::Datetime(d) => format!("a date-time ({d})"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

/// The key reference of the `--help` texts: one line per key.
pub fn reference() -> String {
    KEYS.iter().fold(String::new(), |mut out, key| {
        let _ = writeln!(
            out,
            "  {:<24} {}\n  {:<24} (default: {})",
            key.name, key.doc, "", key.default
        );
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(text, Path::new("/app/threadline.toml"))
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text).expect_err("the file is refused")
    }

    #[test]
    fn every_key_is_read_and_paths_are_relative_to_the_file() {
        let config = parse(
            "[paths]\nsrc = \"app/src\"\nmigrations = \"db/migrations\"\n\
             [coverage]\nschema = \"app\"\naudited = [\"posts\", \"app.users\"]\n\
             unaudited = [\"app.sessions\"]\nrequire_actor = true\n",
        )
        .unwrap();
        assert_eq!(config.src, Path::new("/app/app/src"));
        assert_eq!(config.migrations, Path::new("/app/db/migrations"));
        assert_eq!(config.schema.as_deref(), Some("app"));
        let audited: Vec<String> = config.audited.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(audited, ["public.posts", "app.users"]);
        assert_eq!(config.unaudited[0].to_string(), "app.sessions");
        assert!(config.require_actor);
        let empty = parse("").unwrap();
        assert_eq!(empty.src, Path::new("/app/src"));
        assert_eq!((empty.schema.as_deref(), empty.audited), (Some("public"), None));
        assert_eq!(parse("[coverage]\nall_schemas = true").unwrap().schema, None);
    }

    #[test]
    fn unknown_keys_suggest_and_wrong_types_name_the_key() {
        assert_eq!(
            errors("[coverage]\naudted = []"),
            [
                "unknown key coverage.audted (did you mean coverage.audited?); [coverage] takes coverage.schema, \
              coverage.all_schemas, coverage.audited, coverage.unaudited, coverage.require_actor"
            ]
        );
        assert_eq!(
            errors("[paths]\naudited = []"),
            ["unknown key paths.audited: audited belongs in [coverage] (coverage.audited)"]
        );
        assert_eq!(
            errors("[coverge]\naudited = []"),
            ["unknown key [coverge] (did you mean coverage?); known sections: paths, coverage, retention, exports"]
        );
        assert_eq!(errors("src = \"x\""), ["src belongs in a [paths] section"]);
        assert_eq!(
            errors("[coverage]\nrequire_actor = \"yes\"\naudited = [\"posts\", 3]"),
            [
                "coverage.audited[1] must be a table name string, like \"public.posts\", not an integer (3)",
                "coverage.require_actor must be true or false, not a string (\"yes\")",
            ]
        );
        assert_eq!(
            errors("[retention]\nkeep_days = 0\npause_ms = -1"),
            [
                "retention.keep_days must be a whole number, 1 or more, not an integer (0)",
                "retention.pause_ms must be a whole number of milliseconds, 0 or more, not an integer (-1)",
            ]
        );
        assert_eq!(parse("[retention]\nkeep_days = 90").unwrap().keep_days, Some(90));
        assert_eq!(
            errors("[paths]\nsrc = 1"),
            ["paths.src must be a path string, like \"src\", not an integer (1)"]
        );
        assert_eq!(
            errors("[coverage]\nschema = \"app\"\nall_schemas = true"),
            ["give coverage.schema or coverage.all_schemas = true, not both"]
        );
        assert_eq!(
            errors("[paths]\nsrc = \"a\"\n[coverage\n"),
            ["line 3, column 10: unclosed table, expected `]`"]
        );
    }

    #[test]
    fn the_readme_documents_every_key_and_the_example_s_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        for key in &KEYS {
            assert!(
                readme.contains(&format!("| `{}` |", key.name)),
                "{} in the README",
                key.name
            );
        }
        let example = root.join("examples/blog").join(FILE_NAME);
        let config = Config::parse(&fs::read_to_string(&example).unwrap(), &example).unwrap();
        assert_eq!(config.audited.map(|a| a.len()), Some(3));
    }

    #[test]
    fn the_nearest_file_up_the_tree_is_found() {
        let root = std::env::temp_dir().join(format!("threadline-config-{}", std::process::id()));
        let nested = root.join("a/b");
        fs::create_dir_all(&nested).unwrap();
        assert_eq!(find(&nested), None);
        fs::write(root.join(FILE_NAME), "").unwrap();
        assert_eq!(find(&nested), Some(root.join(FILE_NAME)));
        fs::write(nested.join(FILE_NAME), "").unwrap();
        assert_eq!(find(&nested), Some(nested.join(FILE_NAME)));
        fs::remove_dir_all(&root).unwrap();
    }
}
