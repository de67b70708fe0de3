//! Parquet exports for analytics: the changes a [`Filter`] selects, written into a folder
//! as one set of files per table and capture day (UTC), Hive-style:
//!
//! ```text
//! <dir>/table=public.posts/date=2026-12-03/part-0.parquet
//! ```
//!
//! A table's name is percent-encoded in its folder's name where a byte is not an ASCII
//! letter, digit, `.`, `_` or `-`. Every file has the export's [`FIELDS`], in order, with
//! this schema (Snappy-compressed):
//!
//! | column | Parquet type |
//! |---|---|
//! | `id`, `transaction_id` | `INT64` |
//! | `captured_at` | `INT64 (TIMESTAMP(MICROS, true))`, UTC |
//! | `table_schema`, `table_name`, `op` | `BYTE_ARRAY (STRING)` |
//! | `from_update` | `BOOLEAN` |
//! | `request_id`, `correlation_id`, `tenant_id`, `action` | `BYTE_ARRAY (STRING)`, nullable |
//! | `table_pk`, `changed_fields`, `masked_fields`, `excluded_fields` | JSON as `BYTE_ARRAY (STRING)` |
//! | `data`, `changed_from`, `actor` | JSON as `BYTE_ARRAY (STRING)`, nullable |
//!
//! The JSON columns hold the same text as the CSV export's cells. Rows are read in keyset
//! pages, newest first, and buffered for at most [`BUFFERED_ROWS`] rows across every open
//! file before a row group is written, so memory stays flat whatever the row count; a file
//! is closed once the export has passed its day, and a new part begins every
//! [`ParquetOptions::rows_per_file`] rows.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::export::parquet::ParquetOptions;
//! use threadline::read::{Filter, Reader};
//!
//! let summary = Reader::new()
//!     .export_parquet(&Filter::new(), ParquetOptions::new())?
//!     .write_dir_blocking(conn, std::path::Path::new("audit-parquet"), |rows| eprint!("\r{rows}"))?;
//! println!("{} rows in {} files", summary.rows, summary.files.len());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
#[cfg(feature = "jobs")]
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use ::parquet::basic::Compression;
use ::parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int64Type};
use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::parser::parse_message_type;
use ::parquet::schema::types::ColumnPath;
use ::parquet::schema::types::Type;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::PgConnection;
use diesel_async::AsyncPgConnection;
#[cfg(feature = "jobs")]
use object_store::path::Path as ObjectPath;
#[cfg(feature = "jobs")]
use object_store::{ObjectStore, WriteMultipart};

use super::{EXPORT_COLUMNS, ExportRow, FIELDS};
use crate::Error;
use crate::read::{ChangeQuery, Db, Filter, Reader, Restriction, Surface, check_page_size, ready};

/// The most rows buffered, across every open file, before the largest buffer is written
/// out as a row group.
pub const BUFFERED_ROWS: usize = 16_384;

/// The schema of every file, the columns in the order of [`FIELDS`].
const SCHEMA: &str = "message change {
    REQUIRED INT64 id;
    REQUIRED INT64 transaction_id;
    REQUIRED INT64 captured_at (TIMESTAMP(MICROS,true));
    REQUIRED BYTE_ARRAY table_schema (STRING);
    REQUIRED BYTE_ARRAY table_name (STRING);
    REQUIRED BYTE_ARRAY op (STRING);
    REQUIRED BYTE_ARRAY table_pk (STRING);
    OPTIONAL BYTE_ARRAY data (STRING);
    REQUIRED BYTE_ARRAY changed_fields (STRING);
    OPTIONAL BYTE_ARRAY changed_from (STRING);
    REQUIRED BOOLEAN from_update;
    OPTIONAL BYTE_ARRAY actor (STRING);
    OPTIONAL BYTE_ARRAY request_id (STRING);
    OPTIONAL BYTE_ARRAY correlation_id (STRING);
    OPTIONAL BYTE_ARRAY tenant_id (STRING);
    OPTIONAL BYTE_ARRAY action (STRING);
    REQUIRED BYTE_ARRAY masked_fields (STRING);
    REQUIRED BYTE_ARRAY excluded_fields (STRING);
}";

/// How a Parquet export runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    max_rows: Option<u64>,
    page_size: usize,
    rows_per_file: u64,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            max_rows: None,
            page_size: super::DEFAULT_PAGE_SIZE,
            rows_per_file: 1_000_000,
        }
    }
}

impl ParquetOptions {
    /// Every change, 1 000 000 rows a file at most.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops after `max_rows` changes.
    pub fn max_rows(mut self, max_rows: u64) -> Self {
        self.max_rows = Some(max_rows);
        self
    }

    /// Rows read per page (1 to 10 000).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Starts a new part of a table's day after this many rows (at least 1).
    pub fn rows_per_file(mut self, rows: u64) -> Self {
        self.rows_per_file = rows.max(1);
        self
    }
}

/// What a Parquet export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParquetSummary {
    /// Changes written.
    pub rows: u64,
    /// True when `max_rows` stopped the export before every match was written.
    pub truncated: bool,
    /// The files written, relative to the folder, in the order they were closed.
    pub files: Vec<PathBuf>,
    /// Bytes written, over every file.
    pub bytes: u64,
}

/// A Parquet export, ready to write: made by [`Reader::export_parquet`].
#[derive(Debug)]
pub struct ParquetExport {
    filter: Filter,
    restriction: Restriction,
    options: ParquetOptions,
}

impl Reader {
    /// Starts a Parquet export of the changes `filter` selects, under this reader's scope.
    /// Nothing is read until it is written.
    pub fn export_parquet(&self, filter: &Filter, options: ParquetOptions) -> Result<ParquetExport, Error> {
        check_page_size(options.page_size)?;
        Ok(ParquetExport {
            filter: filter.clone(),
            restriction: self.scope().restriction(Surface::Export)?,
            options,
        })
    }
}

impl ParquetExport {
    /// Writes the export into `dir`, which must not exist or be empty, calling `progress`
    /// with the rows written so far after each page. On an error the folder keeps what was
    /// written so far (the CLI writes into `DIR.partial` and removes it then).
    pub async fn write_dir(
        &self,
        conn: &mut AsyncPgConnection,
        dir: &Path,
        progress: impl FnMut(u64),
    ) -> Result<ParquetSummary, Error> {
        self.write(conn, dir, progress).await
    }

    /// [`ParquetExport::write_dir`] on a blocking connection.
    pub fn write_dir_blocking(
        &self,
        conn: &mut PgConnection,
        dir: &Path,
        progress: impl FnMut(u64),
    ) -> Result<ParquetSummary, Error> {
        ready(self.write(conn, dir, progress))
    }

    async fn write<C: Db>(
        &self,
        conn: &mut C,
        dir: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<ParquetSummary, Error> {
        if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
            return Err(Error::Invalid {
                field: "Parquet folder",
                reason: format!("{} is not empty; name a new or empty folder", dir.display()),
            });
        }
        std::fs::create_dir_all(dir)?;
        let mut pages = self.pages(dir)?;
        while pages.next(conn).await? {
            progress(pages.rows);
        }
        progress(pages.rows);
        pages.finish()
    }

    /// The export's pages, encoded into files under `dir`.
    fn pages(&self, dir: &Path) -> Result<Pages<'_>, Error> {
        Ok(Pages {
            export: self,
            query: ChangeQuery {
                columns: EXPORT_COLUMNS,
                filter: &self.filter,
                restriction: &self.restriction,
            },
            after: None,
            rows: 0,
            truncated: false,
            encoder: Encoder::start(dir, self.options.rows_per_file)?,
        })
    }
}

/// An export in progress: it reads keyset pages on the caller's side and hands each to
/// the [`Encoder`], so the next page is read while the last one is encoded.
struct Pages<'a> {
    export: &'a ParquetExport,
    query: ChangeQuery<'a>,
    after: Option<(DateTime<Utc>, i64)>,
    rows: u64,
    truncated: bool,
    encoder: Encoder,
}

impl Pages<'_> {
    /// Reads and hands on the next page; `false` once the export is complete.
    async fn next<C: Db>(&mut self, conn: &mut C) -> Result<bool, Error> {
        let options = &self.export.options;
        let remaining = options.max_rows.map_or(u64::MAX, |max| max - self.rows.min(max));
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(options.page_size);
        let mut page: Vec<ExportRow> = conn.load(self.query.newest_first(self.after, want + 1)).await?;
        let more = page.len() > want;
        page.truncate(want);
        self.after = page.last().map(|last| (last.captured_at, last.id));
        self.rows += page.len() as u64;
        self.encoder.send(page)?;
        let done = !more || want == 0 || options.max_rows == Some(self.rows);
        self.truncated = done && more;
        Ok(!done)
    }

    /// Waits for the encoder to close every file.
    fn finish(self) -> Result<ParquetSummary, Error> {
        let (files, bytes) = self.encoder.finish()?;
        Ok(ParquetSummary {
            rows: self.rows,
            truncated: self.truncated,
            files,
            bytes,
        })
    }
}

/// Every file an export closed, relative to its folder, and the bytes written.
type Closed = (Vec<PathBuf>, u64);

/// The thread that owns an export's open files and encodes the pages it is sent: one page
/// waits in the channel at most, so memory stays flat. Dropped before it finishes (an
/// error, a cancelled future), it stops after the page in hand and closes no file.
struct Encoder {
    pages: Option<SyncSender<Vec<ExportRow>>>,
    /// Each file as it closes, relative to the folder.
    closed: Receiver<PathBuf>,
    /// Every file taken from `closed` so far, in the order they closed.
    received: Vec<PathBuf>,
    abandoned: Arc<AtomicBool>,
    /// The thread, until it is joined; it returns the bytes written.
    thread: Option<JoinHandle<Result<u64, Error>>>,
    bytes: u64,
}

impl Encoder {
    fn start(dir: &Path, rows_per_file: u64) -> Result<Self, Error> {
        let (pages, inbox) = sync_channel::<Vec<ExportRow>>(1);
        let (closed_to, closed) = channel();
        let mut files = Files::new(dir, rows_per_file, closed_to)?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let thread = std::thread::spawn(move || {
            for page in inbox {
                if stop.load(Ordering::Relaxed) {
                    return Ok(0);
                }
                for row in page {
                    files.push(row)?;
                }
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            files.finish()
        });
        Ok(Encoder {
            pages: Some(pages),
            closed,
            received: Vec::new(),
            abandoned,
            thread: Some(thread),
            bytes: 0,
        })
    }

    /// Hands a page on; the encoder's own error if it stopped.
    fn send(&mut self, page: Vec<ExportRow>) -> Result<(), Error> {
        match self.pages.as_ref().expect("an open encoder").send(page) {
            Ok(()) => Ok(()),
            Err(_) => self.close(),
        }
    }

    /// The files closed since the last call.
    fn newly_closed(&mut self) -> &[PathBuf] {
        let from = self.received.len();
        self.received.extend(self.closed.try_iter());
        &self.received[from..]
    }

    /// Lets the thread close the open files and waits for it; its error if it failed.
    fn close(&mut self) -> Result<(), Error> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.pages = None;
        self.bytes = match thread.join() {
            Ok(outcome) => outcome?,
            Err(_) => {
                return Err(Error::Io(std::io::Error::other(
                    "the Parquet encoder stopped on a panic",
                )));
            }
        };
        Ok(())
    }

    /// Closes the open files; every file closed, and the bytes written.
    fn finish(mut self) -> Result<Closed, Error> {
        self.close()?;
        self.newly_closed();
        Ok((std::mem::take(&mut self.received), self.bytes))
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.abandoned.store(true, Ordering::Relaxed);
            self.pages = None;
            let _ = thread.join();
        }
    }
}

#[cfg(feature = "jobs")]
impl ParquetExport {
    /// Writes the export as objects under `prefix` of `store`, laid out as
    /// [`ParquetExport::write_dir`] lays out its folder
    /// (`<prefix>/table=…/date=…/part-N.parquet`), calling `progress` with the rows written
    /// so far after each page. Each file is spooled in a private folder of the system's
    /// temporary directory until it is complete, then uploaded and removed, so the disk
    /// holds only the files still open. On an error the objects uploaded so far stay.
    ///
    /// ```no_run
    /// # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
    /// use threadline::export::parquet::ParquetOptions;
    /// use threadline::jobs::object_store::{memory::InMemory, path::Path};
    /// use threadline::read::{Filter, Reader};
    ///
    /// let store = InMemory::new();
    /// let export = Reader::new().export_parquet(&Filter::new(), ParquetOptions::new())?;
    /// let summary = export.write_store(conn, &store, &Path::from("audit"), |_| {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_store(
        &self,
        conn: &mut AsyncPgConnection,
        store: &dyn ObjectStore,
        prefix: &ObjectPath,
        mut progress: impl FnMut(u64),
    ) -> Result<ParquetSummary, Error> {
        let mut upload = self.upload(store, prefix)?;
        while upload.next(conn).await? {
            while upload.send_one().await? {}
            progress(upload.rows());
        }
        while upload.send_one().await? {}
        progress(upload.rows());
        Ok(upload.summary())
    }

    /// An upload of the export under `prefix` of `store`, page by page.
    pub(crate) fn upload<'a>(&'a self, store: &'a dyn ObjectStore, prefix: &ObjectPath) -> Result<Upload<'a>, Error> {
        let spool = Spool::new()?;
        let pages = self.pages(&spool.0)?;
        Ok(Upload {
            pages: Some(pages),
            store,
            prefix: prefix.clone(),
            spool,
            pending: VecDeque::new(),
            summary: None,
        })
    }
}

/// A Parquet export on its way to an object store: [`Upload::next`] reads a page and
/// queues the files it completed (every file once the export is done), and
/// [`Upload::send_one`] uploads one of them, so a caller can renew a lease between uploads.
#[cfg(feature = "jobs")]
pub(crate) struct Upload<'a> {
    pages: Option<Pages<'a>>,
    store: &'a dyn ObjectStore,
    prefix: ObjectPath,
    spool: Spool,
    pending: VecDeque<PathBuf>,
    summary: Option<ParquetSummary>,
}

#[cfg(feature = "jobs")]
impl Upload<'_> {
    /// Changes written so far.
    pub(crate) fn rows(&self) -> u64 {
        match (&self.pages, &self.summary) {
            (Some(pages), _) => pages.rows,
            (None, Some(summary)) => summary.rows,
            (None, None) => 0,
        }
    }

    /// Reads the next page and queues the files it completed; `false` once the export is
    /// done and every file is queued.
    pub(crate) async fn next<C: Db>(&mut self, conn: &mut C) -> Result<bool, Error> {
        let pages = self.pages.as_mut().expect("next after the last page");
        let more = pages.next(conn).await?;
        if !more {
            pages.encoder.close()?;
        }
        self.pending.extend(pages.encoder.newly_closed().iter().cloned());
        if !more {
            self.summary = Some(self.pages.take().expect("the pages").finish()?);
        }
        Ok(more)
    }

    /// Uploads one queued file; `false` when none is queued.
    pub(crate) async fn send_one(&mut self) -> Result<bool, Error> {
        let Some(file) = self.pending.pop_front() else {
            return Ok(false);
        };
        send(self.store, &self.prefix, &self.spool, &file).await?;
        Ok(true)
    }

    /// What was written, once [`Upload::next`] said the export is done.
    pub(crate) fn summary(self) -> ParquetSummary {
        self.summary.expect("an upload read to its end")
    }
}

/// Uploads the spooled `file` to its place under `prefix`, then removes it.
#[cfg(feature = "jobs")]
async fn send(store: &dyn ObjectStore, prefix: &ObjectPath, spool: &Spool, file: &Path) -> Result<(), Error> {
    use std::io::Read;
    // The names are percent-encoded already (letters, digits, `.`, `_`, `-`, `=` and `%`):
    // parsed, not escaped again.
    let relative = file.to_str().expect("the names of an export's files are ASCII");
    let full = match prefix.as_ref() {
        "" => relative.to_owned(),
        prefix => format!("{prefix}/{relative}"),
    };
    let to = ObjectPath::parse(full).map_err(|e| Error::Storage(e.to_string()))?;
    let mut upload = WriteMultipart::new(store.put_multipart(&to).await.map_err(crate::jobs::storage)?);
    let local = spool.0.join(file);
    let copied = async {
        let mut from = File::open(&local)?;
        let mut buffer = vec![0; UPLOAD_CHUNK];
        loop {
            let n = from.read(&mut buffer)?;
            if n == 0 {
                return Ok::<_, Error>(());
            }
            upload.wait_for_capacity(2).await.map_err(crate::jobs::storage)?;
            upload.write(&buffer[..n]);
        }
    }
    .await;
    if let Err(error) = copied {
        let _ = upload.abort().await;
        return Err(error);
    }
    upload.finish().await.map_err(crate::jobs::storage)?;
    std::fs::remove_file(local)?;
    Ok(())
}

/// Bytes read from a spooled file per write to the upload.
#[cfg(feature = "jobs")]
const UPLOAD_CHUNK: usize = 1 << 20;

/// A private folder under the system's temporary directory (mode 0700 on Unix), removed
/// with everything in it when dropped.
#[cfg(feature = "jobs")]
struct Spool(PathBuf);

#[cfg(feature = "jobs")]
impl Spool {
    fn new() -> Result<Self, Error> {
        use std::sync::atomic::AtomicU64;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "threadline-parquet-{}-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        // The files hold audit data: the folder is the process user's alone.
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir)?;
        Ok(Spool(dir))
    }
}

#[cfg(feature = "jobs")]
impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The folder of a table's files: `table=<schema>.<name>`, percent-encoded.
fn table_folder(schema: &str, name: &str) -> String {
    let mut out = String::from("table=");
    for byte in format!("{schema}.{name}").bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(char::from(byte)),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A table's day: the files of one folder.
type Day = (String, String, NaiveDate);

/// One open file: its table's day, its path, and the rows not yet written.
struct Open {
    day: Day,
    writer: SerializedFileWriter<File>,
    path: PathBuf,
    buffered: Vec<ExportRow>,
    rows: u64,
}

/// The open files of an export (few: a day's tables at most).
struct Files {
    dir: PathBuf,
    schema: Arc<Type>,
    properties: Arc<WriterProperties>,
    rows_per_file: u64,
    open: Vec<Open>,
    /// The next part number of each table's day.
    parts: HashMap<Day, u32>,
    buffered: usize,
    /// Where each file is announced once closed.
    closed_to: Sender<PathBuf>,
    bytes: u64,
}

impl Files {
    fn new(dir: &Path, rows_per_file: u64, closed_to: Sender<PathBuf>) -> Result<Self, Error> {
        let schema = Arc::new(parse_message_type(SCHEMA).map_err(parquet_error)?);
        debug_assert_eq!(schema.get_fields().len(), FIELDS.len());
        // Dictionaries only where values repeat (names, op, context labels); statistics only
        // on the columns a reader prunes by (ids, time, table, op, tenant, action), not on
        // the JSON and request labels, whose min and max say nothing.
        let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
        for column in [
            "id",
            "transaction_id",
            "captured_at",
            "table_pk",
            "data",
            "changed_from",
            "request_id",
            "correlation_id",
        ] {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        for column in [
            "table_pk",
            "data",
            "changed_fields",
            "changed_from",
            "actor",
            "request_id",
            "correlation_id",
            "masked_fields",
            "excluded_fields",
        ] {
            builder = builder.set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
        }
        Ok(Files {
            dir: dir.to_owned(),
            schema,
            properties: Arc::new(builder.build()),
            rows_per_file,
            open: Vec::new(),
            parts: HashMap::new(),
            buffered: 0,
            closed_to,
            bytes: 0,
        })
    }

    fn push(&mut self, row: ExportRow) -> Result<(), Error> {
        let day = row.captured_at.date_naive();
        // Rows come newest first: a day after this row's is complete.
        while let Some(done) = self.open.iter().position(|o| o.day.2 > day) {
            self.close(done)?;
        }
        let found = self
            .open
            .iter()
            .position(|o| o.day.2 == day && o.day.0 == row.table_schema && o.day.1 == row.table_name);
        let at = match found {
            Some(at) => at,
            None => self.start((row.table_schema.clone(), row.table_name.clone(), day))?,
        };
        let open = &mut self.open[at];
        open.buffered.push(row);
        open.rows += 1;
        self.buffered += 1;
        if open.rows >= self.rows_per_file {
            self.close(at)?;
        } else if self.buffered >= BUFFERED_ROWS {
            let largest = (0..self.open.len())
                .max_by_key(|&i| self.open[i].buffered.len())
                .expect("a buffer");
            let open = &mut self.open[largest];
            self.buffered -= open.buffered.len();
            write_row_group(&mut open.writer, std::mem::take(&mut open.buffered))?;
        }
        Ok(())
    }

    /// Opens the next part of `day`; returns its place among the open files.
    fn start(&mut self, day: Day) -> Result<usize, Error> {
        let part = self.parts.entry(day.clone()).or_insert(0);
        let path = PathBuf::from(table_folder(&day.0, &day.1))
            .join(format!("date={}", day.2))
            .join(format!("part-{part}.parquet"));
        *part += 1;
        std::fs::create_dir_all(self.dir.join(path.parent().expect("a folder")))?;
        let file = File::create(self.dir.join(&path))?;
        let writer =
            SerializedFileWriter::new(file, self.schema.clone(), self.properties.clone()).map_err(parquet_error)?;
        self.open.push(Open {
            day,
            writer,
            path,
            buffered: Vec::new(),
            rows: 0,
        });
        Ok(self.open.len() - 1)
    }

    fn close(&mut self, at: usize) -> Result<(), Error> {
        let mut open = self.open.remove(at);
        self.buffered -= open.buffered.len();
        write_row_group(&mut open.writer, std::mem::take(&mut open.buffered))?;
        open.writer.close().map_err(parquet_error)?;
        self.bytes += std::fs::metadata(self.dir.join(&open.path))?.len();
        let _ = self.closed_to.send(open.path);
        Ok(())
    }

    /// Closes every open file; the bytes written, over every file.
    fn finish(mut self) -> Result<u64, Error> {
        self.open.sort_by(|a, b| a.day.cmp(&b.day));
        while !self.open.is_empty() {
            self.close(0)?;
        }
        Ok(self.bytes)
    }
}

/// Writes `rows` as one row group, column by column in the order of [`FIELDS`].
fn write_row_group(writer: &mut SerializedFileWriter<File>, mut rows: Vec<ExportRow>) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut group = writer.next_row_group().map_err(parquet_error)?;
    let mut index = 0;
    while let Some(mut column) = group.next_column().map_err(parquet_error)? {
        let ints = |f: fn(&ExportRow) -> i64| rows.iter().map(f).collect::<Vec<_>>();
        let written = match FIELDS[index] {
            "id" => column.typed::<Int64Type>().write_batch(&ints(|r| r.id), None, None),
            "transaction_id" => column
                .typed::<Int64Type>()
                .write_batch(&ints(|r| r.transaction_id), None, None),
            "captured_at" => {
                column
                    .typed::<Int64Type>()
                    .write_batch(&ints(|r| r.captured_at.timestamp_micros()), None, None)
            }
            "from_update" => column.typed::<BoolType>().write_batch(
                &rows.iter().map(|r| r.from_update).collect::<Vec<_>>(),
                None,
                None,
            ),
            field => {
                // Each text moves into its value: the row is not read again.
                let take = text_field(field);
                let mut values = Vec::with_capacity(rows.len());
                let levels: Vec<i16> = rows
                    .iter_mut()
                    .map(|r| match take(r) {
                        Some(text) => {
                            values.push(ByteArray::from(text.into_bytes()));
                            1
                        }
                        None => 0,
                    })
                    .collect();
                column
                    .typed::<ByteArrayType>()
                    .write_batch(&values, nullable(field).then_some(&levels[..]), None)
            }
        };
        written.map_err(parquet_error)?;
        column.close().map_err(parquet_error)?;
        index += 1;
    }
    group.close().map_err(parquet_error)?;
    Ok(())
}

/// Takes the text column `field` out of a row.
fn text_field(field: &str) -> fn(&mut ExportRow) -> Option<String> {
    use std::mem::take;
    match field {
        "table_schema" => |r: &mut ExportRow| Some(take(&mut r.table_schema)),
        "table_name" => |r: &mut ExportRow| Some(take(&mut r.table_name)),
        "op" => |r: &mut ExportRow| Some(take(&mut r.op)),
        "table_pk" => |r: &mut ExportRow| Some(take(&mut r.table_pk)),
        "data" => |r: &mut ExportRow| r.data.take(),
        "changed_fields" => |r: &mut ExportRow| Some(take(&mut r.changed_fields)),
        "changed_from" => |r: &mut ExportRow| r.changed_from.take(),
        "actor" => |r: &mut ExportRow| r.actor.take(),
        "request_id" => |r: &mut ExportRow| r.request_id.take(),
        "correlation_id" => |r: &mut ExportRow| r.correlation_id.take(),
        "tenant_id" => |r: &mut ExportRow| r.tenant_id.take(),
        "action" => |r: &mut ExportRow| r.action.take(),
        "masked_fields" => |r: &mut ExportRow| Some(take(&mut r.masked_fields)),
        "excluded_fields" => |r: &mut ExportRow| Some(take(&mut r.excluded_fields)),
        other => unreachable!("{other} is not a text field"),
    }
}

/// Whether the text column `field` is OPTIONAL in [`SCHEMA`].
fn nullable(field: &str) -> bool {
    matches!(
        field,
        "data" | "changed_from" | "actor" | "request_id" | "correlation_id" | "tenant_id" | "action"
    )
}

fn parquet_error(error: ::parquet::errors::ParquetError) -> Error {
    Error::Io(std::io::Error::other(format!("Parquet: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_folders_are_percent_encoded_and_never_leave_the_folder() {
        assert_eq!(table_folder("public", "posts"), "table=public.posts");
        assert_eq!(table_folder("a/b", ".."), "table=a%2Fb...");
        assert_eq!(table_folder("ü", "x y"), "table=%C3%BC.x%20y");
    }

    #[cfg(all(unix, feature = "jobs"))]
    #[test]
    fn the_spool_is_the_process_user_s_alone_and_goes_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let spool = Spool::new().unwrap();
        std::fs::write(spool.0.join("part.parquet"), b"x").unwrap();
        let mode = std::fs::metadata(&spool.0).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let dir = spool.0.clone();
        drop(spool);
        assert!(!dir.exists());
    }

    #[test]
    fn the_schema_has_every_export_field_in_order_and_nullable_as_declared() {
        let schema = parse_message_type(SCHEMA).unwrap();
        let names: Vec<&str> = schema.get_fields().iter().map(|f| f.name()).collect();
        assert_eq!(names, FIELDS);
        for field in schema.get_fields() {
            let optional = field.get_basic_info().repetition() == ::parquet::basic::Repetition::OPTIONAL;
            if field.name() != "from_update" && !["id", "transaction_id", "captured_at"].contains(&field.name()) {
                assert_eq!(optional, nullable(field.name()), "{}", field.name());
            }
        }
    }
}
