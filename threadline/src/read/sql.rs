//! A small SQL text builder whose values are always bound parameters.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, BigInt, Jsonb, Text, Timestamptz};
use serde_json::Value;

/// One bound value.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    BigInt(i64),
    Timestamp(DateTime<Utc>),
    Jsonb(Value),
    TextArray(Vec<String>),
}

/// The settings every statement of the library runs under, in a transaction (or
/// savepoint) of its own, followed by a plan's own: a `search_path` of PostgreSQL's own
/// schema alone, so that no function, operator or type that a role able to create objects
/// on the session's path (the owner of the database or of `public`) defined is ever
/// chosen in place of a built-in one, whoever runs the read.
macro_rules! pinned {
    ($($setting:literal),*) => {
        concat!("SET LOCAL search_path = pg_catalog, pg_temp" $(, "; SET LOCAL ", $setting)*)
    };
}

/// How a query is planned. Every query runs in a transaction of its own (a savepoint
/// inside the caller's) under settings that last until it ends, so they never reach the
/// caller's next query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Plan {
    /// As the planner likes.
    #[default]
    Free,
    /// In the order of an index, stopping after the page: no bitmap scan (it loses the
    /// order), no hash or merge join (they read every match) and no sort.
    Walk,
    /// Through nested loops of index look-ups, sorting only what they return.
    Lookups,
}

impl Plan {
    /// The settings a query of this plan runs under.
    pub(crate) fn settings(self) -> &'static str {
        match self {
            Plan::Free => pinned!(),
            Plan::Walk => pinned!(
                "enable_bitmapscan = off",
                "enable_hashjoin = off",
                "enable_mergejoin = off",
                "enable_sort = off",
                "jit = off"
            ),
            Plan::Lookups => pinned!(
                "enable_bitmapscan = off",
                "enable_hashjoin = off",
                "enable_mergejoin = off",
                "jit = off"
            ),
        }
    }
}

/// SQL text with `$n` placeholders and the values bound to them, in order, and the plan
/// it needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
    plan: Plan,
    writes: bool,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            binds: Vec::new(),
            plan: Plan::Free,
            writes: false,
        }
    }

    /// The same statement, marked as one that changes data: its transaction is committed
    /// (its savepoint released) instead of rolled back.
    pub(crate) fn writing(mut self) -> Self {
        self.writes = true;
        self
    }

    /// Whether the statement changes data.
    pub(crate) fn writes(&self) -> bool {
        self.writes
    }

    /// The same query, planned as `plan` says.
    pub(crate) fn planned(mut self, plan: Plan) -> Self {
        self.plan = plan;
        self
    }

    /// How the query is planned.
    pub(crate) fn plan(&self) -> Plan {
        self.plan
    }

    /// Appends SQL text; never a value.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    /// Appends a keyset page, newest first: the rows strictly before `after` by
    /// `(time, id)` when given, ordered `time DESC, id DESC`, at most `limit`.
    pub(crate) fn newest_first(
        &mut self,
        time: &str,
        id: &str,
        after: Option<(DateTime<Utc>, i64)>,
        limit: usize,
    ) -> &mut Self {
        if let Some((at, last)) = after {
            self.push(&format!(" AND ({time}, {id}) < ("))
                .bind(Bind::Timestamp(at))
                .push(", ")
                .bind(Bind::BigInt(last))
                .push(")");
        }
        self.push(&format!(" ORDER BY {time} DESC, {id} DESC LIMIT {limit}"))
    }

    /// Whether no text was pushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The text.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The same query behind `prefix`, such as `EXPLAIN `, as a read: rolled back.
    #[cfg(all(test, feature = "testing"))]
    pub(crate) fn prefixed(&self, prefix: &str) -> Sql {
        Sql {
            writes: false,
            ..self.wrapped(prefix, "")
        }
    }

    /// The same query between `prefix` and `suffix`, such as a subquery of a count.
    pub(crate) fn wrapped(&self, prefix: &str, suffix: &str) -> Sql {
        Sql {
            text: format!("{prefix}{}{suffix}", self.text),
            binds: self.binds.clone(),
            plan: self.plan,
            writes: self.writes,
        }
    }

    /// The query diesel runs.
    pub(crate) fn into_query(self) -> BoxedSqlQuery<'static, Pg, SqlQuery> {
        let mut query = diesel::sql_query(self.text).into_boxed::<Pg>();
        for bind in self.binds {
            query = match bind {
                Bind::Text(v) => query.bind::<Text, _>(v),
                Bind::BigInt(v) => query.bind::<BigInt, _>(v),
                Bind::Timestamp(v) => query.bind::<Timestamptz, _>(v),
                Bind::Jsonb(v) => query.bind::<Jsonb, _>(v),
                Bind::TextArray(v) => query.bind::<Array<Text>, _>(v),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::{Bind, Sql};

    #[test]
    fn placeholders_are_numbered_in_bind_order() {
        let mut sql = Sql::new("SELECT 1 WHERE a = ");
        sql.bind(Bind::Text("x".into())).push(" AND b = ").bind(Bind::BigInt(2));
        assert_eq!(sql.text(), "SELECT 1 WHERE a = $1 AND b = $2");
    }
}
