//! What a timeline, an export or a bundle selects.

use std::fmt;

use chrono::{DateTime, Utc};

use super::model::Op;
use super::sql::{Bind, Sql};
use crate::{ActorRef, ActorType, Error};

/// An audited table, by schema and name. Written `schema.table`, or `table` for a table
/// in `public`.
///
/// ```
/// use threadline::read::TableName;
///
/// let posts: TableName = "posts".parse()?;
/// assert_eq!(posts.to_string(), "public.posts");
/// assert_eq!("app.users".parse::<TableName>()?.schema(), "app");
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: String,
    name: String,
}

impl TableName {
    /// A table in `schema`. Each part is 1 to 63 bytes without control characters.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Result<Self, Error> {
        let (schema, name) = (schema.into(), name.into());
        for part in [&schema, &name] {
            if part.is_empty() || part.len() > 63 || part.chars().any(char::is_control) {
                return Err(Error::invalid(
                    "table",
                    format!("{part:?} must be 1 to 63 bytes without control characters"),
                ));
            }
        }
        Ok(TableName { schema, name })
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl TableName {
    /// The table as a SQL string literal of its quoted name, for `regclass` arguments in
    /// suggested fixes: `'public."Users"'`, whatever the name holds.
    ///
    /// ```
    /// use threadline::read::TableName;
    ///
    /// assert_eq!(TableName::new("public", "posts")?.sql_literal(), r#"'"public"."posts"'"#);
    /// assert_eq!(TableName::new("public", "x'); --")?.sql_literal(), r#"'"public"."x''); --"'"#);
    /// # Ok::<(), threadline::Error>(())
    /// ```
    pub fn sql_literal(&self) -> String {
        let ident = |part: &str| format!("\"{}\"", part.replace('"', "\"\""));
        format!(
            "'{}'",
            format!("{}.{}", ident(&self.schema), ident(&self.name)).replace('\'', "''")
        )
    }
}

impl std::str::FromStr for TableName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s.split_once('.') {
            Some((schema, name)) => TableName::new(schema, name),
            None => TableName::new("public", s),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// The actor a filter matches: one actor, or every actor of a type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActorFilter {
    /// Exactly this actor.
    Is(ActorRef),
    /// Any actor of this type.
    OfType(ActorType),
}

impl ActorFilter {
    /// Parses `type:id` (one actor) or `type` (every actor of the type), such as
    /// `user:42`, `admin` or `anonymous`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let (kind, id) = text.split_once(':').map_or((text, None), |(k, i)| (k, Some(i)));
        let actor_type = ActorType::parse(kind)?;
        match id {
            None => Ok(ActorFilter::OfType(actor_type)),
            Some(id) => Ok(ActorFilter::Is(ActorRef::new(actor_type, id)?)),
        }
    }

    /// `t.actor` predicates matching the actor index.
    pub(crate) fn push_sql(&self, sql: &mut Sql, column: &str) {
        let (actor_type, id) = match self {
            ActorFilter::Is(actor) => (actor.actor_type(), actor.id()),
            ActorFilter::OfType(actor_type) => (*actor_type, None),
        };
        sql.push(&format!(" AND ({column} ->> 'type') = "))
            .bind(Bind::Text(actor_type.as_str().into()));
        if let Some(id) = id {
            sql.push(&format!(" AND ({column} ->> 'id') = "))
                .bind(Bind::Text(id.into()));
        }
    }
}

impl fmt::Display for ActorFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActorFilter::Is(actor) => match actor.id() {
                Some(id) => write!(f, "{}:{id}", actor.actor_type()),
                None => write!(f, "{}", actor.actor_type()),
            },
            ActorFilter::OfType(actor_type) => write!(f, "{actor_type}"),
        }
    }
}

impl From<ActorRef> for ActorFilter {
    fn from(actor: ActorRef) -> Self {
        ActorFilter::Is(actor)
    }
}

impl From<ActorType> for ActorFilter {
    fn from(actor_type: ActorType) -> Self {
        ActorFilter::OfType(actor_type)
    }
}

/// Which changes a timeline or an export selects. Every condition is optional and they
/// all must hold; time bounds are inclusive at both ends.
///
/// ```
/// use threadline::read::Filter;
/// use threadline::ActorRef;
///
/// let filter = Filter::new()
///     .table("public.posts")?
///     .actor(ActorRef::user("42")?)
///     .correlation_id("checkout-91")?;
///
/// // The same from text pairs (query strings, CLI flags); a typo is an error.
/// let parsed = Filter::from_pairs([("table", "posts"), ("actor", "user:42"), ("correlation_id", "checkout-91")])?;
/// assert_eq!(parsed, filter);
/// assert!(Filter::from_pairs([("tabel", "posts")]).is_err());
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    table: Option<TableName>,
    actor: Option<ActorFilter>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    action: Option<String>,
    op: Option<Op>,
    tenant_id: Option<String>,
}

/// The keys [`Filter::from_pairs`] accepts.
const FILTER_KEYS: [&str; 9] = [
    "table",
    "actor",
    "from",
    "to",
    "request_id",
    "correlation_id",
    "action",
    "op",
    "tenant_id",
];

/// Checks a filter's text value as the context checks what it stores, after trimming.
fn text_value(field: &'static str, value: impl Into<String>) -> Result<String, Error> {
    crate::context::label(field, value.into().trim())
}

impl Filter {
    /// A filter that selects every change.
    pub fn new() -> Self {
        Filter::default()
    }

    /// Only changes of this table (`schema.table`, or `table` in `public`).
    pub fn table(mut self, table: impl AsRef<str>) -> Result<Self, Error> {
        self.table = Some(table.as_ref().parse()?);
        Ok(self)
    }

    /// Only changes made by this actor, or by any actor of a type.
    pub fn actor(mut self, actor: impl Into<ActorFilter>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Only changes captured at or after `from`.
    pub fn from(mut self, from: DateTime<Utc>) -> Result<Self, Error> {
        self.from = Some(from);
        self.check_window()?;
        Ok(self)
    }

    /// Only changes captured at or before `to`.
    pub fn to(mut self, to: DateTime<Utc>) -> Result<Self, Error> {
        self.to = Some(to);
        self.check_window()?;
        Ok(self)
    }

    /// Only changes of transactions with this request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.request_id = Some(text_value("request_id", id)?);
        Ok(self)
    }

    /// Only changes of transactions with this correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.correlation_id = Some(text_value("correlation_id", id)?);
        Ok(self)
    }

    /// Only changes of transactions that performed the action of this name.
    pub fn action(mut self, name: impl Into<String>) -> Result<Self, Error> {
        self.action = Some(text_value("action", name)?);
        Ok(self)
    }

    /// Only changes of this kind.
    pub fn op(mut self, op: Op) -> Self {
        self.op = Some(op);
        self
    }

    /// Only changes of transactions of this tenant.
    pub fn tenant_id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        self.tenant_id = Some(text_value("tenant_id", id)?);
        Ok(self)
    }

    /// Builds a filter from `(key, value)` text pairs, as a query string or command-line
    /// flags carry them: `from` and `to` are RFC 3339 times; `actor` is `type:id` or `type`.
    /// An unknown or repeated key is an error, and an unknown one names the keys:
    ///
    /// ```
    /// use threadline::read::Filter;
    ///
    /// let err = Filter::from_pairs([("tabel", "posts")]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid filter: unknown key \"tabel\" (did you mean \"table\"?); the keys are \
    ///      table, actor, from, to, request_id, correlation_id, action, op, tenant_id"
    /// );
    /// ```
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error> {
        let mut filter = Filter::new();
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in pairs {
            let (key, value) = (key.as_ref(), value.as_ref());
            if seen.iter().any(|k| k == key) {
                return Err(Error::invalid("filter", format!("{key:?} is given twice")));
            }
            seen.push(key.to_owned());
            filter = match key {
                "table" => filter.table(value)?,
                "actor" => filter.actor(ActorFilter::parse(value)?),
                "from" => filter.from(parse_time("from", value)?)?,
                "to" => filter.to(parse_time("to", value)?)?,
                "request_id" => filter.request_id(value)?,
                "correlation_id" => filter.correlation_id(value)?,
                "action" => filter.action(value)?,
                "op" => filter.op(Op::parse(value)?),
                "tenant_id" => filter.tenant_id(value)?,
                unknown => {
                    let hint = suggest(unknown, &FILTER_KEYS)
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                    return Err(Error::invalid(
                        "filter",
                        format!("unknown key {unknown:?}{hint}; the keys are {}", FILTER_KEYS.join(", ")),
                    ));
                }
            };
        }
        Ok(filter)
    }

    fn check_window(&self) -> Result<(), Error> {
        match (self.from, self.to) {
            (Some(from), Some(to)) if from > to => Err(Error::invalid(
                "time window",
                format!("from ({from}) is after to ({to})"),
            )),
            _ => Ok(()),
        }
    }

    /// The filter as `(key, value)` pairs, keys in the order [`Filter::from_pairs`] names
    /// them: what it reads back into the same filter.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        [
            ("table", self.table.as_ref().map(ToString::to_string)),
            ("actor", self.actor.as_ref().map(ToString::to_string)),
            ("from", self.from.as_ref().map(time)),
            ("to", self.to.as_ref().map(time)),
            ("request_id", self.request_id.clone()),
            ("correlation_id", self.correlation_id.clone()),
            ("action", self.action.clone()),
            ("op", self.op.map(|o| o.to_string())),
            ("tenant_id", self.tenant_id.clone()),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect()
    }

    /// The canonical query string: `table=public.posts&actor=user%3A42`, keys in the order
    /// [`Filter::from_pairs`] names them, values percent-encoded. Equal filters give equal
    /// strings.
    ///
    /// ```
    /// use threadline::read::Filter;
    ///
    /// let filter = Filter::new().correlation_id("checkout 91")?.table("posts")?;
    /// assert_eq!(filter.to_query_string(), "table=public.posts&correlation_id=checkout%2091");
    /// assert_eq!(Filter::from_query_string(&filter.to_query_string())?, filter);
    /// # Ok::<(), threadline::Error>(())
    /// ```
    pub fn to_query_string(&self) -> String {
        self.pairs()
            .iter()
            .map(|(key, value)| format!("{key}={}", percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Reads a query string of the keys [`Filter::from_pairs`] takes, checked as it checks them; `+`
    /// is a space, `%XX` a byte of UTF-8.
    pub fn from_query_string(query: &str) -> Result<Self, Error> {
        Filter::from_pairs(query_pairs(query)?)
    }

    /// A canonical description, for cursor fingerprints.
    pub(crate) fn describe(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            opt(self.table.as_ref().map(ToString::to_string)),
            opt(self.actor.as_ref().map(ToString::to_string)),
            opt(self.from.map(|t| t.timestamp_micros().to_string())),
            opt(self.to.map(|t| t.timestamp_micros().to_string())),
            opt(self.request_id.clone()),
            opt(self.correlation_id.clone()),
            opt(self.action.clone()),
            opt(self.op.map(|o| o.to_string())),
            opt(self.tenant_id.clone()),
        ]
        .join("\u{1f}")
    }

    /// The filter's predicates on the change `c` itself: its table, time and op.
    pub(crate) fn push_change_sql(&self, sql: &mut Sql) {
        if let Some(table) = &self.table {
            sql.push(" AND c.table_schema = ")
                .bind(Bind::Text(table.schema.clone()))
                .push(" AND c.table_name = ")
                .bind(Bind::Text(table.name.clone()));
        }
        if let Some(from) = self.from {
            sql.push(" AND c.captured_at >= ").bind(Bind::Timestamp(from));
        }
        if let Some(to) = self.to {
            sql.push(" AND c.captured_at <= ").bind(Bind::Timestamp(to));
        }
        if let Some(op) = self.op {
            sql.push(" AND c.op = ").bind(Bind::Text(op.as_str().into()));
        }
    }

    /// The filter's predicates on the change's transaction `t` and action `a`.
    pub(crate) fn push_transaction_sql(&self, sql: &mut Sql) {
        if let Some(actor) = &self.actor {
            actor.push_sql(sql, "t.actor");
        }
        for (column, value) in [
            ("t.request_id", &self.request_id),
            ("t.correlation_id", &self.correlation_id),
            ("a.name", &self.action),
            ("t.tenant_id", &self.tenant_id),
        ] {
            if let Some(value) = value {
                sql.push(&format!(" AND {column} = ")).bind(Bind::Text(value.clone()));
            }
        }
    }
}

/// The `(key, value)` pairs of a query string (or a form body), decoded: `+` is a space,
/// `%XX` a byte of UTF-8. A malformed escape or bytes that are not UTF-8 are an error.
///
/// ```
/// let pairs = threadline::read::query_pairs("table=posts&correlation_id=checkout%2091&op=")?;
/// assert_eq!(pairs[1], ("correlation_id".to_string(), "checkout 91".to_string()));
/// assert_eq!(pairs[2], ("op".to_string(), String::new()));
/// # Ok::<(), threadline::Error>(())
/// ```
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Error> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986's unreserved characters: safe in a query
/// value and in a path segment.
///
/// ```
/// assert_eq!(threadline::read::percent_encode("a b&c/d"), "a%20b%26c%2Fd");
/// ```
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` and `+`; refuses a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Result<String, Error> {
    let bad = || Error::invalid("query string", format!("{text:?} has a malformed percent escape"));
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'%' => {
                let hex = [rest.next().ok_or_else(bad)?, rest.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            }
            b'+' => bytes.push(b' '),
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).map_err(|_| Error::invalid("query string", format!("{text:?} is not UTF-8")))
}

/// Parses an RFC 3339 time such as `2026-11-27T09:30:00Z`.
pub fn parse_time(field: &'static str, text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Error::invalid(
                field,
                format!("{text:?} is not an RFC 3339 time like 2026-11-27T09:30:00Z ({e})"),
            )
        })
}

/// The candidate closest to `word`, when it is a plausible typo of it: for "did you mean"
/// hints. `threadline_syntax::suggest` is the same rule for the macros (which cannot depend
/// on this crate); the CLI's tests hold the two to one table of cases.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb)).min(row[j] + 1).min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_refused_with_a_suggestion() {
        let err = Filter::from_pairs([("corelation_id", "x")]).unwrap_err().to_string();
        assert!(err.contains("did you mean \"correlation_id\""), "{err}");
        assert!(Filter::from_pairs([("op", "upsert")]).is_err());
        assert!(Filter::from_pairs([("actor", "wizard:1")]).is_err());
        assert!(Filter::from_pairs([("table", "a"), ("table", "b")]).is_err());
        assert!(Filter::from_pairs([("from", "yesterday")]).is_err());
        let window = Filter::from_pairs([("from", "2026-02-01T00:00:00Z"), ("to", "2026-01-01T00:00:00Z")]);
        assert!(window.unwrap_err().to_string().contains("after"));
    }

    #[test]
    fn filters_of_different_selections_describe_differently() {
        let a = Filter::new().request_id("a").unwrap();
        let b = Filter::new().correlation_id("a").unwrap();
        assert_ne!(a.describe(), b.describe());
        assert_eq!(a.describe(), Filter::new().request_id(" a ").unwrap().describe());
    }
}
