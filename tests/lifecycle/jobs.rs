//! Export jobs: racing workers run each job once, a dead worker's job is finished by
//! another, only the owner downloads, jobs expire, and the bytes are the direct export's.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::PgConnection;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use threadline::export::parquet::ParquetOptions;
use threadline::export::{ExportOptions, Format};
use threadline::jobs::{ExportJobs, ExportWorker, JobFormat, JobState};
use threadline::read::{Filter, Reader};
use threadline::testing::TestDatabase;
use threadline::{ActorRef, Error};

use crate::support::{actions, exec};

/// A database with 250 changes of `posts`, and an async connection to it.
async fn trail() -> (TestDatabase, PgConnection, AsyncPgConnection) {
    let db = TestDatabase::new().unwrap();
    let mut admin = db.connect().unwrap();
    exec(
        &mut admin,
        "CREATE TABLE posts (id int PRIMARY KEY, title text); SELECT threadline.audit_table('posts');
         INSERT INTO posts SELECT g, 'title ' || g FROM generate_series(1, 200) g;
         UPDATE posts SET title = title || ', \"quoted\"' WHERE id <= 50;",
    );
    let conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    (db, admin, conn)
}

/// What `threadline export` writes for the job's filter and format, dated as the job.
async fn direct(
    conn: &mut AsyncPgConnection,
    filter: &Filter,
    format: Format,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let mut out = Vec::new();
    Reader::new()
        .export(filter, ExportOptions::new(format).generated_at(at))
        .unwrap()
        .write_to(conn, &mut out, |_| {})
        .await
        .unwrap();
    out
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_run_each_job_once_with_the_direct_export_s_bytes() {
    let (db, mut admin, mut conn) = trail().await;
    let dir = scratch("race");
    let jobs = ExportJobs::local(&dir).unwrap().page_size(40);
    let owner = ActorRef::admin("7").unwrap();
    let filters = [
        Filter::new(),
        Filter::new().table("posts").unwrap().op(threadline::read::Op::Update),
    ];
    let mut submitted = Vec::new();
    for format in [Format::Csv, Format::Json, Format::Ndjson] {
        for filter in &filters {
            submitted.push((
                jobs.submit(&mut conn, &owner, filter, format, None).await.unwrap(),
                filter.clone(),
                format,
            ));
        }
    }
    let requested = actions(&mut admin);
    assert_eq!(requested.len(), 6, "each submission is an action of its owner");
    assert!(
        requested
            .iter()
            .all(|a| a.name == "export_requested" && a.actor["id"] == "7")
    );

    let race = |name: &'static str| {
        let (jobs, url) = (jobs.clone(), db.url().to_owned());
        tokio::spawn(async move {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            let mut ran = Vec::new();
            while let Some(job) = jobs.run_once(&mut conn, name).await.unwrap() {
                ran.push(job.id);
            }
            ran
        })
    };
    let (a, b) = (race("a"), race("b"));
    let (mut ran, b) = (a.await.unwrap(), b.await.unwrap());
    ran.extend(b);
    ran.sort_unstable();
    assert_eq!(
        ran,
        submitted.iter().map(|s| s.0).collect::<Vec<_>>(),
        "every job exactly once"
    );

    let mut names = Vec::new();
    for (id, filter, format) in &submitted {
        let job = jobs.status(&mut conn, *id, &owner).await.unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Completed, 1), "{job:?}");
        let bytes = jobs.read_all(&mut conn, *id, &owner).await.unwrap();
        assert_eq!(
            bytes,
            direct(&mut conn, filter, *format, job.submitted_at).await,
            "job {id} ({format})"
        );
        assert_eq!(job.object_size, Some(i64::try_from(bytes.len()).unwrap()));
        let name = job.object_name.unwrap();
        let random = name
            .strip_prefix("threadline-exports/")
            .unwrap()
            .split('.')
            .next()
            .unwrap();
        assert_eq!(
            (random.len(), random.matches('-').count()),
            (36, 4),
            "a random UUID: {name}"
        );
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), submitted.len(), "a name per job");
    assert_eq!(jobs.list(&mut conn, Some(&owner)).await.unwrap().len(), 6);

    let stranger = ActorRef::admin("8").unwrap();
    let (id, ..) = &submitted[0];
    assert!(matches!(
        jobs.open(&mut conn, *id, &stranger).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        jobs.status(&mut conn, *id, &stranger).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        jobs.open(&mut conn, 999_999, &owner).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_s_job_is_finished_by_another_and_its_claim_is_void() {
    let (_db, mut admin, mut conn) = trail().await;
    let jobs = ExportJobs::new(Arc::new(InMemory::new()))
        .lease(Duration::from_millis(300))
        .unwrap();
    let owner = ActorRef::user("42").unwrap();
    let id = jobs
        .submit(&mut conn, &owner, &Filter::new(), Format::Ndjson, Some(120))
        .await
        .unwrap();
    // What a worker killed mid-job leaves: a running job, its lease running out.
    exec(
        &mut admin,
        &format!(
            "UPDATE threadline.export_jobs SET state = 'running', attempts = 1, rows_written = 40,
                    lease_until = clock_timestamp() + interval '200 milliseconds', lease_token = gen_random_uuid()
              WHERE id = {id}"
        ),
    );
    assert!(
        jobs.run_once(&mut conn, "b").await.unwrap().is_none(),
        "the lease still holds"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = jobs.run_once(&mut conn, "b").await.unwrap().expect("claimed again");
    assert_eq!((job.id, job.state, job.attempts), (id, JobState::Completed, 2));
    assert_eq!((job.rows_written, job.truncated), (120, Some(true)));
    let bytes = jobs.read_all(&mut conn, id, &owner).await.unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 120);

    // A row pointed at another object of the store by hand reads as missing.
    exec(
        &mut admin,
        &format!("UPDATE threadline.export_jobs SET object_name = 'backups/db.dump' WHERE id = {id}"),
    );
    assert!(matches!(
        jobs.open(&mut conn, id, &owner).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_expire_after_their_ttl_and_cleanup_removes_the_object() {
    let (db, _admin, mut conn) = trail().await;
    let dir = scratch("expiry");
    let jobs = ExportJobs::local(&dir).unwrap().ttl(TimeDelta::seconds(1)).unwrap();
    let owner = ActorRef::admin("7").unwrap();
    let manager = diesel_async::pooled_connection::AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
    let pool = diesel_async::pooled_connection::bb8::Pool::builder()
        .max_size(2)
        .build(manager)
        .await
        .unwrap();
    let worker = ExportWorker::start(pool, jobs.clone(), "in-process", Duration::from_millis(20));
    let id = jobs
        .submit(&mut conn, &owner, &Filter::new(), Format::Csv, None)
        .await
        .unwrap();
    let mut job = jobs.status(&mut conn, id, &owner).await.unwrap();
    for _ in 0..200 {
        if job.state == JobState::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        job = jobs.status(&mut conn, id, &owner).await.unwrap();
    }
    worker.stop().await;
    assert_eq!(job.state, JobState::Completed, "the in-process worker ran it");
    let file = dir.join(job.object_name.as_ref().unwrap());
    assert!(file.is_file(), "{file:?}");
    assert_eq!(jobs.cleanup(&mut conn).await.unwrap(), 0, "not due yet");
    assert!(file.is_file());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(jobs.cleanup(&mut conn).await.unwrap(), 1);
    assert_eq!(
        jobs.status(&mut conn, id, &owner).await.unwrap().state,
        JobState::Expired
    );
    assert!(!file.exists(), "the object is removed");
    assert!(matches!(
        jobs.open(&mut conn, id, &owner).await,
        Err(Error::NotFound { .. })
    ));
    let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).unwrap();
    let head = store
        .head(&object_store::path::Path::from(job.object_name.unwrap()))
        .await;
    assert!(matches!(head, Err(object_store::Error::NotFound { .. })));
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parquet_job_stores_the_folder_a_direct_parquet_export_writes() {
    let (_db, mut admin, mut conn) = trail().await;
    // Two tables and two days: three files.
    exec(
        &mut admin,
        "CREATE TABLE \"tag list\" (id int PRIMARY KEY); SELECT threadline.audit_table('\"tag list\"');
         INSERT INTO \"tag list\" SELECT generate_series(1, 30);
         UPDATE threadline.audit_changes SET captured_at = captured_at - interval '1 day' WHERE op = 'update';",
    );
    let dir = scratch("parquet");
    let jobs = ExportJobs::local(dir.join("store")).unwrap().page_size(40);
    let owner = ActorRef::admin("7").unwrap();
    let id = jobs
        .submit(&mut conn, &owner, &Filter::new(), JobFormat::Parquet, None)
        .await
        .unwrap();
    let job = jobs.run_once(&mut conn, "worker").await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.format.as_str()),
        (JobState::Completed, "parquet"),
        "{job:?}"
    );
    assert_eq!(job.rows_written, 280);

    let direct = Reader::new()
        .export_parquet(&Filter::new(), ParquetOptions::new().page_size(40))
        .unwrap()
        .write_dir(&mut conn, &dir.join("direct"), |_| {})
        .await
        .unwrap();
    let files = jobs.files(&mut conn, id, &owner).await.unwrap();
    assert_eq!(files, files_under(&dir.join("direct")));
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("table=public.tag%20list/")),
        "a folder's name is encoded once: {files:?}"
    );
    assert_eq!(job.object_size, Some(i64::try_from(direct.bytes).unwrap()));
    for file in &files {
        let mut stream = jobs.open_file(&mut conn, id, &owner, file).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(bytes, std::fs::read(dir.join("direct").join(file)).unwrap(), "{file}");
    }
    let spooled = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("threadline-parquet-{}-", std::process::id()))
        })
        .count();
    assert_eq!(spooled, 0, "the spool folder is removed");

    // Only the owner reads it, only its own files, and never as one object.
    let other = ActorRef::admin("8").unwrap();
    assert!(matches!(
        jobs.files(&mut conn, id, &other).await,
        Err(Error::NotFound { .. })
    ));
    for wrong in ["../store", "table=public.posts/missing.parquet", ""] {
        assert!(
            matches!(
                jobs.open_file(&mut conn, id, &owner, wrong).await,
                Err(Error::NotFound { .. })
            ),
            "{wrong:?}"
        );
    }
    let refused = jobs.open(&mut conn, id, &owner).await.err().unwrap().to_string();
    assert!(refused.contains("folder of Parquet files"), "{refused}");

    // Expiry removes every object of the folder.
    exec(
        &mut admin,
        "UPDATE threadline.export_jobs SET expires_at = now() - interval '1 second'",
    );
    assert_eq!(jobs.cleanup(&mut conn).await.unwrap(), 1);
    assert_eq!(files_under(&dir.join("store")), Vec::<String>::new());

    // A folder no job names (its worker died, and the job was claimed again) goes with the
    // next cleanup; the folder of a job being written stays.
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.join("store")).unwrap();
    let part = "table=public.posts/date=2026-12-01/part-0.parquet";
    let abandoned = "threadline-exports/0b9f2d3e-2a7c-4c55-9d1e-1f2e3d4c5b6a.parquet";
    let writing = "threadline-exports/5d0c8f1a-6b2e-4f3d-8a9c-7e6d5c4b3a21.parquet";
    for folder in [abandoned, writing] {
        let object = object_store::path::Path::parse(format!("{folder}/{part}")).unwrap();
        store
            .put(&object, object_store::PutPayload::from_static(b"PAR1"))
            .await
            .unwrap();
    }
    let running = jobs
        .submit(&mut conn, &owner, &Filter::new(), JobFormat::Parquet, None)
        .await
        .unwrap();
    exec(
        &mut admin,
        &format!(
            "UPDATE threadline.export_jobs SET state = 'running', lease_token = '5d0c8f1a-6b2e-4f3d-8a9c-7e6d5c4b3a21',
                    lease_until = now() + interval '1 hour' WHERE id = {running}"
        ),
    );
    assert_eq!(jobs.cleanup(&mut conn).await.unwrap(), 0);
    assert_eq!(files_under(&dir.join("store")), [format!("{writing}/{part}")]);
    std::fs::remove_dir_all(&dir).unwrap();
}
