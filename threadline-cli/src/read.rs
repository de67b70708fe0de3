//! The investigation commands: `timeline`, `history`, `as-of` and `incident`.

use std::io::{self, BufWriter, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use threadline::ActorRef;
use threadline::read::{
    ActionRecord, AsOf, Change, Cursor, DiffedChange, FieldValue, Page, Reader, RowKey, TableName, TransactionRecord,
    parse_time,
};

use crate::args::{Args, DEFAULT_PAGE_SIZE, Spec};
use crate::{Failure, connect, note};

/// `threadline timeline`.
pub static TIMELINE: Spec = Spec {
    command: "timeline",
    positionals: &[],
    optional: &[],
    options: &["page-size", "cursor"],
    switches: &["json"],
    filters: true,
    database: true,
    config: false,
    help: concat!(
        "usage: threadline timeline [filters] [--page-size N] [--cursor C] [--json]

Lists the newest changes matching the filters, newest first, one page at a time.

",
        crate::args::filter_help!(),
        "
options:
  --page-size N         changes per page, 1 to 10000 (default 50)
  --cursor C            continue after the page that printed this cursor
  --json                print {\"entries\":[change...],\"next_cursor\":\"...\"|null}
  --database-url URL    the database (default: $DATABASE_URL)

Each line: captured_at, op, table, key, actor, action, changed fields. When more
changes match, the cursor of the next page is printed on stderr."
    ),
};

/// `threadline history`.
pub static HISTORY: Spec = Spec {
    command: "history",
    positionals: &["table", "key"],
    optional: &[],
    options: &["page-size", "cursor"],
    switches: &["json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline history <table> <key> [--page-size N] [--cursor C] [--json]

Lists the changes of one row, newest first.

  <table>               schema.table, or table in public
  <key>                 42 for a one-column key; a=1,b=x for every key column;
                        or JSON: {\"a\":1,\"b\":\"x\"}, or \"a,b\" for a value with , or =

options:
  --page-size N         changes per page, 1 to 10000 (default 50)
  --cursor C            continue after the page that printed this cursor
  --json                print a JSON array of changes, newest first
  --database-url URL    the database (default: $DATABASE_URL)

When more changes exist, the cursor of the next page is printed on stderr.
Exits with status 1 when nothing was captured for the row.",
};

/// `threadline as-of`.
pub static AS_OF: Spec = Spec {
    command: "as-of",
    positionals: &["table", "key", "timestamp"],
    optional: &[],
    options: &[],
    switches: &["json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline as-of <table> <key> <timestamp> [--json]

Shows a row as it was at a time (inclusive, to the microsecond), as captured
(redacted by the table's policy).

  <table>               schema.table, or table in public
  <key>                 as for 'threadline history'
  <timestamp>           RFC 3339, e.g. 2026-11-27T09:30:00Z

options:
  --json                print {\"status\":\"found\",\"data\":{row},\"change\":{change}},
                        {\"status\":\"deleted\",\"data\":null,\"deleted_at\":\"...\"} or
                        {\"status\":\"before_horizon\",\"data\":null}
  --database-url URL    the database (default: $DATABASE_URL)

before_horizon: nothing was captured for the row at or before that time. Exits with
status 1 when nothing was ever captured for the row.",
};

/// `threadline incident`.
pub static INCIDENT: Spec = Spec {
    command: "incident",
    positionals: &["transaction-id"],
    optional: &[],
    options: &["page-size", "cursor"],
    switches: &["json"],
    filters: false,
    database: true,
    config: false,
    help: "usage: threadline incident <transaction-id> [--page-size N] [--cursor C] [--json]

Shows one audit transaction (an audit_transactions id, the transaction_id of every
change): who, which request, which action, and its changes in capture order with
each field before and after.

options:
  --page-size N         changes per page, 1 to 10000 (default 50)
  --cursor C            continue after the page that printed this cursor
  --json                print {\"transaction\":{transaction, with its action nested},
                        \"action\":{action}|null, \"changes\":[{\"change\":{change},
                        \"fields\":[{\"name\",\"before\",\"after\"}...]}...],
                        \"next_cursor\":\"...\"|null}; a side with no value (before an
                        insert, after a delete) is left out, and a prior value the policy
                        did not keep shows as \"before_state\":\"not_kept\"
  --database-url URL    the database (default: $DATABASE_URL)

Exits with status 1 when the transaction does not exist.",
};

/// Runs `threadline timeline`.
pub fn timeline(args: &Args) -> Result<(), Failure> {
    let filter = args.filter()?;
    let page_size = args.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
    let cursor = args.cursor()?;
    let mut conn = connect(args)?;
    let page = Reader::new().timeline_page_blocking(&mut conn, &filter, cursor.as_ref(), page_size)?;
    let mut out = BufWriter::new(io::stdout().lock());
    if args.switch("json") {
        json_line(&mut out, &page)?;
    } else {
        if page.entries.is_empty() {
            note("no changes match");
        }
        write_changes(&mut out, &page.entries)?;
        more(&page);
    }
    Ok(out.flush()?)
}

/// Runs `threadline history`.
pub fn history(args: &Args) -> Result<(), Failure> {
    let (table, key) = row(args)?;
    let page_size = args.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
    let cursor = args.cursor()?;
    let mut conn = connect(args)?;
    let found = Reader::new().row_history_page_blocking(&mut conn, &table, &key, cursor.as_ref(), page_size);
    let horizon = match &found {
        Ok(page) if page.next_cursor.is_some() => None,
        // A database still at schema version 1 has no runs log: no horizon to tell.
        _ => threadline::retention::horizon_blocking(&mut conn).ok().flatten(),
    };
    let begins = horizon.map(|at| {
        format!(
            "the trail begins at {}: retention deleted the changes captured before it",
            at.to_rfc3339_opts(SecondsFormat::Micros, true)
        )
    });
    let page = match (found, &begins) {
        (Err(threadline::Error::NotFound { what }), Some(begins)) => {
            return Err(Failure::Runtime(format!("{what} not found; {begins}")));
        }
        (found, _) => found?,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.switch("json") {
        json_line(&mut out, &page.entries)?;
    } else {
        write_changes(&mut out, &page.entries)?;
    }
    out.flush()?;
    more(&page);
    if let Some(begins) = begins {
        note(begins);
    }
    Ok(())
}

/// `threadline as-of --json`.
#[derive(Serialize)]
struct AsOfJson<'a> {
    status: &'static str,
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<&'a Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
}

/// Runs `threadline as-of`.
pub fn as_of(args: &Args) -> Result<(), Failure> {
    let (table, key) = row(args)?;
    let at = parse_time("timestamp", args.positional(2)).map_err(|e| args.usage(e))?;
    let mut conn = connect(args)?;
    let found = Reader::new().as_of_blocking(&mut conn, &table, &key, at)?;
    let json = match &found {
        AsOf::Found(change) => AsOfJson {
            status: "found",
            data: change.data.as_ref(),
            change: Some(change),
            deleted_at: None,
        },
        AsOf::Deleted { at } => AsOfJson {
            status: "deleted",
            data: None,
            change: None,
            deleted_at: Some(time(at)),
        },
        AsOf::BeforeHorizon => AsOfJson {
            status: "before_horizon",
            data: None,
            change: None,
            deleted_at: None,
        },
        _ => {
            return Err(Failure::Runtime(
                "an answer this release of the command cannot show".into(),
            ));
        }
    };
    let mut out = BufWriter::new(io::stdout().lock());
    if args.switch("json") {
        json_line(&mut out, &json)?;
    } else {
        match (json.change, json.deleted_at) {
            (Some(change), _) => {
                let by = change
                    .actor
                    .as_ref()
                    .map(|a| format!(", by {}", actor(Some(a))))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "found: as set by the {} of {} (transaction {}{by})",
                    change.op,
                    time(&change.captured_at),
                    change.transaction_id,
                )?;
                serde_json::to_writer_pretty(&mut out, &json.data).map_err(io::Error::from)?;
                writeln!(out)?;
            }
            (None, Some(deleted_at)) => writeln!(out, "deleted: the row was deleted at {deleted_at}")?,
            (None, None) => writeln!(
                out,
                "before horizon: nothing was captured for the row at or before {}",
                time(&at)
            )?,
        }
    }
    Ok(out.flush()?)
}

/// `threadline incident --json`.
#[derive(Serialize)]
struct IncidentJson<'a> {
    transaction: &'a TransactionRecord,
    action: Option<&'a ActionRecord>,
    changes: &'a [DiffedChange],
    next_cursor: Option<&'a Cursor>,
}

/// Runs `threadline incident`.
pub fn incident(args: &Args) -> Result<(), Failure> {
    let id = args.positional(0);
    let id: i64 = id.trim().parse().map_err(|_| {
        args.usage(format!(
            "<transaction-id>: {id:?} is not an audit transaction id (a number)"
        ))
    })?;
    let page_size = args.page_size()?.unwrap_or(DEFAULT_PAGE_SIZE);
    let cursor = args.cursor()?;
    let mut conn = connect(args)?;
    let incident = Reader::new().incident_bundle_blocking(&mut conn, id, cursor.as_ref(), page_size)?;
    let (transaction, changes) = (&incident.transaction, &incident.changes);
    let mut out = BufWriter::new(io::stdout().lock());
    if args.switch("json") {
        json_line(
            &mut out,
            &IncidentJson {
                transaction,
                action: transaction.action.as_ref(),
                changes: &changes.entries,
                next_cursor: changes.next_cursor.as_ref(),
            },
        )?;
        return Ok(out.flush()?);
    }
    let action = transaction
        .action
        .as_ref()
        .map_or("-".to_owned(), |a| format!("{} ({})", a.name, a.status));
    writeln!(out, "Transaction  {} (xact {})", transaction.id, transaction.xact_id)?;
    writeln!(out, "Occurred     {}", time(&transaction.occurred_at))?;
    writeln!(out, "Actor        {}", actor(transaction.actor.as_ref()))?;
    writeln!(out, "Request      {}", transaction.request_id.as_deref().unwrap_or("-"))?;
    writeln!(
        out,
        "Correlation  {}",
        transaction.correlation_id.as_deref().unwrap_or("-")
    )?;
    if let Some(tenant) = &transaction.tenant_id {
        writeln!(out, "Tenant       {tenant}")?;
    }
    writeln!(out, "Action       {action}")?;
    for diffed in &changes.entries {
        let change = &diffed.change;
        writeln!(
            out,
            "\n{}  {}  {}.{}  {}",
            time(&change.captured_at),
            change.op,
            change.table_schema,
            change.table_name,
            Value::Object(change.table_pk.clone())
        )?;
        for field in &diffed.fields {
            writeln!(
                out,
                "  {}: {} -> {}",
                field.name,
                side(&field.before),
                side(&field.after)
            )?;
        }
    }
    out.flush()?;
    more(changes);
    Ok(())
}

/// The `<table> <key>` positionals.
fn row(args: &Args) -> Result<(TableName, RowKey), Failure> {
    let table = args.positional(0).parse().map_err(|e| args.usage(e))?;
    let key = args.positional(1).parse().map_err(|e| args.usage(e))?;
    Ok((table, key))
}

/// Tells where the next page starts, on stderr, when there is one.
fn more<T>(page: &Page<T>) {
    if let Some(cursor) = &page.next_cursor {
        note(format!("more changes: --cursor {cursor}"));
    }
}

/// Writes `value` as one line of compact JSON.
fn json_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), Failure> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)?;
    Ok(writeln!(out)?)
}

/// A time as the trail stores it: RFC 3339 in UTC with microseconds.
fn time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `type:id`, `type` for an anonymous actor, `-` for none.
fn actor(actor: Option<&ActorRef>) -> String {
    match actor {
        Some(actor) => match actor.id() {
            Some(id) => format!("{}:{id}", actor.actor_type()),
            None => actor.actor_type().to_string(),
        },
        None => "-".into(),
    }
}

/// One side of a field diff.
fn side(value: &FieldValue) -> String {
    match value {
        FieldValue::Value(value) => value.to_string(),
        FieldValue::Absent => "(none)".into(),
        FieldValue::NotKept => "(not kept)".into(),
        _ => "(unknown)".into(),
    }
}

/// Writes one aligned line per change.
fn write_changes(out: &mut impl Write, changes: &[Change]) -> Result<(), Failure> {
    let rows: Vec<[String; 7]> = changes
        .iter()
        .map(|c| {
            [
                time(&c.captured_at),
                c.op.to_string(),
                format!("{}.{}", c.table_schema, c.table_name),
                Value::Object(c.table_pk.clone()).to_string(),
                actor(c.actor.as_ref()),
                c.action.clone().unwrap_or_else(|| "-".into()),
                if c.changed_fields.is_empty() {
                    "-".into()
                } else {
                    c.changed_fields.join(",")
                },
            ]
        })
        .collect();
    let mut widths = [0; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:width$}  "));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}
