//! The evidence plane: claims the host records about its trail, kept append-only by the
//! database.
//!
//! `threadline.evidence_records` refuses UPDATE, DELETE and TRUNCATE for every role, the
//! owner included; the only removal is `threadline.prune_evidence(before, reason)`, which
//! logs itself in `threadline.evidence_maintenance` (append-only too). Records are written
//! only when the host calls [`record`]: a claim with a [`Verdict`], a JSON payload, and the
//! actor who recorded it. Writers for the common claims build the [`Evidence`]:
//! [`Evidence::coverage`], [`Evidence::policy`], [`Evidence::retention_run`],
//! [`Evidence::export_delivered`].
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::ActorRef;
//! use threadline::evidence::{self, Evidence, EvidenceQuery};
//! use threadline::health::HealthCheck;
//!
//! let report = HealthCheck::new().run_blocking(conn)?;
//! let auditor = ActorRef::admin("7")?;
//! evidence::record_blocking(conn, &auditor, &Evidence::coverage(&report))?;
//! for record in EvidenceQuery::new().subject("coverage:public").run_blocking(conn)? {
//!     println!("{} {:?}: {}", record.recorded_at, record.verdict, record.claim);
//! }
//! # Ok(()) }
//! ```

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Jsonb, Text, Timestamptz};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::export::{ExportSummary, Format};
use crate::health::{Coverage, HealthReport, Severity};
use crate::policy::{PolicyReport, PolicyStatus};
use crate::read::exec::{Db, ready};
use crate::read::sql::{Bind, Sql};
use crate::retention::{RetentionRun, RunStatus};
use crate::{ActorRef, Error};

/// How well a claim is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Checked and holds.
    Proven,
    /// Holds as far as could be checked (a partial run, a sample).
    Inferred,
    /// Checked and does not hold.
    Unsupported,
}

impl Verdict {
    /// The verdict as stored: `proven`, `inferred`, `unsupported`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Proven => "proven",
            Verdict::Inferred => "inferred",
            Verdict::Unsupported => "unsupported",
        }
    }

    fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "proven" => Ok(Verdict::Proven),
            "inferred" => Ok(Verdict::Inferred),
            "unsupported" => Ok(Verdict::Unsupported),
            other => Err(Error::Decode {
                column: "evidence_records.verdict".into(),
                reason: format!("{other:?} is not a verdict"),
            }),
        }
    }
}

/// A claim to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    kind: String,
    subject: String,
    claim: String,
    verdict: Verdict,
    payload: Map<String, Value>,
}

impl Evidence {
    /// A claim of `kind` (a lowercase name, such as `coverage_snapshot`) about `subject`.
    /// The database checks the fields: see `threadline.record_evidence`.
    pub fn new(
        kind: impl Into<String>,
        subject: impl Into<String>,
        claim: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Evidence {
            kind: kind.into(),
            subject: subject.into(),
            claim: claim.into(),
            verdict,
            payload: Map::new(),
        }
    }

    /// Attaches the data the claim rests on.
    pub fn with_payload(mut self, payload: Map<String, Value>) -> Self {
        self.payload = payload;
        self
    }

    /// A coverage snapshot: proven when every table is covered (or expected uncovered) and
    /// no finding is an error. Subject `coverage:<schemas>`.
    pub fn coverage(report: &HealthReport) -> Self {
        let (covered, uncovered, expected) = report.counts();
        let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
        let schemas: Vec<&str> = {
            let mut s: Vec<&str> = report.tables.iter().filter_map(|t| t.table.split('.').next()).collect();
            s.sort_unstable();
            s.dedup();
            s
        };
        let uncovered_tables: Vec<&str> = report
            .tables
            .iter()
            .filter(|t| t.coverage == Coverage::Uncovered)
            .map(|t| t.table.as_str())
            .collect();
        let codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
        Evidence::new(
            "coverage_snapshot",
            format!("coverage:{}", if schemas.is_empty() { "none".to_owned() } else { schemas.join(",") }),
            format!("{covered} tables covered, {uncovered} uncovered, {expected} expected uncovered; {errors} error findings"),
            if uncovered == 0 && errors == 0 { Verdict::Proven } else { Verdict::Unsupported },
        )
        .with_payload(object(json!({
            "schema_version": report.schema_version, "covered": covered, "uncovered": uncovered,
            "expected_uncovered": expected, "uncovered_tables": uncovered_tables, "findings": codes,
        })))
    }

    /// A policy check: proven when every table matches. Subject `policies`.
    pub fn policy(report: &PolicyReport) -> Self {
        let drifted: Vec<&str> = report
            .tables
            .iter()
            .filter(|t| t.status != PolicyStatus::Matches)
            .map(|t| t.table.as_str())
            .collect();
        Evidence::new(
            "policy_drift",
            "policies",
            format!(
                "{} of {} tables match their declared policy",
                report.count(PolicyStatus::Matches),
                report.tables.len()
            ),
            if drifted.is_empty() {
                Verdict::Proven
            } else {
                Verdict::Unsupported
            },
        )
        .with_payload(object(json!({
            "matches": report.count(PolicyStatus::Matches), "differs": report.count(PolicyStatus::Differs),
            "declared_not_deployed": report.count(PolicyStatus::DeclaredNotDeployed),
            "deployed_not_declared": report.count(PolicyStatus::DeployedNotDeclared), "drifted": drifted,
        })))
    }

    /// A finished retention run: proven when it completed with nothing older than its
    /// cutoff left, inferred when `max_batches` left some, unsupported otherwise. Subject
    /// `retention`.
    pub fn retention_run(run: &RetentionRun) -> Self {
        let verdict = match (run.status, run.more_left) {
            (RunStatus::Completed, false) => Verdict::Proven,
            (RunStatus::Completed, true) => Verdict::Inferred,
            _ => Verdict::Unsupported,
        };
        let cutoff = crate::read::rfc3339(&run.cutoff);
        Evidence::new(
            "retention_run",
            "retention",
            format!(
                "run {} deleted {} changes and {} transactions captured before {cutoff}",
                run.id, run.changes_deleted, run.transactions_deleted
            ),
            verdict,
        )
        .with_payload(object(serde_json::to_value(run).expect("a run serializes")))
    }

    /// An export handed to `recipient`: its format, rows, bytes and whether it was cut
    /// short. Subject `export:<name>`, the name the host gave the delivery.
    pub fn export_delivered(name: &str, format: Format, summary: &ExportSummary, recipient: &ActorRef) -> Self {
        Evidence::new(
            "export_delivered",
            format!("export:{name}"),
            format!("{} changes ({} bytes, {format}) delivered", summary.rows, summary.bytes),
            if summary.truncated {
                Verdict::Inferred
            } else {
                Verdict::Proven
            },
        )
        .with_payload(object(json!({
            "format": format.to_string(), "rows": summary.rows, "bytes": summary.bytes,
            "truncated": summary.truncated, "recipient": recipient,
        })))
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("built from an object"),
    }
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceRecord {
    /// Its id.
    pub id: i64,
    /// The kind of claim.
    pub kind: String,
    /// What it is about.
    pub subject: String,
    /// The claim.
    pub claim: String,
    /// How well it is supported.
    pub verdict: Verdict,
    /// The data it rests on.
    pub payload: Value,
    /// Who recorded it, as the host said.
    pub recorded_by: ActorRef,
    /// The database role that recorded it, as the database saw it.
    pub recorded_role: String,
    /// When.
    #[serde(serialize_with = "crate::read::micros")]
    pub recorded_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    claim: String,
    #[diesel(sql_type = Text)]
    verdict: String,
    #[diesel(sql_type = Jsonb)]
    payload: Value,
    #[diesel(sql_type = Jsonb)]
    recorded_by: Value,
    #[diesel(sql_type = Text)]
    recorded_role: String,
    #[diesel(sql_type = Timestamptz)]
    recorded_at: DateTime<Utc>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Records `evidence` as `by` and returns its id.
pub async fn record(conn: &mut AsyncPgConnection, by: &ActorRef, evidence: &Evidence) -> Result<i64, Error> {
    insert(conn, by, evidence).await
}

/// [`record`] on a blocking connection.
pub fn record_blocking(conn: &mut PgConnection, by: &ActorRef, evidence: &Evidence) -> Result<i64, Error> {
    ready(insert(conn, by, evidence))
}

async fn insert<C: Db>(conn: &mut C, by: &ActorRef, evidence: &Evidence) -> Result<i64, Error> {
    let mut sql = Sql::new("SELECT threadline.record_evidence(");
    sql.bind(Bind::Text(evidence.kind.clone()))
        .push(", ")
        .bind(Bind::Text(evidence.subject.clone()))
        .push(", ")
        .bind(Bind::Text(evidence.claim.clone()))
        .push(", ")
        .bind(Bind::Text(evidence.verdict.as_str().to_owned()))
        .push(", ")
        .bind(Bind::Jsonb(Value::Object(evidence.payload.clone())))
        .push(", ")
        .bind(Bind::Jsonb(serde_json::to_value(by).expect("an actor serializes")))
        .push(") AS id");
    let rows: Vec<IdRow> = conn.load(sql.writing()).await.map_err(|e| e.refused_as("evidence"))?;
    Ok(rows.into_iter().next().expect("record_evidence returns an id").id)
}

/// Which records to read: one subject or all, the latest per subject or the whole history,
/// in a time window; newest first, at most [`EvidenceQuery::limit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceQuery {
    subject: Option<String>,
    history: bool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: usize,
}

impl Default for EvidenceQuery {
    fn default() -> Self {
        EvidenceQuery {
            subject: None,
            history: false,
            from: None,
            to: None,
            limit: 1000,
        }
    }
}

impl EvidenceQuery {
    /// The latest record of every subject.
    pub fn new() -> Self {
        EvidenceQuery::default()
    }

    /// Only `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Every record, not only the latest per subject.
    pub fn history(mut self) -> Self {
        self.history = true;
        self
    }

    /// Recorded at or after `from`.
    pub fn from(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }

    /// Recorded at or before `to`.
    pub fn to(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }

    /// At most `limit` records (default 1000).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Reads the records.
    pub async fn run(&self, conn: &mut AsyncPgConnection) -> Result<Vec<EvidenceRecord>, Error> {
        read(conn, self).await
    }

    /// [`EvidenceQuery::run`] on a blocking connection.
    pub fn run_blocking(&self, conn: &mut PgConnection) -> Result<Vec<EvidenceRecord>, Error> {
        ready(read(conn, self))
    }
}

async fn read<C: Db>(conn: &mut C, query: &EvidenceQuery) -> Result<Vec<EvidenceRecord>, Error> {
    let columns = "e.id, e.kind, e.subject, e.claim, e.verdict, e.payload, e.recorded_by, e.recorded_role, \
                   e.recorded_at";
    let mut sql = Sql::new(&if query.history {
        format!("SELECT {columns} FROM threadline.evidence_records e WHERE true")
    } else {
        format!("SELECT {columns} FROM (SELECT DISTINCT ON (subject) * FROM threadline.evidence_records e WHERE true")
    });
    if let Some(subject) = &query.subject {
        sql.push(" AND e.subject = ").bind(Bind::Text(subject.clone()));
    }
    if let Some(from) = query.from {
        sql.push(" AND e.recorded_at >= ").bind(Bind::Timestamp(from));
    }
    if let Some(to) = query.to {
        sql.push(" AND e.recorded_at <= ").bind(Bind::Timestamp(to));
    }
    if !query.history {
        sql.push(" ORDER BY subject, recorded_at DESC, id DESC) e");
    }
    sql.push(" ORDER BY e.recorded_at DESC, e.id DESC LIMIT ")
        .bind(Bind::BigInt(i64::try_from(query.limit).unwrap_or(i64::MAX)));
    conn.load::<RecordRow>(sql)
        .await?
        .into_iter()
        .map(|row| {
            Ok(EvidenceRecord {
                id: row.id,
                kind: row.kind,
                subject: row.subject,
                claim: row.claim,
                verdict: Verdict::parse(&row.verdict)?,
                payload: row.payload,
                recorded_by: serde_json::from_value(row.recorded_by).map_err(|e| Error::Decode {
                    column: "evidence_records.recorded_by".into(),
                    reason: e.to_string(),
                })?,
                recorded_role: row.recorded_role,
                recorded_at: row.recorded_at,
            })
        })
        .collect()
}
