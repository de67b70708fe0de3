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

/// SQL text with `$n` placeholders and the values bound to them, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            binds: Vec::new(),
        }
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

    /// The text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The same query behind `prefix`, such as `EXPLAIN `.
    #[cfg(all(test, feature = "testing"))]
    pub(crate) fn prefixed(&self, prefix: &str) -> Sql {
        self.wrapped(prefix, "")
    }

    /// The same query between `prefix` and `suffix`, such as a subquery of a count.
    pub(crate) fn wrapped(&self, prefix: &str, suffix: &str) -> Sql {
        Sql {
            text: format!("{prefix}{}{suffix}", self.text),
            binds: self.binds.clone(),
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
