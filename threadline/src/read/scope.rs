//! The host's scope seam: predicates added to every read.

use std::fmt;
use std::sync::Arc;

use super::filter::{ActorFilter, TableName};
use super::sql::{Bind, Sql};
use crate::Error;

/// The read a restriction is asked for, so a host can scope each one differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Surface {
    /// [`super::Reader::timeline_page`] and [`super::Reader::timeline`].
    Timeline,
    /// Row history.
    RowHistory,
    /// A row as of a time.
    AsOf,
    /// An incident bundle.
    Incident,
    /// An actor's transactions.
    ActorHistory,
    /// A correlation bundle.
    Correlation,
    /// An export.
    Export,
}

/// What a scoped read may see: every condition added must hold. Rows outside it are
/// reported as not found, never as forbidden, so a scope does not reveal what exists
/// beyond it.
///
/// ```
/// use threadline::read::Restriction;
///
/// let support_for_acme = Restriction::new().tenant("acme")?.table("public.posts")?;
/// # Ok::<(), threadline::Error>(())
/// ```
///
/// A scoped reader fails closed: a restriction with no condition refuses the read, unless
/// the scope function says so on purpose with [`Restriction::unrestricted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restriction {
    tenants: Option<Vec<String>>,
    tables: Option<Vec<TableName>>,
    actor: Option<ActorFilter>,
    unrestricted: bool,
}

impl Restriction {
    /// No condition yet: add at least one, or a scoped read is refused.
    pub fn new() -> Self {
        Restriction::default()
    }

    /// Every row, on purpose: for a surface the host does not scope, such as an
    /// administrator's reads.
    pub fn unrestricted() -> Self {
        Restriction {
            unrestricted: true,
            ..Restriction::default()
        }
    }

    /// Whether every row passes: [`Restriction::unrestricted`] with no condition added.
    ///
    /// ```
    /// use threadline::read::Restriction;
    ///
    /// assert!(Restriction::unrestricted().is_unrestricted());
    /// assert!(!Restriction::new().tenant("acme")?.is_unrestricted());
    /// # Ok::<(), threadline::Error>(())
    /// ```
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted && self.tenants.is_none() && self.tables.is_none() && self.actor.is_none()
    }

    /// Whether changes of `table` may pass: no table condition, or `table` is one of its
    /// tables (the other conditions still apply to each change).
    ///
    /// ```
    /// use threadline::read::Restriction;
    ///
    /// let comments = Restriction::new().table("public.comments")?;
    /// assert!(comments.allows_table(&"public.comments".parse()?));
    /// assert!(!comments.allows_table(&"public.posts".parse()?));
    /// # Ok::<(), threadline::Error>(())
    /// ```
    pub fn allows_table(&self, table: &TableName) -> bool {
        self.tables.as_ref().is_none_or(|tables| tables.contains(table))
    }

    /// Whether the restriction says anything: a condition, or [`Restriction::unrestricted`].
    fn is_stated(&self) -> bool {
        self.unrestricted || self.tenants.is_some() || self.tables.is_some() || self.actor.is_some()
    }

    /// Only transactions of this tenant (call again to allow more tenants).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Result<Self, Error> {
        let tenant = crate::context::label("scope tenant", tenant)?;
        self.tenants.get_or_insert_with(Vec::new).push(tenant);
        Ok(self)
    }

    /// Only changes of this table (call again to allow more tables).
    pub fn table(mut self, table: impl AsRef<str>) -> Result<Self, Error> {
        let table = table.as_ref().parse()?;
        self.tables.get_or_insert_with(Vec::new).push(table);
        Ok(self)
    }

    /// Only transactions of this actor, or of any actor of a type.
    pub fn actor(mut self, actor: impl Into<ActorFilter>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Predicates on the tenant and actor of `alias`, a transaction or an action.
    pub(crate) fn push_party_sql(&self, sql: &mut Sql, alias: &str) {
        if let Some(tenants) = &self.tenants {
            sql.push(&format!(" AND {alias}.tenant_id = ANY ("))
                .bind(Bind::TextArray(tenants.clone()))
                .push(")");
        }
        if let Some(actor) = &self.actor {
            actor.push_sql(sql, &format!("{alias}.actor"));
        }
    }

    /// Predicates on the change `change` (an alias), without those of its transaction.
    pub(crate) fn push_table_sql(&self, sql: &mut Sql, change: &str) {
        if let Some(tables) = &self.tables {
            sql.push(&format!(
                " AND ({change}.table_schema, {change}.table_name) IN (SELECT * FROM unnest("
            ))
            .bind(Bind::TextArray(tables.iter().map(|t| t.schema().to_owned()).collect()))
            .push("::text[], ")
            .bind(Bind::TextArray(tables.iter().map(|t| t.name().to_owned()).collect()))
            .push("::text[]))");
        }
    }

    /// Predicates on a transaction `t`: its tenant and actor and, when tables are limited,
    /// that it changed one of them.
    pub(crate) fn push_transaction_sql(&self, sql: &mut Sql) {
        self.push_party_sql(sql, "t");
        if self.tables.is_some() {
            sql.push(" AND EXISTS (SELECT 1 FROM threadline.audit_changes c WHERE c.transaction_id = t.id");
            self.push_table_sql(sql, "c");
            sql.push(")");
        }
    }

    /// Whether the restriction limits tables.
    pub(crate) fn limits_tables(&self) -> bool {
        self.tables.is_some()
    }
}

/// The host's scope function: for each read, the restriction it must run under, or an
/// error that refuses the read.
pub(crate) type ScopeFn = Arc<dyn Fn(Surface) -> Result<Restriction, Error> + Send + Sync>;

/// Holds the scope function for [`super::Reader`].
#[derive(Clone, Default)]
pub(crate) struct Scope(pub(crate) Option<ScopeFn>);

impl Scope {
    /// The restriction for `surface`; none for an unscoped reader. A scope function that
    /// states no condition refuses the read: a forgotten surface never reads unscoped.
    pub(crate) fn restriction(&self, surface: Surface) -> Result<Restriction, Error> {
        let Some(scope) = &self.0 else {
            return Ok(Restriction::new());
        };
        let restriction = scope(surface)?;
        if !restriction.is_stated() {
            return Err(Error::ScopeRefused(format!(
                "the scope set no condition for {surface:?} reads; return Restriction::unrestricted() to allow every row"
            )));
        }
        Ok(restriction)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Scoped" } else { "Unscoped" })
    }
}
