//! Telemetry: every span and event Threadline emits during the app's flows, the reads, the
//! exports and the health checks, recorded field by field, names what happened and never a
//! row value, an actor id, a request or correlation id, or a key.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use threadline::jobs::ExportJobs;
use threadline::retention::{Purge, RetentionPolicy};

use actix_web::dev::Service;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use diesel::connection::SimpleConnection;
use threadline::export::{ExportOptions, Format};
use threadline::health::HealthCheck;
use threadline::policy::PolicyCheck;
use threadline::read::{Filter, Reader, RowKey};
use threadline::{Action, ActorRef, AuditContext};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::{Blog, answer, app, as_user, blog};

/// One span or event: its target, name and every field as text.
#[derive(Debug, Clone)]
struct Emitted {
    target: String,
    name: String,
    fields: Vec<(String, String)>,
}

impl Emitted {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A subscriber that takes everything and keeps it.
#[derive(Clone, Default)]
struct Recorder {
    emitted: Arc<Mutex<Vec<Emitted>>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl Recorder {
    fn keep(&self, metadata: &Metadata<'_>, fields: Vec<(String, String)>) {
        self.emitted.lock().unwrap().push(Emitted {
            target: metadata.target().to_owned(),
            name: metadata.name().to_owned(),
            fields,
        });
    }

    fn threadline(&self) -> Vec<Emitted> {
        let all = self.emitted.lock().unwrap();
        all.iter()
            .filter(|e| e.target.starts_with("threadline"))
            .cloned()
            .collect()
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Vec::new();
        span.record(&mut Fields(&mut fields));
        self.keep(span.metadata(), fields);
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut fields = Vec::new();
        values.record(&mut Fields(&mut fields));
        self.emitted.lock().unwrap().push(Emitted {
            target: "threadline".to_owned(),
            name: String::new(),
            fields,
        });
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.keep(event.metadata(), fields);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Values that must never reach telemetry, each unlike any count, duration or name.
const USER_ID: &str = "7700931";
const POST_ID: &str = "7700555";
const SECRETS: [&str; 8] = [
    USER_ID,
    POST_ID,
    "req-sentinel-5521",
    "corr-sentinel-8832",
    "title-sentinel-4410",
    "body-sentinel-3307",
    "sentinel-mail@example.test",
    "sentinel-hash-9913",
];

#[actix_web::test]
async fn telemetry_names_what_happened_and_never_a_value_actor_id_request_correlation_or_key() {
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let Blog {
        mut admin,
        pool,
        db: _db,
    } = blog().await;
    admin
        .batch_execute(&format!(
            "INSERT INTO users (id, name, email, password_hash)
                  VALUES ({USER_ID}, 'Sentinel', 'sentinel-mail@example.test', 'sentinel-hash-9913');
             SELECT setval(pg_get_serial_sequence('posts', 'id'), {POST_ID} - 1);"
        ))
        .unwrap();
    let app = test::init_service(app::app(pool.clone())).await;
    let user: u32 = USER_ID.parse().unwrap();
    let created = answer(
        app.call(
            as_user(TestRequest::post().uri("/posts"), user)
                .insert_header(("x-request-id", "req-sentinel-5521"))
                .insert_header(("x-correlation-id", "corr-sentinel-8832"))
                .set_json(serde_json::json!({"title": "title-sentinel-4410", "body": "body-sentinel-3307"}))
                .to_request(),
        )
        .await,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.body["id"].to_string(), POST_ID);
    for uri in [format!("/posts/{POST_ID}/history"), format!("/users/{USER_ID}/history")] {
        let history = answer(app.call(TestRequest::get().uri(&uri).to_request()).await).await;
        assert_eq!(history.status, StatusCode::OK, "{uri}: {history:?}");
    }

    // The library's own reads, exports and checks, on the same trail.
    let mut pooled = pool.get().await.unwrap();
    let conn = &mut *pooled;
    let reader = Reader::new();
    let posts = "public.posts".parse().unwrap();
    let key = RowKey::from(POST_ID.parse::<i64>().unwrap());
    let history = reader.row_history(conn, &posts, &key).await.unwrap();
    let filter = Filter::new().correlation_id("corr-sentinel-8832").unwrap();
    reader.timeline(conn, &filter).await.unwrap();
    reader
        .incident_bundle(conn, history.entries[0].transaction_id, None, 100)
        .await
        .unwrap();
    reader
        .correlation_bundle(conn, "corr-sentinel-8832", None, 100)
        .await
        .unwrap();
    assert!(
        reader
            .row_history(conn, &posts, &RowKey::from(7_700_999))
            .await
            .is_err()
    );
    reader.as_of(conn, &posts, &key, chrono::Utc::now()).await.unwrap();
    let actor = threadline::read::ActorFilter::Is(ActorRef::user(USER_ID).unwrap());
    reader.actor_history(conn, &actor, None, 10).await.unwrap();
    for format in [Format::Csv, Format::Json, Format::Ndjson] {
        let mut out = Vec::new();
        reader
            .export(&Filter::new(), ExportOptions::new(format))
            .unwrap()
            .write_to(conn, &mut out, |_| {})
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("title-sentinel-4410"),
            "the export itself holds the values"
        );
    }
    let ctx = AuditContext::new()
        .with_actor(ActorRef::user(USER_ID).unwrap())
        .with_correlation_id("corr-sentinel-8832")
        .unwrap();
    threadline::record_action(conn, &ctx, &Action::new("sentinel_reviewed").unwrap())
        .await
        .unwrap();
    HealthCheck::new().run(conn).await.unwrap();
    PolicyCheck::new().declare_model::<app::Post>().run(conn).await.unwrap();
    let jobs = ExportJobs::new(Arc::new(object_store::memory::InMemory::new()));
    let job = jobs
        .submit(conn, &ActorRef::user(USER_ID).unwrap(), &filter, Format::Ndjson, None)
        .await
        .unwrap();
    let ran = jobs.run_once(conn, "telemetry").await.unwrap().expect("the job");
    assert_eq!((ran.id, ran.rows_written), (job, 1));
    let purge = Purge::new(RetentionPolicy::keep_days(3650).unwrap());
    assert_eq!(purge.execute(conn, |_| {}).await.unwrap().run.changes_deleted, 0);
    let updated = threadline::transaction_blocking(&mut admin, &ctx, |conn| {
        conn.batch_execute(&format!(
            "UPDATE posts SET title = 'title-sentinel-4410 again' WHERE id = {POST_ID}"
        ))?;
        Ok::<_, threadline::Error>(())
    })
    .unwrap();
    assert!(updated.transaction_id.is_some());
    let failed = threadline::transaction_blocking(&mut admin, &ctx, |conn| {
        conn.batch_execute(&format!(
            "UPDATE posts SET title = 'title-sentinel-4410 lost' WHERE id = {POST_ID}"
        ))?;
        Err::<(), _>(threadline::Error::Invalid {
            field: "title",
            reason: "refused by the body".into(),
        })
    });
    assert!(failed.is_err());

    let emitted = recorder.threadline();
    let named = |name: &str| {
        emitted
            .iter()
            .filter(|e| e.field("message") == Some(name))
            .collect::<Vec<_>>()
    };
    let committed = named("audited transaction committed");
    assert!(
        committed.iter().any(|e| e.field("tables") == Some("\"public.posts\"")
            && e.field("changes") == Some("1")
            && e.field("action") == Some("\"post_created\"")),
        "{committed:#?}"
    );
    assert_eq!(
        committed.len(),
        3,
        "the request's, the job submission's and the blocking one: {committed:#?}"
    );
    let kinds: Vec<&str> = named("read").iter().filter_map(|e| e.field("kind")).collect();
    for kind in ["row_history", "timeline", "incident_bundle", "correlation_bundle"] {
        assert!(kinds.contains(&format!("\"{kind}\"").as_str()), "{kind} in {kinds:?}");
    }
    let rolled = named("audited transaction rolled back");
    assert_eq!(rolled[0].field("error"), Some("\"body\""), "{rolled:#?}");
    for kind in ["as_of", "actor_history"] {
        assert!(kinds.contains(&format!("\"{kind}\"").as_str()), "{kind} in {kinds:?}");
    }
    let failed = named("read failed");
    assert_eq!(failed[0].field("error"), Some("\"not_found\""), "{failed:#?}");
    let exports = named("export finished");
    assert_eq!(exports.len(), 4, "three formats and the job's: {exports:#?}");
    assert_eq!(exports[0].field("rows"), exports[2].field("rows"));
    assert_eq!(
        named("action recorded")[0].field("action"),
        Some("\"sentinel_reviewed\"")
    );
    assert_eq!(named("health check")[0].field("covered"), Some("3"));
    assert_eq!(named("policy check")[0].field("matches"), Some("1"));
    assert!(
        emitted.iter().any(|e| e.name == "threadline.transaction"),
        "the transaction span"
    );
    for e in &emitted {
        for (name, value) in &e.fields {
            // A duration is a float whose digits may happen to spell an id.
            if name == "elapsed_ms" && value.parse::<f64>().is_ok() {
                continue;
            }
            for secret in SECRETS {
                assert!(
                    !value.contains(secret),
                    "{secret} leaked into field {name} of {} {:?}: {value}",
                    e.target,
                    e.field("message")
                );
            }
        }
    }
}

#[actix_web::test]
async fn telemetry_never_fails_a_write_when_its_summary_cannot_be_read() {
    use diesel_async::AsyncConnection;

    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());
    let db = threadline::testing::TestDatabase::new().unwrap();
    let mut admin = db.connect().unwrap();
    // As on a database still at schema version 1: the summary function is missing.
    admin
        .batch_execute(
            "CREATE TABLE notes (id int PRIMARY KEY); SELECT threadline.audit_table('notes');
             DROP FUNCTION threadline.transaction_summary();",
        )
        .unwrap();
    let ctx = AuditContext::new().with_actor(ActorRef::system("telemetry").unwrap());
    let blocking = threadline::transaction_blocking(&mut admin, &ctx, |conn| {
        conn.batch_execute("INSERT INTO notes VALUES (1)")?;
        Ok::<_, threadline::Error>(())
    })
    .unwrap();
    assert!(blocking.transaction_id.is_some());
    let mut conn = diesel_async::AsyncPgConnection::establish(db.url()).await.unwrap();
    let committed = threadline::transaction(&mut conn, &ctx, async |conn| {
        diesel_async::RunQueryDsl::execute(diesel::sql_query("INSERT INTO notes VALUES (2)"), conn).await?;
        Ok::<_, threadline::Error>(())
    })
    .await
    .unwrap();
    assert!(committed.transaction_id.is_some());
    let count: i64 = diesel::RunQueryDsl::get_result(
        diesel::sql_query("SELECT count(*) AS n FROM notes").into_boxed::<diesel::pg::Pg>(),
        &mut admin,
    )
    .map(|r: Count| r.n)
    .unwrap();
    assert_eq!(count, 2, "both writes committed");
    let emitted = recorder.threadline();
    let committed: Vec<_> = emitted
        .iter()
        .filter(|e| e.field("message") == Some("audited transaction committed"))
        .collect();
    assert_eq!(committed.len(), 2, "{committed:#?}");
    assert!(
        committed.iter().all(|e| e.field("changes") == Some("0")),
        "no summary, no failure"
    );
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}
