//! `threadline export`: the changes a filter selects, streamed as CSV, JSON or NDJSON, or
//! written as a folder of Parquet files.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use threadline::export::parquet::ParquetOptions;
use threadline::export::{ExportOptions, ExportSummary, Format};
use threadline::read::Reader;

use crate::args::{Args, Spec};
use crate::{Failure, connect, note};

/// `threadline export`.
pub static EXPORT: Spec = Spec {
    command: "export",
    positionals: &[],
    optional: &[],
    options: &["format", "max-rows", "page-size", "output"],
    switches: &[],
    filters: true,
    database: true,
    config: false,
    help: concat!(
        "usage: threadline export --format csv|json|ndjson|parquet [filters] [--max-rows N]
                        [--page-size N] [--output PATH|-]

Writes every change matching the filters, newest first, streamed page by page.

",
        crate::args::filter_help!(),
        "
options:
  --format F            csv (RFC 4180, header line), json (one document:
                        {\"format_version\":1,\"generated_at\":...,\"changes\":[...],
                        \"truncated\":false}), ndjson (one change per line) or
                        parquet (a folder, given by --output, of files by table and
                        day: table=<schema.name>/date=<YYYY-MM-DD>/part-<N>.parquet,
                        typed columns, JSON columns as text)
  --max-rows N          stop after N changes; says so on stderr when more match
  --page-size N         changes read per database round trip, 1 to 10000
                        (default 2000); never changes the output
  --output PATH|-       the file to write (default -: stdout). The export is written
                        to PATH.partial and renamed to PATH once complete. For
                        parquet, the folder to create (it must not exist).
  --database-url URL    the database (default: $DATABASE_URL)

Progress and a summary are shown on stderr when it is a terminal."
    ),
};

/// Runs `threadline export`.
pub fn export(args: &Args) -> Result<(), Failure> {
    let format = args
        .value("format")
        .ok_or_else(|| args.usage("--format is required: csv, json, ndjson or parquet"))?;
    if format == "parquet" {
        return parquet(args);
    }
    let format: Format = format.parse().map_err(|e| args.usage(e))?;
    let filter = args.filter()?;
    let mut options = ExportOptions::new(format);
    let (max_rows, page_size) = limits(args)?;
    if let Some(max) = max_rows {
        options = options.max_rows(max);
    }
    if let Some(size) = page_size {
        options = options.page_size(size);
    }
    let output = match args.value("output") {
        None | Some("-") => None,
        Some("") => return Err(args.usage("--output: give a path, or - for stdout")),
        Some(path) => Some(PathBuf::from(path)),
    };
    let mut conn = connect(args)?;
    let mut export = Reader::new().export(&filter, options)?;
    let progress = Progress::new(output.is_none());
    let written = match &output {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            export
                .write_to_blocking(&mut conn, &mut out, |rows| progress.update(rows))
                .map_err(Failure::from)
        }
        Some(path) => write_file(path, |out| {
            export.write_to_blocking(&mut conn, out, |rows| progress.update(rows))
        }),
    };
    progress.end_line();
    let summary = written?;
    progress.summary(&summary, output.as_deref());
    if summary.truncated {
        note(format!(
            "stopped at {} (--max-rows); more changes match",
            rows(summary.rows)
        ));
    }
    Ok(())
}

/// `--max-rows` (at least 1) and `--page-size`, when given.
fn limits(args: &Args) -> Result<(Option<u64>, Option<usize>), Failure> {
    let max_rows = match args.number::<u64>("max-rows")? {
        Some(0) => return Err(args.usage("--max-rows: must be at least 1")),
        other => other,
    };
    Ok((max_rows, args.page_size()?))
}

/// `threadline export --format parquet --output DIR`: written into `DIR.partial`, renamed
/// to `DIR` once complete.
fn parquet(args: &Args) -> Result<(), Failure> {
    let filter = args.filter()?;
    let mut options = ParquetOptions::new();
    let (max_rows, page_size) = limits(args)?;
    if let Some(max) = max_rows {
        options = options.max_rows(max);
    }
    if let Some(size) = page_size {
        options = options.page_size(size);
    }
    let dir = match args.value("output") {
        None | Some("-") | Some("") => {
            return Err(args.usage("--format parquet writes a folder: give it with --output DIR"));
        }
        Some(dir) => PathBuf::from(dir),
    };
    if dir.exists() {
        return Err(Failure::Runtime(format!("{} exists; name a new folder", dir.display())));
    }
    let mut partial = dir.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        return Err(Failure::Runtime(format!(
            "{} exists, left by an export that did not finish: remove it first",
            partial.display()
        )));
    }
    let mut conn = connect(args)?;
    let export = Reader::new().export_parquet(&filter, options)?;
    let progress = Progress::new(false);
    let written = export.write_dir_blocking(&mut conn, &partial, |rows| progress.update(rows));
    progress.end_line();
    let summary = match written {
        Ok(summary) => summary,
        Err(error) => {
            let _ = fs::remove_dir_all(&partial);
            return Err(error.into());
        }
    };
    fs::rename(&partial, &dir)
        .map_err(|e| Failure::Runtime(format!("cannot rename {} to {}: {e}", partial.display(), dir.display())))?;
    if progress.show {
        note(format!(
            "{} exported to {} in {} files ({} bytes)",
            rows(summary.rows),
            dir.display(),
            summary.files.len(),
            thousands(summary.bytes)
        ));
    }
    if summary.truncated {
        note(format!(
            "stopped at {} (--max-rows); more changes match",
            rows(summary.rows)
        ));
    }
    Ok(())
}

/// Writes to `PATH.partial` and renames it to `path` once `write` succeeded; on
/// failure the partial file is removed.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<ExportSummary, threadline::Error>,
) -> Result<ExportSummary, Failure> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file =
        File::create(&partial).map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", partial.display())))?;
    let mut out = BufWriter::new(file);
    let written = write(&mut out).map_err(Failure::from).and_then(|summary| {
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&partial, path).map_err(|e| {
            Failure::Runtime(format!(
                "cannot rename {} to {}: {e}",
                partial.display(),
                path.display()
            ))
        })?;
        Ok(summary)
    });
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// Progress on stderr, shown only when stderr is a terminal (and not shared with an
/// export written to the terminal).
struct Progress {
    show: bool,
    shown: Cell<bool>,
}

impl Progress {
    fn new(to_stdout: bool) -> Self {
        Progress {
            show: io::stderr().is_terminal() && !(to_stdout && io::stdout().is_terminal()),
            shown: Cell::new(false),
        }
    }

    /// Shows the rows written so far, over the previous count.
    fn update(&self, written: u64) {
        if self.show {
            let _ = write!(io::stderr(), "\r  {} exported", rows(written));
            self.shown.set(true);
        }
    }

    /// Ends the progress line, if one was shown.
    fn end_line(&self) {
        if self.shown.get() {
            let _ = writeln!(io::stderr());
        }
    }

    /// Says what was written, when progress is shown.
    fn summary(&self, summary: &ExportSummary, path: Option<&Path>) {
        if self.show {
            let to = path.map(|p| format!(" to {}", p.display())).unwrap_or_default();
            note(format!(
                "{} exported{to} ({} bytes)",
                rows(summary.rows),
                thousands(summary.bytes)
            ));
        }
    }
}

/// `1 row`, `12,000 rows`.
fn rows(count: u64) -> String {
    format!("{} row{}", thousands(count), if count == 1 { "" } else { "s" })
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(12_000), "12,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(rows(1), "1 row");
        assert_eq!(rows(2000), "2,000 rows");
    }
}
