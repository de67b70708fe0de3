//! Health: proof that capture is switched on, whole, and as installed.
//!
//! [`HealthCheck::run`] reads the catalog once (never audited data, so it needs no grant on
//! the audited tables and works through any pooler) and reports each user table's
//! [`Coverage`] and every [`Finding`] that keeps capture from being whole, each with the SQL
//! that fixes it. It needs the `threadline_reader` role, or the installer's.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::health::{HealthCheck, Severity};
//!
//! let report = HealthCheck::new().run_blocking(conn)?;
//! for finding in report.findings.iter().filter(|f| f.severity == Severity::Error) {
//!     eprintln!("{}: {}\n  fix: {}", finding.code, finding.detail, finding.fix);
//! }
//! # Ok(()) }
//! ```

use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use serde::Serialize;

use std::time::Instant;

use crate::migrations::SCHEMA_VERSION;
use crate::read::TableName;
use crate::read::exec::{Db, ready};
use crate::read::sql::{Bind, Sql};
use crate::{Error, telemetry};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Changes go, or may go, unrecorded.
    Error,
    /// Capture records everything, but not as it should (a weaker privilege model, an
    /// outdated install).
    Warning,
}

/// One thing that keeps capture from being whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The audited table it concerns; `None` for the install itself.
    pub table: Option<String>,
    /// A stable code: `trigger_missing`, `trigger_disabled`, `trigger_replica_only`,
    /// `trigger_duplicated`, `capture_stale`, `key_not_unique`, `table_missing`,
    /// `capture_owner`, `event_triggers_missing`, `event_trigger_disabled`,
    /// `require_actor_off`, `schema_outdated`, `schema_owner`, `foreign_dependency`,
    /// `partition_default_rows`, `partitions_ahead` or `partition_boundary_left`.
    pub code: String,
    /// What is wrong, naming objects, never row values.
    pub detail: String,
    /// The SQL (or the step) that fixes it.
    pub fix: String,
}

/// Whether a table's changes are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Coverage {
    /// Audited, with every capture trigger present and enabled.
    Covered,
    /// Not audited, or audited with an error-level finding.
    Uncovered,
    /// Not audited, as expected ([`HealthCheck::expect_unaudited`]).
    ExpectedUncovered,
}

/// One user table and its coverage (partitions count under their parent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCoverage {
    /// `schema.table`.
    pub table: String,
    /// Whether its changes are recorded.
    pub coverage: Coverage,
}

/// What a [`HealthCheck`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The installed schema version.
    pub schema_version: i32,
    /// Every user table in the checked schemas, by name.
    pub tables: Vec<TableCoverage>,
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
}

impl HealthReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// How many tables have each coverage: covered, uncovered, expected uncovered.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |c| self.tables.iter().filter(|t| t.coverage == c).count();
        (
            count(Coverage::Covered),
            count(Coverage::Uncovered),
            count(Coverage::ExpectedUncovered),
        )
    }
}

/// What to check: one schema (default `public`) or every non-system schema, and the tables
/// expected to stay unaudited (Diesel's `__diesel_schema_migrations` by default).
#[derive(Debug, Clone)]
pub struct HealthCheck {
    schema: Option<String>,
    expected_unaudited: Vec<TableName>,
    require_actor: bool,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            schema: Some("public".to_owned()),
            expected_unaudited: vec![
                TableName::new("public", "__diesel_schema_migrations").expect("a valid table name"),
            ],
            require_actor: false,
        }
    }
}

impl HealthCheck {
    /// Checks schema `public`, expecting `__diesel_schema_migrations` unaudited.
    pub fn new() -> Self {
        HealthCheck::default()
    }

    /// Checks one schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Checks every schema but PostgreSQL's and Threadline's own.
    pub fn all_schemas(mut self) -> Self {
        self.schema = None;
        self
    }

    /// Expects a table to stay unaudited: it is reported as expected-uncovered.
    pub fn expect_unaudited(mut self, table: TableName) -> Self {
        self.expected_unaudited.push(table);
        self
    }

    /// Expects strict mode on: while `threadline.require_actor` is off, a change with no
    /// actor is recorded instead of refused, and the check reports `require_actor_off`.
    pub fn expect_require_actor(mut self) -> Self {
        self.require_actor = true;
        self
    }

    /// Runs the check.
    pub async fn run(&self, conn: &mut AsyncPgConnection) -> Result<HealthReport, Error> {
        check(conn, self).await
    }

    /// [`HealthCheck::run`] on a blocking connection.
    pub fn run_blocking(&self, conn: &mut PgConnection) -> Result<HealthReport, Error> {
        ready(check(conn, self))
    }
}

#[derive(QueryableByName)]
struct FindingRow {
    #[diesel(sql_type = Text)]
    severity: String,
    #[diesel(sql_type = Nullable<Text>)]
    table_schema: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    table_name: Option<String>,
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Text)]
    fix: String,
}

#[derive(QueryableByName)]
struct TableRow {
    #[diesel(sql_type = Text)]
    table_schema: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Bool)]
    audited: bool,
}

#[derive(QueryableByName)]
struct ForeignRow {
    #[diesel(sql_type = Text)]
    dependent: String,
    #[diesel(sql_type = Text)]
    referenced: String,
}

/// Every part of schema `threadline` (a default, a constraint, an index, a column's type, a
/// function's signature, a trigger or view on its tables) that uses a function, operator,
/// type or collation of another schema than `pg_catalog` and `threadline`: code a role
/// other than the installer may have written, run by whoever writes or reads the trail.
/// An install run under another role's `search_path` leaves such references.
const FOREIGN_DEPENDENCIES: &str = "
    WITH foreign_objects (classid, oid) AS (
        SELECT 'pg_proc'::regclass, oid FROM pg_proc
         WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'threadline'::regnamespace)
        UNION ALL
        SELECT 'pg_operator'::regclass, oid FROM pg_operator
         WHERE oprnamespace NOT IN ('pg_catalog'::regnamespace, 'threadline'::regnamespace)
        UNION ALL
        SELECT 'pg_type'::regclass, oid FROM pg_type
         WHERE typnamespace NOT IN ('pg_catalog'::regnamespace, 'threadline'::regnamespace)
        UNION ALL
        SELECT 'pg_collation'::regclass, oid FROM pg_collation
         WHERE collnamespace NOT IN ('pg_catalog'::regnamespace, 'threadline'::regnamespace))
    SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) AS dependent,
           pg_describe_object(d.refclassid, d.refobjid, 0) AS referenced
      FROM foreign_objects f
      JOIN pg_depend d ON d.refclassid = f.classid AND d.refobjid = f.oid
     CROSS JOIN LATERAL (SELECT CASE d.classid
            WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = d.objid)
            WHEN 'pg_attrdef'::regclass THEN (SELECT c.relnamespace FROM pg_attrdef a
                                                JOIN pg_class c ON c.oid = a.adrelid WHERE a.oid = d.objid)
            WHEN 'pg_constraint'::regclass THEN (SELECT connamespace FROM pg_constraint WHERE oid = d.objid)
            WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = d.objid)
            WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = d.objid)
            WHEN 'pg_trigger'::regclass THEN (SELECT c.relnamespace FROM pg_trigger t
                                                JOIN pg_class c ON c.oid = t.tgrelid WHERE t.oid = d.objid)
            WHEN 'pg_rewrite'::regclass THEN (SELECT c.relnamespace FROM pg_rewrite r
                                                JOIN pg_class c ON c.oid = r.ev_class WHERE r.oid = d.objid)
            END AS nsp) dep
     WHERE dep.nsp = 'threadline'::regnamespace
     ORDER BY 1, 2";

/// The roles other than superusers that own schema `threadline` or a table, sequence or
/// function in it (capture functions belong to `threadline_capture` by design).
const WEAK_OWNER: &str = "
    SELECT DISTINCT r.rolname::text AS owner
      FROM (SELECT nspowner AS owner FROM pg_namespace WHERE nspname = 'threadline'
            UNION ALL SELECT relowner FROM pg_class WHERE relnamespace = 'threadline'::regnamespace
            UNION ALL SELECT proowner FROM pg_proc WHERE pronamespace = 'threadline'::regnamespace) o
      JOIN pg_roles r ON r.oid = o.owner
     WHERE NOT r.rolsuper AND r.rolname <> 'threadline_capture'
     ORDER BY 1";

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = Text)]
    owner: String,
}

#[derive(QueryableByName)]
struct InstallRow {
    #[diesel(sql_type = Integer)]
    version: i32,
    #[diesel(sql_type = Bool)]
    require_actor: bool,
}

/// `schema.table` as the reports name tables.
/// What a partitioned store needs: changes in the default partition, partitions ahead;
/// and on a store that is one table, a CHECK a failed conversion left behind.
const PARTITION_STATE: &str = "
    SELECT s.partition_period AS period,
           p.default_rows,
           coalesce(p.strays, false) AS strays,
           coalesce(p.covered_until > now() + ('1 ' || s.partition_period)::interval, false) AS ahead,
           EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conrelid = 'threadline.audit_changes'::regclass
                      AND k.conname = 'audit_changes_partition_boundary') AS boundary_left
      FROM threadline.settings s
     CROSS JOIN (SELECT max(p.estimated_rows) FILTER (WHERE p.is_default) AS default_rows,
                        bool_or(p.has_rows) FILTER (WHERE p.is_default) AS strays,
                        max(p.range_end) FILTER (WHERE NOT p.is_default) AS covered_until
                   FROM threadline.partitions() p) p";

#[derive(QueryableByName)]
struct PartitionState {
    #[diesel(sql_type = Nullable<Text>)]
    period: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    default_rows: Option<i64>,
    #[diesel(sql_type = Bool)]
    strays: bool,
    #[diesel(sql_type = Bool)]
    ahead: bool,
    #[diesel(sql_type = Bool)]
    boundary_left: bool,
}

async fn partition_findings<C: Db>(conn: &mut C) -> Result<Vec<Finding>, Error> {
    let state = conn
        .load::<PartitionState>(Sql::new(PARTITION_STATE))
        .await?
        .pop()
        .expect("one row");
    let finding = |severity, code: &str, detail: String, fix: &str| Finding {
        severity,
        table: None,
        code: code.to_owned(),
        detail,
        fix: fix.to_owned(),
    };
    let mut findings = Vec::new();
    let Some(period) = state.period else {
        if state.boundary_left {
            findings.push(finding(
                Severity::Error,
                "partition_boundary_left",
                "threadline.audit_changes carries the CHECK audit_changes_partition_boundary of a conversion \
                 that did not finish: from its boundary on, it refuses every captured change"
                    .to_owned(),
                "Run threadline partitions convert again, or SELECT threadline.partition_boundary('drop');",
            ));
        }
        return Ok(findings);
    };
    if state.strays {
        findings.push(finding(
            Severity::Warning,
            "partition_default_rows",
            format!(
                "changes are in threadline.audit_changes_default (about {}): no partition by {period} covers \
                 their capture time, and retention cannot drop them with a partition",
                state.default_rows.unwrap_or(0)
            ),
            "threadline partitions ensure (moves them into partitions of their periods)",
        ));
    }
    if !state.ahead {
        findings.push(finding(
            Severity::Warning,
            "partitions_ahead",
            format!("no partition covers the next {period}: changes captured then will land in the default partition"),
            "threadline partitions ensure, on a schedule (every retention run also does it)",
        ));
    }
    Ok(findings)
}

fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

async fn check<C: Db>(conn: &mut C, options: &HealthCheck) -> Result<HealthReport, Error> {
    let started = Instant::now();
    let install = conn
        .load::<InstallRow>(Sql::new(
            "SELECT coalesce((SELECT max(version) FROM threadline.schema_version), 0) AS version,
                    coalesce((SELECT require_actor FROM threadline.settings), false) AS require_actor",
        ))
        .await?
        .pop()
        .expect("one row");
    let version = install.version;
    let mut sql = Sql::new(
        "SELECT n.nspname::text AS table_schema, c.relname::text AS table_name,
                EXISTS (SELECT 1 FROM threadline.audited_tables t WHERE t.relid = c.oid) AS audited
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'threadline')
            AND n.nspname NOT LIKE 'pg\\_%'",
    );
    if let Some(schema) = &options.schema {
        sql.push(" AND n.nspname = ").bind(Bind::Text(schema.clone()));
    }
    sql.push(" ORDER BY 1, 2");
    let tables = conn.load::<TableRow>(sql).await?;
    let in_scope = |schema: &str| options.schema.as_deref().is_none_or(|s| s == schema);
    let mut findings: Vec<Finding> = conn
        .load::<FindingRow>(Sql::new("SELECT * FROM threadline.health_findings()"))
        .await?
        .into_iter()
        .filter(|f| f.table_schema.as_deref().is_none_or(in_scope))
        .map(|f| Finding {
            severity: if f.severity == "error" {
                Severity::Error
            } else {
                Severity::Warning
            },
            table: f.table_schema.zip(f.table_name).map(|(s, n)| qualified(&s, &n)),
            code: f.code,
            detail: f.detail,
            fix: f.fix,
        })
        .collect();
    for foreign in conn.load::<ForeignRow>(Sql::new(FOREIGN_DEPENDENCIES)).await? {
        findings.push(Finding {
            severity: Severity::Error,
            table: None,
            code: "foreign_dependency".to_owned(),
            detail: format!(
                "{} uses {}, which is defined outside pg_catalog and threadline: it runs with the \
                 privileges of whoever writes or reads the audit trail",
                foreign.dependent, foreign.referenced
            ),
            fix: format!(
                "Drop {} with CASCADE as a superuser (which removes the reference), then put back what the \
                 reference did by installing this release's SQL into a new database, which resolves every \
                 name in pg_catalog.",
                foreign.referenced
            ),
        });
    }
    for weak in conn.load::<OwnerRow>(Sql::new(WEAK_OWNER)).await? {
        findings.push(Finding {
            severity: Severity::Warning,
            table: None,
            code: "schema_owner".to_owned(),
            detail: format!(
                "schema threadline (or a table or function in it) belongs to {}, which is not a superuser: it \
                 can give the audit tables triggers, rules or row-level security whose code runs as whoever \
                 reads, exports or prunes the trail",
                weak.owner
            ),
            fix: format!(
                "Read and prune the trail only as {} or a role with no more privileges, or install Threadline \
                 again as a superuser.",
                weak.owner
            ),
        });
    }
    if version >= 3 {
        findings.extend(partition_findings(conn).await?);
    }
    if version < SCHEMA_VERSION {
        findings.push(Finding {
            severity: Severity::Warning,
            table: None,
            code: "schema_outdated".to_owned(),
            detail: format!("threadline schema version {version} is installed; this release knows {SCHEMA_VERSION}"),
            fix: "Run the upgrade migration of this release (diesel migration run).".to_owned(),
        });
    }
    if options.require_actor && !install.require_actor {
        findings.push(Finding {
            severity: Severity::Error,
            table: None,
            code: "require_actor_off".to_owned(),
            detail: "strict mode is expected on, but threadline.require_actor is off: changes with no actor are \
                     recorded instead of refused"
                .to_owned(),
            fix: "SELECT threadline.require_actor(true);".to_owned(),
        });
    }
    findings.sort_by(|a, b| (a.severity, &a.table, &a.code).cmp(&(b.severity, &b.table, &b.code)));
    let tables = tables
        .into_iter()
        .map(|t| {
            let name = qualified(&t.table_schema, &t.table_name);
            let broken = findings
                .iter()
                .any(|f| f.severity == Severity::Error && f.table.as_deref() == Some(name.as_str()));
            let expected = options
                .expected_unaudited
                .iter()
                .any(|e| e.schema() == t.table_schema && e.name() == t.table_name);
            let coverage = match (t.audited, broken, expected) {
                (true, false, _) => Coverage::Covered,
                (false, _, true) => Coverage::ExpectedUncovered,
                _ => Coverage::Uncovered,
            };
            TableCoverage { table: name, coverage }
        })
        .collect();
    let report = HealthReport {
        schema_version: version,
        tables,
        findings,
    };
    telemetry::health_checked(&report, started);
    Ok(report)
}
