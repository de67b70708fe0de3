//! Exports of the changes a [`Filter`] selects, as CSV, JSON or NDJSON, streamed from
//! keyset pages so memory stays flat whatever the row count.
//!
//! Every format carries the same fields, in this order (the CSV header):
//!
//! ```text
//! id,transaction_id,captured_at,table_schema,table_name,op,table_pk,data,changed_fields,changed_from,from_update,actor,request_id,correlation_id,tenant_id,action,masked_fields,excluded_fields
//! ```
//!
//! - **CSV**: RFC 4180 with CRLF line ends; a cell holding a comma, a quote, CR or LF is
//!   quoted, quotes doubled. `table_pk`, `data`, `changed_fields`, `changed_from`,
//!   `actor`, `masked_fields` and `excluded_fields` cells hold JSON; an absent value is an
//!   empty cell.
//! - `masked_fields` and `excluded_fields` are the columns the policy masked and excluded
//!   when the change was captured (`[]` when none), so a placeholder in `data` is never
//!   mistaken for a value.
//! - **JSON**: one document,
//!   `{"format_version":1,"generated_at":"…","changes":[…],"truncated":false}`.
//! - **NDJSON**: one change object per line.
//! - **Parquet** (feature `parquet`): a folder of files by table and day, with typed
//!   columns; see `threadline::export::parquet`.
//!
//! Times are RFC 3339 in UTC with microseconds. An export is written page by page; the
//! bytes are the same whatever the page size, so a streamed export equals an eager one.
//!
//! ```no_run
//! # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
//! use threadline::export::{ExportOptions, Format};
//! use threadline::read::{Filter, Reader};
//!
//! let filter = Filter::new().table("public.posts")?;
//! let mut export = Reader::new().export(&filter, ExportOptions::new(Format::Csv).max_rows(100_000))?;
//! let mut file = std::fs::File::create("posts-audit.csv")?;
//! let summary = export.write_to(conn, &mut file, |rows| eprint!("\r{rows} rows")).await?;
//! println!("{} rows, truncated: {}", summary.rows, summary.truncated);
//! # Ok(()) }
//! ```

#[cfg(feature = "parquet")]
pub mod parquet;

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use diesel_async::AsyncPgConnection;

use crate::read::{
    CHANGE_SOURCE, ChangeQuery, Db, Filter, Reader, Restriction, Surface, check_page_size, ready, rfc3339,
};
use crate::{Error, telemetry};

/// The fields of every export, in order.
pub const FIELDS: [&str; 18] = [
    "id",
    "transaction_id",
    "captured_at",
    "table_schema",
    "table_name",
    "op",
    "table_pk",
    "data",
    "changed_fields",
    "changed_from",
    "from_update",
    "actor",
    "request_id",
    "correlation_id",
    "tenant_id",
    "action",
    "masked_fields",
    "excluded_fields",
];

/// The version of the JSON document's shape.
pub const FORMAT_VERSION: u32 = 1;

/// Rows read per page unless [`ExportOptions::page_size`] says otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 2000;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One JSON document.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl FromStr for Format {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            "ndjson" => Ok(Format::Ndjson),
            other => Err(Error::invalid(
                "format",
                format!("{other:?} is not one of csv, json, ndjson"),
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        })
    }
}

/// How to export: the format, a row cap, the page size and the document's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    format: Format,
    max_rows: Option<u64>,
    page_size: usize,
    generated_at: DateTime<Utc>,
}

impl ExportOptions {
    /// Options for `format`, with no row cap, generated now.
    pub fn new(format: Format) -> Self {
        ExportOptions {
            format,
            max_rows: None,
            page_size: DEFAULT_PAGE_SIZE,
            generated_at: Utc::now(),
        }
    }

    /// Stops after `max_rows` changes; the summary (and the JSON document) then says
    /// whether more matched.
    pub fn max_rows(mut self, max_rows: u64) -> Self {
        self.max_rows = Some(max_rows);
        self
    }

    /// Rows read per database round trip (1 to [`crate::read::MAX_PAGE_SIZE`]); it
    /// changes memory and speed, never the bytes.
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// The `generated_at` of the JSON document (default: when the options were made).
    pub fn generated_at(mut self, at: DateTime<Utc>) -> Self {
        self.generated_at = at;
        self
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Changes written.
    pub rows: u64,
    /// True when `max_rows` stopped the export before every match was written.
    pub truncated: bool,
    /// Bytes written.
    pub bytes: u64,
}

/// A change as exports read it: JSON columns arrive as text and are copied verbatim.
#[derive(QueryableByName)]
#[diesel(table_name = crate::tables::audit_changes)]
struct ExportRow {
    id: i64,
    transaction_id: i64,
    captured_at: DateTime<Utc>,
    table_schema: String,
    table_name: String,
    op: String,
    #[diesel(sql_type = Text)]
    table_pk: String,
    #[diesel(sql_type = Nullable<Text>)]
    data: Option<String>,
    #[diesel(sql_type = Text)]
    changed_fields: String,
    #[diesel(sql_type = Nullable<Text>)]
    changed_from: Option<String>,
    from_update: bool,
    #[diesel(sql_type = Nullable<Text>)]
    actor: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    request_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    correlation_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tenant_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    action: Option<String>,
    #[diesel(sql_type = Text)]
    masked_fields: String,
    #[diesel(sql_type = Text)]
    excluded_fields: String,
}

const EXPORT_COLUMNS: &str = "c.id, c.transaction_id, c.captured_at, c.table_schema, c.table_name, c.op, \
     c.table_pk::text AS table_pk, c.data::text AS data, \
     coalesce(to_json(c.changed_fields)::text, '[]') AS changed_fields, c.changed_from::text AS changed_from, \
     c.from_update, t.actor::text AS actor, t.request_id, t.correlation_id, t.tenant_id, a.name AS action, \
     coalesce(to_json(c.masked_fields)::text, '[]') AS masked_fields, \
     coalesce(to_json(c.excluded_fields)::text, '[]') AS excluded_fields";

/// One value of a row, as the formats see it.
enum Cell<'a> {
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Json(&'a str),
    Null,
}

impl ExportRow {
    fn cells<'a>(&'a self, captured_at: &'a str) -> [Cell<'a>; FIELDS.len()] {
        fn text(v: &Option<String>) -> Cell<'_> {
            v.as_deref().map_or(Cell::Null, Cell::Text)
        }
        fn json(v: &Option<String>) -> Cell<'_> {
            v.as_deref().map_or(Cell::Null, Cell::Json)
        }
        [
            Cell::Int(self.id),
            Cell::Int(self.transaction_id),
            Cell::Text(captured_at),
            Cell::Text(&self.table_schema),
            Cell::Text(&self.table_name),
            Cell::Text(&self.op),
            Cell::Json(&self.table_pk),
            json(&self.data),
            Cell::Json(&self.changed_fields),
            json(&self.changed_from),
            Cell::Bool(self.from_update),
            json(&self.actor),
            text(&self.request_id),
            text(&self.correlation_id),
            text(&self.tenant_id),
            text(&self.action),
            Cell::Json(&self.masked_fields),
            Cell::Json(&self.excluded_fields),
        ]
    }
}

/// Appends one CSV cell.
fn csv_cell(out: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.push(b'"');
        for part in value.split('"').enumerate() {
            if part.0 > 0 {
                out.extend_from_slice(b"\"\"");
            }
            out.extend_from_slice(part.1.as_bytes());
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// Appends a JSON string.
fn json_string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("writing JSON to a Vec cannot fail");
}

fn write_csv_row(out: &mut Vec<u8>, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match cell {
            Cell::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Cell::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
            Cell::Text(v) | Cell::Json(v) => csv_cell(out, v),
            Cell::Null => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn write_json_object(out: &mut Vec<u8>, cells: &[Cell<'_>]) {
    out.push(b'{');
    for (i, (name, cell)) in FIELDS.iter().zip(cells).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match cell {
            Cell::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Cell::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
            Cell::Text(v) => json_string(out, v),
            Cell::Json(v) => out.extend_from_slice(v.as_bytes()),
            Cell::Null => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// One CSV record of text cells (`None` writes an empty cell), exactly as exports write
/// their rows: the fuzz targets and property tests read it back with a CSV parser.
#[doc(hidden)]
pub fn csv_record(cells: &[Option<&str>]) -> Vec<u8> {
    let cells: Vec<Cell<'_>> = cells.iter().map(|c| c.map_or(Cell::Null, Cell::Text)).collect();
    let mut out = Vec::new();
    write_csv_row(&mut out, &cells);
    out
}

/// The whole query an unfiltered, unscoped export reads (no page bound, no limit): what the
/// read benchmark runs through `COPY (...) TO STDOUT` as its baseline.
#[doc(hidden)]
pub fn unfiltered_query() -> String {
    format!("SELECT {EXPORT_COLUMNS}{CHANGE_SOURCE} ORDER BY c.captured_at DESC, c.id DESC")
}

/// A running export: call [`Export::next_chunk`] until it returns `None`, or let
/// [`Export::write_to`] do it. Made by [`Reader::export`].
#[derive(Debug)]
pub struct Export {
    filter: Filter,
    restriction: Restriction,
    options: ExportOptions,
    after: Option<(DateTime<Utc>, i64)>,
    rows: u64,
    /// When the first chunk was asked for.
    started: Option<Instant>,
    finished: bool,
    truncated: bool,
}

impl Reader {
    /// Starts an export of the changes `filter` selects, newest first, under this reader's
    /// scope. Nothing is read until the first chunk is asked for.
    pub fn export(&self, filter: &Filter, options: ExportOptions) -> Result<Export, Error> {
        check_page_size(options.page_size)?;
        Ok(Export {
            filter: filter.clone(),
            restriction: self.scope().restriction(Surface::Export)?,
            options,
            after: None,
            rows: 0,
            started: None,
            finished: false,
            truncated: false,
        })
    }
}

impl Export {
    /// The next bytes of the export, or `None` when it is complete.
    pub async fn next_chunk(&mut self, conn: &mut AsyncPgConnection) -> Result<Option<Vec<u8>>, Error> {
        self.chunk(conn).await
    }

    /// [`Export::next_chunk`] on a blocking connection.
    pub fn next_chunk_blocking(&mut self, conn: &mut PgConnection) -> Result<Option<Vec<u8>>, Error> {
        ready(self.chunk(conn))
    }

    /// Writes the whole export to `out`, calling `progress` with the rows written so far
    /// after each page.
    pub async fn write_to(
        &mut self,
        conn: &mut AsyncPgConnection,
        out: &mut impl Write,
        mut progress: impl FnMut(u64),
    ) -> Result<ExportSummary, Error> {
        let mut bytes = 0;
        while let Some(chunk) = self.chunk(conn).await? {
            out.write_all(&chunk)?;
            bytes += chunk.len() as u64;
            progress(self.rows);
        }
        out.flush()?;
        Ok(self.summary(bytes))
    }

    /// [`Export::write_to`] on a blocking connection.
    pub fn write_to_blocking(
        &mut self,
        conn: &mut PgConnection,
        out: &mut impl Write,
        mut progress: impl FnMut(u64),
    ) -> Result<ExportSummary, Error> {
        let mut bytes = 0;
        while let Some(chunk) = ready(self.chunk(conn))? {
            out.write_all(&chunk)?;
            bytes += chunk.len() as u64;
            progress(self.rows);
        }
        out.flush()?;
        Ok(self.summary(bytes))
    }

    /// Changes written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True once `max_rows` cut the export short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    fn summary(&self, bytes: u64) -> ExportSummary {
        ExportSummary {
            rows: self.rows,
            truncated: self.truncated,
            bytes,
        }
    }

    async fn chunk<C: Db>(&mut self, conn: &mut C) -> Result<Option<Vec<u8>>, Error> {
        if self.finished {
            return Ok(None);
        }
        let mut out = Vec::new();
        let started = match self.started {
            Some(at) => at,
            None => {
                self.header(&mut out);
                *self.started.insert(Instant::now())
            }
        };
        let remaining = self.options.max_rows.map_or(u64::MAX, |max| max - self.rows.min(max));
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(self.options.page_size);
        let query = ChangeQuery {
            columns: EXPORT_COLUMNS,
            filter: &self.filter,
            restriction: &self.restriction,
        };
        let sql = query.newest_first(self.after, want + 1);
        let mut rows: Vec<ExportRow> = match conn.load(sql).await {
            Ok(rows) => rows,
            Err(error) => {
                telemetry::export_failed(self.options.format, self.rows, &error, started);
                return Err(error);
            }
        };
        let more = rows.len() > want;
        rows.truncate(want);
        for row in &rows {
            let captured_at = rfc3339(&row.captured_at);
            let cells = row.cells(&captured_at);
            match self.options.format {
                Format::Csv => write_csv_row(&mut out, &cells),
                Format::Json => {
                    out.extend_from_slice(if self.rows == 0 { b"\n" } else { b",\n" });
                    write_json_object(&mut out, &cells);
                }
                Format::Ndjson => {
                    write_json_object(&mut out, &cells);
                    out.push(b'\n');
                }
            }
            self.rows += 1;
        }
        if let Some(last) = rows.last() {
            self.after = Some((last.captured_at, last.id));
        }
        if !more || want == 0 || self.options.max_rows == Some(self.rows) {
            self.finished = true;
            self.truncated = more;
            if self.options.format == Format::Json {
                let tail: &[u8] = if self.rows == 0 { b"]" } else { b"\n]" };
                out.extend_from_slice(tail);
                out.extend_from_slice(format!(",\"truncated\":{}}}\n", self.truncated).as_bytes());
            }
            telemetry::export_finished(self.options.format, self.rows, self.truncated, started);
        }
        Ok(Some(out))
    }

    fn header(&self, out: &mut Vec<u8>) {
        match self.options.format {
            Format::Csv => {
                out.extend_from_slice(FIELDS.join(",").as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Format::Json => {
                out.extend_from_slice(
                    format!(
                        "{{\"format_version\":{FORMAT_VERSION},\"generated_at\":\"{}\",\"changes\":[",
                        rfc3339(&self.options.generated_at)
                    )
                    .as_bytes(),
                );
            }
            Format::Ndjson => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        let mut out = Vec::new();
        write_csv_row(
            &mut out,
            &[
                Cell::Text("plain"),
                Cell::Text("a,b"),
                Cell::Text("say \"hi\""),
                Cell::Text("lone\rcr"),
                Cell::Null,
                Cell::Int(-3),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"lone\rcr\",,-3\r\n"
        );
    }

    #[test]
    fn formats_parse_strictly() {
        assert_eq!("ndjson".parse::<Format>().unwrap(), Format::Ndjson);
        assert!("CSV".parse::<Format>().is_err());
    }
}
