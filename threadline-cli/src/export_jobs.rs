//! `threadline export-jobs`: the background export queue from a terminal.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::TimeDelta;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::{Stream, StreamExt};
use serde_json::json;
use threadline::ActorRef;
use threadline::jobs::{ExportJob, ExportJobs, JobFormat};
use threadline::read::ActorFilter;

use crate::Failure;
use crate::args::{Args, Spec, filter_help};
use crate::config::Config;

/// `threadline export-jobs`.
pub static EXPORT_JOBS: Spec = Spec {
    command: "export-jobs",
    positionals: &["submit|worker|list|fetch|cleanup"],
    optional: &["ID"],
    options: &["owner", "format", "max-rows", "as", "output", "store"],
    switches: &["once", "json"],
    filters: true,
    database: true,
    config: true,
    help: concat!(
        "usage: threadline export-jobs submit --owner ACTOR --format csv|json|ndjson|parquet [filters] [--max-rows N]
       threadline export-jobs worker [--once]
       threadline export-jobs list [--owner ACTOR]
       threadline export-jobs fetch ID --as ACTOR --output PATH
       threadline export-jobs cleanup

The background export queue (threadline.export_jobs). submit queues an export for its
owner, records the owner's export_requested action, and prints the job id. worker
runs queued jobs (every one it can claim, then waits for more; --once: until none is
left) and writes each object under the store with a random name: the bytes
'threadline export' writes for the same filter and format. list shows the jobs.
fetch writes a completed job's object to PATH (a Parquet job's files into the new
folder PATH, as 'threadline export --format parquet' lays them out), for its owner
only: anyone else is told the job does not exist. cleanup removes the objects of jobs past their time to
live and marks them expired. ACTOR is type:id (admin:7); --as is who the operator
says they are: the database role running the command can read every job.

options:
  --store DIR           the folder objects go to (default: exports.dir of
                        threadline.toml, else threadline-exports)
  --json                print the job id, the jobs, or the counts as JSON
  --database-url URL    the database (default: $DATABASE_URL)
  --config PATH         the threadline.toml to read (exports.dir, exports.ttl_days)

",
        filter_help!()
    ),
};

/// The actor a flag must name.
fn actor(args: &Args, flag: &str) -> Result<ActorRef, Failure> {
    args.actor(flag, "actor")?
        .ok_or_else(|| args.usage(format!("--{flag} ACTOR is required")))
}

/// The job queue on the configured store.
fn jobs(args: &Args, config: &Config) -> Result<ExportJobs, Failure> {
    let dir = args.path_or("store", &config.exports_dir);
    let mut jobs = ExportJobs::local(&dir)?;
    if let Some(days) = config.ttl_days {
        let ttl = TimeDelta::try_days(days)
            .filter(|ttl| *ttl <= TimeDelta::days(36_525))
            .ok_or_else(|| Failure::Usage(format!("exports.ttl_days: {days} is more than 100 years")))?;
        jobs = jobs.ttl(ttl)?;
    }
    Ok(jobs)
}

/// `id state owner format rows size submitted`.
fn line(job: &ExportJob) -> String {
    format!(
        "{:<6} {:<10} {:<16} {:<7} {:>9} rows {:>11} bytes  submitted {}{}",
        job.id,
        job.state.as_str(),
        ActorFilter::Is(job.owner.clone()).to_string(),
        job.format,
        job.rows_written,
        job.object_size.unwrap_or(0),
        job.submitted_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        job.error.as_ref().map(|e| format!("  ({e})")).unwrap_or_default()
    )
}

/// Writes a job's bytes to the file `to`; returns how many.
async fn save<S, B>(mut stream: S, to: &Path) -> Result<u64, Failure>
where
    S: Stream<Item = Result<B, threadline::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(to).map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", to.display())))?,
    );
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bytes += chunk.as_ref().len() as u64;
        file.write_all(chunk.as_ref())?;
    }
    file.flush()?;
    Ok(bytes)
}

/// Writes the files of a Parquet job into the new folder `partial`, removed again on a
/// failure; returns the bytes and the files written.
async fn fetch_folder(
    jobs: &ExportJobs,
    conn: &mut AsyncPgConnection,
    job: &ExportJob,
    owner: &ActorRef,
    output: &str,
    partial: &Path,
) -> Result<(u64, usize), Failure> {
    if Path::new(output).exists() {
        return Err(Failure::Runtime(format!("{output} exists; name a new folder")));
    }
    if partial.exists() {
        return Err(Failure::Runtime(format!(
            "{} exists, left by a fetch that did not finish: remove it first",
            partial.display()
        )));
    }
    let files = jobs.files(conn, job.id, owner).await?;
    let mut bytes = 0;
    let written = async {
        std::fs::create_dir(partial)?;
        for file in &files {
            let to = partial.join(file);
            std::fs::create_dir_all(to.parent().expect("a folder"))?;
            bytes += save(jobs.open_file(conn, job.id, owner, file).await?, &to).await?;
        }
        Ok::<_, Failure>(())
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_dir_all(partial);
    }
    written.map(|()| (bytes, files.len()))
}

/// Runs `threadline export-jobs`.
pub fn export_jobs(args: &Args) -> Result<(), Failure> {
    let command = args.subcommand("subcommand", &["submit", "worker", "list", "fetch", "cleanup"])?;
    let config = args.config()?;
    let jobs = jobs(args, &config)?;
    let url = args.database_url()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let mut conn = AsyncPgConnection::establish(&url)
            .await
            .map_err(|e| Failure::Runtime(format!("cannot connect to the database: {e}")))?;
        let mut out = io::stdout().lock();
        let json = args.switch("json");
        match command {
            "submit" => {
                let owner = actor(args, "owner")?;
                let format: JobFormat = args
                    .value("format")
                    .ok_or_else(|| args.usage("--format csv|json|ndjson|parquet is required"))?
                    .parse()
                    .map_err(|e| args.usage(e))?;
                let filter = args.filter()?;
                let id = jobs
                    .submit(&mut conn, &owner, &filter, format, args.number("max-rows")?)
                    .await?;
                if json {
                    writeln!(out, "{}", json!({"id": id}))?;
                } else {
                    writeln!(out, "{id}")?;
                }
            }
            "worker" => {
                let name = format!("cli-{}", std::process::id());
                let mut ran = 0;
                loop {
                    match jobs.run_once(&mut conn, &name).await? {
                        Some(job) => {
                            ran += 1;
                            if !json {
                                writeln!(out, "{}", line(&job))?;
                            }
                        }
                        None if args.switch("once") => break,
                        None => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
                    }
                }
                if json {
                    writeln!(out, "{}", json!({"ran": ran}))?;
                }
            }
            "list" => {
                let owner = args.actor("owner", "actor")?;
                let list = jobs.list(&mut conn, owner.as_ref()).await?;
                if json {
                    writeln!(out, "{}", json!(list))?;
                } else if list.is_empty() {
                    writeln!(out, "no export jobs")?;
                }
                for job in list.iter().filter(|_| !json) {
                    writeln!(out, "{}", line(job))?;
                }
            }
            "fetch" => {
                let id: i64 = args
                    .optional(0)
                    .ok_or_else(|| args.usage("fetch takes the job's ID"))?
                    .parse()
                    .map_err(|_| args.usage("the job's ID is a whole number"))?;
                let owner = actor(args, "as")?;
                let output = args
                    .value("output")
                    .ok_or_else(|| args.usage("--output PATH is required"))?;
                let partial = PathBuf::from(format!("{output}.partial"));
                let job = jobs.status(&mut conn, id, &owner).await?;
                let (bytes, files) = if job.is_folder() {
                    let (bytes, files) = fetch_folder(&jobs, &mut conn, &job, &owner, output, &partial).await?;
                    (bytes, Some(files))
                } else {
                    let written = save(jobs.open(&mut conn, id, &owner).await?, &partial).await;
                    if written.is_err() {
                        let _ = std::fs::remove_file(&partial);
                    }
                    (written?, None)
                };
                std::fs::rename(&partial, Path::new(output))
                    .map_err(|e| Failure::Runtime(format!("cannot write {output}: {e}")))?;
                match (json, files) {
                    (true, _) => writeln!(
                        out,
                        "{}",
                        json!({"id": id, "bytes": bytes, "files": files, "output": output})
                    )?,
                    (false, Some(n)) => writeln!(
                        out,
                        "wrote {bytes} bytes of job {id} in {} to {output}",
                        crate::counted(n, "file")
                    )?,
                    (false, None) => writeln!(out, "wrote {bytes} bytes of job {id} to {output}")?,
                }
            }
            _ => {
                let expired = jobs.cleanup(&mut conn).await?;
                if json {
                    writeln!(out, "{}", json!({"expired": expired}))?;
                } else {
                    writeln!(out, "{expired} jobs expired; their objects are removed")?;
                }
            }
        }
        Ok::<_, Failure>(out.flush()?)
    })
}
