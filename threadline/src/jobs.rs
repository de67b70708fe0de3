//! Background export jobs: a queue in `threadline.export_jobs`, workers on any number of
//! nodes, and the exported objects in an [`ObjectStore`] (feature `jobs`: the local
//! filesystem or memory; `s3`, `gcs`, `azure` for the clouds).
//!
//! [`ExportJobs::submit`] queues a job for its owner and records an `export_requested`
//! action of the owner with it. A worker ([`ExportJobs::run_once`], or [`ExportWorker`]
//! in an app) claims the oldest job with `FOR UPDATE SKIP LOCKED`, so no two workers claim
//! it at once, and holds a lease it renews after every page; a job whose worker died is
//! claimed again once its lease runs out, and the dead worker can no longer finish it.
//! The object gets the bytes `threadline export` writes for the same filter and format
//! (the JSON document dated at submission), under a random name, streamed page by page so
//! memory stays flat. A Parquet job ([`JobFormat`], feature `parquet`) writes a folder of
//! objects instead, one per table, day and part, each uploaded once complete; read them
//! with [`files`](ExportJobs::files) and [`open_file`](ExportJobs::open_file). Only the
//! owner may [`open`](ExportJobs::open) a completed job; anyone else gets
//! [`Error::NotFound`], as for a job that does not exist. [`ExportJobs::cleanup`] removes
//! the objects of jobs past their time to live (default 7 days) and marks them expired,
//! and removes the Parquet folders a dead worker left.
//!
//! ```no_run
//! # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
//! use threadline::ActorRef;
//! use threadline::export::Format;
//! use threadline::jobs::ExportJobs;
//! use threadline::read::Filter;
//!
//! let jobs = ExportJobs::local("/var/lib/app/exports")?;
//! let me = ActorRef::admin("7")?;
//! let id = jobs.submit(conn, &me, &Filter::new().table("orders")?, Format::Csv, None).await?;
//! while jobs.run_once(conn, "node-1").await?.is_some() {}
//! let bytes = jobs.read_all(conn, id, &me).await?;
//! # Ok(()) }
//! ```

/// The `object_store` crate this module stores through, for building a store
/// (`object_store::aws::AmazonS3Builder` with feature `s3`, `gcp` with `gcs`, `azure`
/// with `azure`) to give [`ExportJobs::new`].
pub use object_store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::bb8::Pool;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use serde::Serialize;
use serde_json::Value;

use crate::background::Background;
#[cfg(feature = "parquet")]
use crate::export::parquet::ParquetOptions;
use crate::export::{ExportOptions, Format};
use crate::read::exec::Db;
use crate::read::sql::{Bind, Sql};
use crate::read::{Filter, Reader};
use crate::{Action, ActorRef, AuditContext, Error, telemetry};

/// How long a completed job's object is kept when [`ExportJobs::ttl`] is not called.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::days(7);

/// How long a claim lasts without renewal when [`ExportJobs::lease`] is not called.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The folder of the store the objects are written under.
const PREFIX: &str = "threadline-exports";

/// The format of the jobs that write a folder of objects instead of one.
const PARQUET: &str = "parquet";

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds it.
    Running,
    /// Its object is ready for the owner.
    Completed,
    /// It stopped with an error.
    Failed,
    /// Past its time to live; its object is gone.
    Expired,
}

impl JobState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Expired => "expired",
        }
    }
}

/// What a job writes: one object in an export [`Format`], or (feature `parquet`) a
/// folder of Parquet objects by table and day, laid out as `threadline export --format
/// parquet` lays out a folder. An
/// export [`Format`] converts into it, so `submit(.., Format::Csv, ..)` reads as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobFormat {
    /// One object: the bytes `threadline export` writes in this format.
    Export(Format),
    /// A folder of Parquet objects: list them with [`ExportJobs::files`].
    #[cfg(feature = "parquet")]
    Parquet,
}

impl JobFormat {
    /// The formats this build's workers write.
    pub const WRITTEN: &[&str] = &[
        "csv",
        "json",
        "ndjson",
        #[cfg(feature = "parquet")]
        PARQUET,
    ];
}

impl From<Format> for JobFormat {
    fn from(format: Format) -> Self {
        JobFormat::Export(format)
    }
}

impl std::str::FromStr for JobFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            #[cfg(feature = "parquet")]
            PARQUET => Ok(JobFormat::Parquet),
            #[cfg(not(feature = "parquet"))]
            PARQUET => Err(Error::invalid(
                "format",
                "Parquet needs threadline's feature parquet, which this build lacks",
            )),
            other => other
                .parse()
                .map(JobFormat::Export)
                .map_err(|_| Error::invalid("format", format!("{other:?} is not one of csv, json, ndjson, parquet"))),
        }
    }
}

impl std::fmt::Display for JobFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobFormat::Export(format) => format.fmt(f),
            #[cfg(feature = "parquet")]
            JobFormat::Parquet => f.write_str(PARQUET),
        }
    }
}

/// One job of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportJob {
    /// Its id.
    pub id: i64,
    /// Who asked for it, and alone may download it.
    pub owner: ActorRef,
    /// The filter's canonical query string.
    pub filter: String,
    /// The format.
    pub format: String,
    /// The row cap, if any.
    pub max_rows: Option<i64>,
    /// Its state.
    pub state: JobState,
    /// Changes written so far (all of them once completed).
    pub rows_written: i64,
    /// How many times a worker claimed it.
    pub attempts: i32,
    /// When it was submitted.
    #[serde(serialize_with = "crate::read::micros")]
    pub submitted_at: DateTime<Utc>,
    /// When it was completed (or failed).
    #[serde(serialize_with = "crate::read::micros_opt")]
    pub finished_at: Option<DateTime<Utc>>,
    /// When its object goes.
    #[serde(serialize_with = "crate::read::micros_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The object's name in the store, once completed.
    pub object_name: Option<String>,
    /// The object's size in bytes, once completed.
    pub object_size: Option<i64>,
    /// Whether the row cap cut it short.
    pub truncated: Option<bool>,
    /// Why it failed.
    pub error: Option<String>,
}

#[derive(QueryableByName)]
struct JobRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    owner: Value,
    #[diesel(sql_type = Text)]
    filter: String,
    #[diesel(sql_type = Text)]
    format: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    max_rows: Option<i64>,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    rows_written: i64,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Timestamptz)]
    submitted_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    object_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    object_size: Option<i64>,
    #[diesel(sql_type = Nullable<Bool>)]
    truncated: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    token: Option<String>,
}

const COLUMNS: &str = "id, owner, filter, format, max_rows, state, rows_written, attempts, submitted_at, \
     finished_at, expires_at, object_name, object_size, truncated, error, lease_token::text AS token";

impl ExportJob {
    /// Whether the job writes a folder of objects (Parquet), read with
    /// [`ExportJobs::files`], rather than one object read with [`ExportJobs::open`].
    pub fn is_folder(&self) -> bool {
        self.format == PARQUET
    }
}

impl TryFrom<&JobRow> for ExportJob {
    type Error = Error;

    fn try_from(row: &JobRow) -> Result<Self, Error> {
        let state = match row.state.as_str() {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            "expired" => JobState::Expired,
            other => {
                return Err(Error::Decode {
                    column: "export_jobs.state".into(),
                    reason: format!("{other:?} is not a job state"),
                });
            }
        };
        Ok(ExportJob {
            id: row.id,
            owner: serde_json::from_value(row.owner.clone()).map_err(|e| Error::Decode {
                column: "export_jobs.owner".into(),
                reason: e.to_string(),
            })?,
            filter: row.filter.clone(),
            format: row.format.clone(),
            max_rows: row.max_rows,
            state,
            rows_written: row.rows_written,
            attempts: row.attempts,
            submitted_at: row.submitted_at,
            finished_at: row.finished_at,
            expires_at: row.expires_at,
            object_name: row.object_name.clone(),
            object_size: row.object_size,
            truncated: row.truncated,
            error: row.error.clone(),
        })
    }
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
}

/// The object a job may name: only what a worker writes, `threadline-exports/<uuid>.<format>`.
/// Anything else (a row changed by hand) is treated as missing, so a job never reads or
/// removes another object of the store.
fn own_object(name: &str, format: &str) -> Option<ObjectPath> {
    let token = name
        .strip_prefix(PREFIX)?
        .strip_prefix('/')?
        .strip_suffix(format)?
        .strip_suffix('.')?;
    let uuid = token.len() == 36
        && token.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    uuid.then(|| ObjectPath::from(name))
}

/// A store's error, as [`Error::Storage`].
pub(crate) fn storage(error: object_store::Error) -> Error {
    Error::Storage(error.to_string())
}

fn actor_json(actor: &ActorRef) -> Value {
    serde_json::to_value(actor).expect("an actor serializes")
}

/// The export job queue and the store its objects go to.
#[derive(Debug, Clone)]
pub struct ExportJobs {
    store: Arc<dyn ObjectStore>,
    ttl: TimeDelta,
    lease: Duration,
    page_size: usize,
    reader: Reader,
}

impl ExportJobs {
    /// Jobs whose objects go to `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        ExportJobs {
            store,
            ttl: DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            page_size: crate::export::DEFAULT_PAGE_SIZE,
            reader: Reader::new(),
        }
    }

    /// Jobs whose objects go to the folder `dir` of the local filesystem (created if
    /// missing).
    pub fn local(dir: impl AsRef<Path>) -> Result<Self, Error> {
        std::fs::create_dir_all(dir.as_ref())?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.as_ref())
            .map_err(storage)?
            .with_automatic_cleanup(true);
        Ok(ExportJobs::new(Arc::new(store)))
    }

    /// How long a completed job's object is kept; refused unless positive.
    pub fn ttl(mut self, ttl: TimeDelta) -> Result<Self, Error> {
        if ttl <= TimeDelta::zero() {
            return Err(Error::invalid("export job ttl", format!("{ttl} keeps nothing")));
        }
        self.ttl = ttl;
        Ok(self)
    }

    /// How long a claim lasts without renewal (a worker renews it after every page, and
    /// after every Parquet file it uploads); at least 100 ms. Make it longer than the
    /// slowest page, upload part or Parquet file upload: a claim that
    /// lapses lets a second worker start the job, and only one of them can finish it.
    pub fn lease(mut self, lease: Duration) -> Result<Self, Error> {
        if lease < Duration::from_millis(100) {
            return Err(Error::invalid(
                "export job lease",
                format!("{lease:?} is shorter than 100 ms"),
            ));
        }
        self.lease = lease;
        Ok(self)
    }

    /// Changes per page the workers read (and renew their lease after).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// The reader the workers export with, such as a scoped one.
    pub fn reader(mut self, reader: Reader) -> Self {
        self.reader = reader;
        self
    }

    /// Queues an export of what `filter` selects for `owner`, and records the owner's
    /// `export_requested` action in the same transaction. Returns the job's id.
    pub async fn submit(
        &self,
        conn: &mut AsyncPgConnection,
        owner: &ActorRef,
        filter: &Filter,
        format: impl Into<JobFormat>,
        max_rows: Option<u64>,
    ) -> Result<i64, Error> {
        let format = format.into();
        let max_rows = max_rows
            .map(|n| i64::try_from(n).ok().filter(|n| *n > 0))
            .map(|n| n.ok_or_else(|| Error::invalid("max rows", "must be 1 or more")))
            .transpose()?;
        let ctx = AuditContext::new()
            .with_actor(owner.clone())
            .with_action(Action::new("export_requested")?);
        let mut insert =
            Sql::new("INSERT INTO threadline.export_jobs (owner, filter, format, max_rows, action_id) VALUES (");
        insert
            .bind(Bind::Jsonb(actor_json(owner)))
            .push(", ")
            .bind(Bind::Text(filter.to_query_string()))
            .push(", ")
            .bind(Bind::Text(format.to_string()))
            .push(", ");
        match max_rows {
            Some(n) => insert.bind(Bind::BigInt(n)),
            None => insert.push("NULL"),
        };
        insert.push(", nullif(current_setting('threadline.action_id', true), '')::bigint) RETURNING id");
        let committed = crate::transaction(conn, &ctx, async |conn| {
            let row = conn
                .load::<IdRow>(insert.clone().writing())
                .await?
                .pop()
                .expect("the new job's row");
            Ok::<_, Error>(row.id.expect("an id"))
        })
        .await?;
        telemetry::export_job("submitted", committed.value, 0);
        Ok(committed.value)
    }

    /// The jobs of `owner` (every owner's with `None`), newest first.
    pub async fn list(&self, conn: &mut AsyncPgConnection, owner: Option<&ActorRef>) -> Result<Vec<ExportJob>, Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM threadline.export_jobs"));
        if let Some(owner) = owner {
            sql.push(" WHERE owner = ").bind(Bind::Jsonb(actor_json(owner)));
        }
        sql.push(" ORDER BY submitted_at DESC, id DESC");
        conn.load::<JobRow>(sql).await?.iter().map(TryInto::try_into).collect()
    }

    /// One job of `owner`; [`Error::NotFound`] for another owner's, as for a missing one.
    pub async fn status(&self, conn: &mut AsyncPgConnection, id: i64, owner: &ActorRef) -> Result<ExportJob, Error> {
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM threadline.export_jobs WHERE id = "));
        sql.bind(Bind::BigInt(id))
            .push(" AND owner = ")
            .bind(Bind::Jsonb(actor_json(owner)));
        let rows = conn.load::<JobRow>(sql).await?;
        rows.first().ok_or(Error::NotFound { what: "export job" })?.try_into()
    }

    /// The object of `owner`'s completed job, as a stream of bytes; [`Error::NotFound`]
    /// unless the job is completed and `owner`'s.
    /// A Parquet job is a folder, which this refuses with [`Error::Invalid`]: read its
    /// files with [`ExportJobs::files`] and [`ExportJobs::open_file`].
    pub async fn open(
        &self,
        conn: &mut AsyncPgConnection,
        id: i64,
        owner: &ActorRef,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        let (job, path) = self.completed(conn, id, owner).await?;
        if job.is_folder() {
            return Err(Error::invalid(
                "export job",
                format!(
                    "job {id} is a folder of Parquet files, not one file: fetch it with \
                     threadline export-jobs fetch {id} (or ExportJobs::files and open_file)"
                ),
            ));
        }
        self.get(&job, &path).await
    }

    /// The files of `owner`'s completed Parquet job, relative to its folder
    /// (`table=public.posts/date=2026-12-03/part-0.parquet`), sorted; [`Error::NotFound`]
    /// unless the job is completed and `owner`'s.
    pub async fn files(&self, conn: &mut AsyncPgConnection, id: i64, owner: &ActorRef) -> Result<Vec<String>, Error> {
        let (job, folder) = self.completed(conn, id, owner).await?;
        if !job.is_folder() {
            return Err(Error::invalid(
                "export job",
                format!("job {id} is one {} object: read it with open", job.format),
            ));
        }
        let mut names = Vec::new();
        for object in self.objects(&folder).await? {
            let relative: Vec<String> = object
                .prefix_match(&folder)
                .expect("listed under it")
                .map(|part| part.as_ref().to_owned())
                .collect();
            names.push(relative.join("/"));
        }
        names.sort();
        Ok(names)
    }

    /// One file of `owner`'s completed Parquet job, named as [`ExportJobs::files`] names
    /// it, as a stream of bytes; [`Error::NotFound`] unless the job is completed and
    /// `owner`'s and the file is one of it.
    pub async fn open_file(
        &self,
        conn: &mut AsyncPgConnection,
        id: i64,
        owner: &ActorRef,
        file: &str,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        let (job, folder) = self.completed(conn, id, owner).await?;
        let relative = ObjectPath::parse(file).map_err(|_| Error::NotFound { what: "export file" })?;
        if !job.is_folder() || relative.parts().count() == 0 {
            return Err(Error::NotFound { what: "export file" });
        }
        let path = relative.parts().fold(folder, |path, part| path.child(part));
        self.get(&job, &path).await
    }

    /// `owner`'s completed job and the path of its object (or folder).
    async fn completed(
        &self,
        conn: &mut AsyncPgConnection,
        id: i64,
        owner: &ActorRef,
    ) -> Result<(ExportJob, ObjectPath), Error> {
        let job = self.status(conn, id, owner).await?;
        let path = match (job.state, job.object_name.as_deref()) {
            (JobState::Completed, Some(name)) => own_object(name, &job.format),
            _ => None,
        };
        let path = path.ok_or(Error::NotFound { what: "export job" })?;
        Ok((job, path))
    }

    async fn get(
        &self,
        job: &ExportJob,
        path: &ObjectPath,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes, Error>>, Error> {
        let found = self.store.get(path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound { what: "export job" },
            other => storage(other),
        })?;
        telemetry::export_job("downloaded", job.id, job.rows_written);
        Ok(found.into_stream().map(|chunk| chunk.map_err(storage)).boxed())
    }

    /// Every object under `folder`.
    async fn objects(&self, folder: &ObjectPath) -> Result<Vec<ObjectPath>, Error> {
        let mut listed = self.store.list(Some(folder));
        let mut found = Vec::new();
        while let Some(meta) = listed.next().await {
            found.push(meta.map_err(storage)?.location);
        }
        Ok(found)
    }

    /// Removes a job's object, or every object of its folder.
    async fn remove(&self, path: &ObjectPath, format: &str) -> Result<(), Error> {
        let gone = |result: Result<(), object_store::Error>| match result {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(other) => Err(storage(other)),
        };
        if format != PARQUET {
            return gone(self.store.delete(path).await);
        }
        for object in self.objects(path).await? {
            gone(self.store.delete(&object).await)?;
        }
        Ok(())
    }

    /// The whole object of `owner`'s completed job, in memory: for small exports and tests;
    /// stream large ones with [`ExportJobs::open`]. Refused, as by `open`, for a Parquet job.
    pub async fn read_all(&self, conn: &mut AsyncPgConnection, id: i64, owner: &ActorRef) -> Result<Vec<u8>, Error> {
        let mut stream = self.open(conn, id, owner).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Claims the oldest queued job (or one whose lease ran out) and runs it to the end as
    /// `worker`. `None` when there was nothing to claim.
    pub async fn run_once(&self, conn: &mut AsyncPgConnection, worker: &str) -> Result<Option<ExportJob>, Error> {
        let mut claim = Sql::new(
            "UPDATE threadline.export_jobs j
                SET state = 'running', attempts = j.attempts + 1, started_at = clock_timestamp(),
                    lease_until = clock_timestamp() + ",
        );
        // A worker claims only the formats its build writes: one without Parquet leaves
        // those jobs to the workers that have it.
        claim
            .bind(Bind::BigInt(millis(self.lease)))
            .push(
                " * interval '1 millisecond', lease_token = gen_random_uuid(), rows_written = 0, error = NULL
                  WHERE j.id = (SELECT q.id FROM threadline.export_jobs q
                                 WHERE (q.state = 'queued' OR (q.state = 'running' AND q.lease_until < clock_timestamp()))
                                   AND q.format = ANY (string_to_array(",
            )
            .bind(Bind::Text(JobFormat::WRITTEN.join(",")))
            .push(&format!(
                ", ','))
                                 ORDER BY q.submitted_at, q.id LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING {COLUMNS}"
            ));
        let Some(row) = conn.load::<JobRow>(claim.writing()).await?.pop() else {
            return Ok(None);
        };
        let token = row.token.clone().expect("a claimed job has a lease token");
        telemetry::export_job_claimed(row.id, row.attempts, worker);
        match self.write(conn, &row, &token).await {
            Ok(()) => {}
            Err(Error::Locked(_)) => {}
            Err(error) => {
                let mut failed = Sql::new(
                    "UPDATE threadline.export_jobs SET state = 'failed', finished_at = clock_timestamp(),
                            lease_until = NULL, error = ",
                );
                failed
                    .bind(Bind::Text(error.to_string()))
                    .push(" WHERE id = ")
                    .bind(Bind::BigInt(row.id))
                    .push(" AND lease_token = ")
                    .bind(Bind::Text(token.clone()))
                    .push("::uuid RETURNING id");
                // The connection may be what failed; the job's lease then runs out and
                // another worker takes it.
                let _ = conn.load::<IdRow>(failed.writing()).await;
            }
        }
        let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM threadline.export_jobs WHERE id = "));
        sql.bind(Bind::BigInt(row.id));
        let job: ExportJob = conn.load::<JobRow>(sql).await?.first().expect("the job").try_into()?;
        telemetry::export_job(job.state.as_str(), job.id, job.rows_written);
        Ok(Some(job))
    }

    /// Writes the job's object, renewing the lease after every page. `Error::Locked` when
    /// the lease was lost to another worker: the object written so far is removed.
    async fn write(&self, conn: &mut AsyncPgConnection, job: &JobRow, token: &str) -> Result<(), Error> {
        let format: JobFormat = job.format.parse()?;
        let filter = Filter::from_query_string(&job.filter)?;
        let max_rows = job.max_rows.map(|max| u64::try_from(max).unwrap_or(u64::MAX));
        let name = ObjectPath::from(format!("{PREFIX}/{token}.{}", job.format));
        let claim = Claim {
            job,
            token,
            name: &name,
            filter: &filter,
            max_rows,
        };
        let written = match format {
            JobFormat::Export(format) => self.write_object(conn, &claim, format).await,
            #[cfg(feature = "parquet")]
            JobFormat::Parquet => self.write_parquet(conn, &claim).await,
        };
        let Written { rows, size, truncated } = written?;
        let mut done = Sql::new(
            "UPDATE threadline.export_jobs
                SET state = 'completed', finished_at = clock_timestamp(), lease_until = NULL,
                    expires_at = clock_timestamp() + ",
        );
        done.bind(Bind::BigInt(self.ttl.num_milliseconds()))
            .push(" * interval '1 millisecond', object_name = ")
            .bind(Bind::Text(name.to_string()))
            .push(", object_size = ")
            .bind(Bind::BigInt(i64::try_from(size).unwrap_or(i64::MAX)))
            .push(", rows_written = ")
            .bind(Bind::BigInt(i64::try_from(rows).unwrap_or(i64::MAX)))
            .push(", truncated = ")
            .bind(Bind::Text(truncated.to_string()))
            .push("::boolean WHERE id = ")
            .bind(Bind::BigInt(job.id))
            .push(" AND lease_token = ")
            .bind(Bind::Text(token.to_owned()))
            .push("::uuid AND state = 'running' RETURNING id");
        if conn.load::<IdRow>(done.writing()).await?.is_empty() {
            let _ = self.remove(&name, &job.format).await;
            return Err(Error::Locked("the job's lease passed to another worker".into()));
        }
        Ok(())
    }

    /// Streams one object of an export format to `name`, renewing the lease after every
    /// page; a failed upload is aborted.
    async fn write_object(
        &self,
        conn: &mut AsyncPgConnection,
        claim: &Claim<'_>,
        format: Format,
    ) -> Result<Written, Error> {
        let mut options = ExportOptions::new(format)
            .page_size(self.page_size)
            .generated_at(claim.job.submitted_at);
        if let Some(max) = claim.max_rows {
            options = options.max_rows(max);
        }
        let mut export = self.reader.export(claim.filter, options)?;
        let mut upload = WriteMultipart::new(self.store.put_multipart(claim.name).await.map_err(storage)?);
        let mut size = 0_u64;
        let written = async {
            while let Some(chunk) = export.next_chunk(conn).await? {
                upload.wait_for_capacity(4).await.map_err(storage)?;
                upload.write(&chunk);
                size += chunk.len() as u64;
                self.renew(conn, claim.job.id, claim.token, export.rows()).await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(error) = written {
            let _ = upload.abort().await;
            return Err(error);
        }
        upload.finish().await.map_err(storage)?;
        Ok(Written {
            rows: export.rows(),
            size,
            truncated: export.truncated(),
        })
    }

    /// Writes a Parquet folder under `name`, renewing the lease after every page; a failed
    /// export's objects are removed.
    #[cfg(feature = "parquet")]
    async fn write_parquet(&self, conn: &mut AsyncPgConnection, claim: &Claim<'_>) -> Result<Written, Error> {
        let mut options = ParquetOptions::new().page_size(self.page_size);
        if let Some(max) = claim.max_rows {
            options = options.max_rows(max);
        }
        let export = self.reader.export_parquet(claim.filter, options)?;
        let written = async {
            let mut upload = export.upload(&*self.store, claim.name)?;
            loop {
                let more = upload.next(conn).await?;
                self.renew(conn, claim.job.id, claim.token, upload.rows()).await?;
                while upload.send_one().await? {
                    self.renew(conn, claim.job.id, claim.token, upload.rows()).await?;
                }
                if !more {
                    return Ok::<_, Error>(upload.summary());
                }
            }
        }
        .await;
        match written {
            Ok(summary) => Ok(Written {
                rows: summary.rows,
                size: summary.bytes,
                truncated: summary.truncated,
            }),
            Err(error) => {
                let _ = self.remove(claim.name, PARQUET).await;
                Err(error)
            }
        }
    }

    /// Renews the lease and records the progress; `Error::Locked` when it was lost.
    async fn renew(&self, conn: &mut AsyncPgConnection, id: i64, token: &str, rows: u64) -> Result<(), Error> {
        let mut sql = Sql::new("UPDATE threadline.export_jobs SET lease_until = clock_timestamp() + ");
        sql.bind(Bind::BigInt(millis(self.lease)))
            .push(" * interval '1 millisecond', rows_written = ")
            .bind(Bind::BigInt(i64::try_from(rows).unwrap_or(i64::MAX)))
            .push(" WHERE id = ")
            .bind(Bind::BigInt(id))
            .push(" AND lease_token = ")
            .bind(Bind::Text(token.to_owned()))
            .push("::uuid AND state = 'running' RETURNING id");
        if conn.load::<IdRow>(sql.writing()).await?.is_empty() {
            return Err(Error::Locked("the job's lease passed to another worker".into()));
        }
        Ok(())
    }

    /// Removes the objects of completed jobs past their time to live, then marks them
    /// expired. Returns how many expired.
    pub async fn cleanup(&self, conn: &mut AsyncPgConnection) -> Result<usize, Error> {
        let due = conn
            .load::<JobRow>(Sql::new(&format!(
                "SELECT {COLUMNS} FROM threadline.export_jobs WHERE state = 'completed' AND expires_at < clock_timestamp()"
            )))
            .await?;
        let mut expired = 0;
        for job in &due {
            if let Some(path) = job
                .object_name
                .as_deref()
                .and_then(|name| own_object(name, &job.format))
            {
                self.remove(&path, &job.format).await?;
            }
            let mut sql = Sql::new("UPDATE threadline.export_jobs SET state = 'expired' WHERE id = ");
            sql.bind(Bind::BigInt(job.id))
                .push(" AND state = 'completed' RETURNING id");
            expired += conn.load::<IdRow>(sql.writing()).await?.len();
        }
        self.remove_abandoned(conn).await?;
        Ok(expired)
    }

    /// Removes the Parquet folders no job names: those a worker that died (or lost its
    /// lease) wrote part of. The store is listed before the jobs are read, and a claim
    /// commits its token before its worker writes, so a folder being written is never
    /// taken for one abandoned.
    async fn remove_abandoned(&self, conn: &mut AsyncPgConnection) -> Result<(), Error> {
        let mut folders: Vec<ObjectPath> = Vec::new();
        for object in self.objects(&ObjectPath::from(PREFIX)).await? {
            let Some(folder) = object.parts().nth(1) else { continue };
            let name = format!("{PREFIX}/{}", folder.as_ref());
            if let Some(path) = own_object(&name, PARQUET)
                && !folders.contains(&path)
            {
                folders.push(path);
            }
        }
        if folders.is_empty() {
            return Ok(());
        }
        let mut named = Sql::new("SELECT ");
        named
            .bind(Bind::Text(format!("{PREFIX}/")))
            .push(" || j.lease_token::text || '.parquet' AS name FROM threadline.export_jobs j WHERE j.format = ")
            .bind(Bind::Text(PARQUET.to_owned()))
            .push(" AND j.lease_token IS NOT NULL UNION SELECT j.object_name FROM threadline.export_jobs j WHERE j.object_name IS NOT NULL");
        let named: Vec<String> = conn.load::<NameRow>(named).await?.into_iter().map(|r| r.name).collect();
        for folder in folders {
            if !named.contains(&folder.to_string()) {
                self.remove(&folder, PARQUET).await?;
            }
        }
        Ok(())
    }
}

/// A job a worker holds: its row, its lease, where its object goes and what it exports.
struct Claim<'a> {
    job: &'a JobRow,
    token: &'a str,
    name: &'a ObjectPath,
    filter: &'a Filter,
    max_rows: Option<u64>,
}

/// What a worker wrote for a job.
struct Written {
    rows: u64,
    size: u64,
    truncated: bool,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// An in-process export worker for an app: [`ExportWorker::start`] spawns it on the tokio
/// runtime (Actix's included); it runs every job it can claim, then waits `every` before
/// looking again, until [`ExportWorker::stop`].
#[derive(Debug)]
pub struct ExportWorker(Background);

impl ExportWorker {
    /// Starts a worker named `name` (for the lease log) on connections from `pool`.
    pub fn start(pool: Pool<AsyncPgConnection>, jobs: ExportJobs, name: impl Into<String>, every: Duration) -> Self {
        let name: String = name.into();
        ExportWorker(Background::start(every, move |stopping| {
            let (pool, jobs, name) = (pool.clone(), jobs.clone(), name.clone());
            async move {
                let Ok(mut conn) = pool.get().await else { return };
                while !stopping.asked() {
                    match jobs.run_once(&mut conn, &name).await {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }))
    }

    /// Stops the worker: a job in progress is finished first.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_worker_s_object_names_are_read_or_removed() {
        let name = "threadline-exports/c4ed7e70-7b86-4de4-ac28-d0618aa113a7.csv";
        assert_eq!(own_object(name, "csv"), Some(ObjectPath::from(name)));
        for other in [
            "threadline-exports/c4ed7e70-7b86-4de4-ac28-d0618aa113a7.json",
            "backups/db.dump",
            "threadline-exports/../secrets.csv",
            "threadline-exports/c4ed7e70-7b86-4de4-ac28-d0618aa113a7x.csv",
        ] {
            assert_eq!(own_object(other, "csv"), None, "{other}");
        }
    }
}
