//! Typed history for models that `#[derive(Audited)]`.
//!
//! The derive implements [`Audited`] for a Diesel model and generates a snapshot struct
//! (`PostSnapshot` for `Post`) whose fields are [`Field`]s: each says whether the captured
//! row held a value, or the policy masked or excluded it. Which columns were masked or
//! excluded is read from what each change recorded when it was captured
//! ([`Change::masked_fields`], [`Change::excluded_fields`]), never from the policy the model
//! declares now, so a policy changed since never turns a stored placeholder into a value. It
//! also adds `Post::history`,
//! `Post::history_page` and `Post::as_of` (async) and their `_blocking` twins, which call the
//! functions of this module and read the whole trail; under a host scope (one tenant's
//! support staff, say), read through a scoped [`Reader`]: [`Reader::typed_history_page`],
//! [`Reader::typed_as_of`].

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::read::{AsOf, Change, Cursor, DEFAULT_HISTORY_LIMIT, Op, Page, Reader, RowKey, TableName};
use crate::{ActorRef, Error};

/// A model whose table Threadline audits. Implemented by `#[derive(Audited)]`, which also
/// generates the model's snapshot struct and its typed history accessors.
///
/// ```no_run
/// use chrono::{DateTime, Utc};
/// use diesel::prelude::*;
/// use threadline::Audited;
/// use threadline::model::Field;
///
/// diesel::table! {
///     users (id) { id -> BigInt, email -> Text, password_hash -> Text, updated_at -> Timestamptz }
/// }
///
/// #[derive(Queryable, Selectable, Identifiable, Audited)]
/// #[diesel(table_name = users)]
/// #[audited(mask(email), exclude(password_hash), ignore_changes(updated_at))]
/// pub struct User { pub id: i64, pub email: String, pub updated_at: DateTime<Utc> }
///
/// # async fn demo(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
/// assert_eq!(User::TABLE, "users");
/// for version in User::history(conn, 42).await?.entries {
///     if let Some(row) = version.row {
///         assert_eq!(row.email, Field::Masked);
///         println!("{} {:?} by {:?}", version.op, row.updated_at.value(), version.actor);
///     }
/// }
/// # Ok(()) }
/// ```
pub trait Audited {
    /// The table's schema.
    const SCHEMA: &'static str;
    /// The table's name.
    const TABLE: &'static str;
    /// The capture policy, as `threadline.table_policy` reports it once deployed.
    const POLICY_JSON: &'static str;
    /// The `up.sql` of the migration that deploys the policy.
    const MIGRATION_UP: &'static str;
    /// The key of one row: the key field's type, or a tuple of them.
    type Key;
    /// The row as captured, field by field.
    type Snapshot: Snapshot;

    /// The key as the reads take it.
    fn row_key(key: &Self::Key) -> RowKey;

    /// The audited table.
    fn table() -> TableName {
        TableName::new(Self::SCHEMA, Self::TABLE).expect("the derive checked the table name")
    }
}

/// A row decoded from its captured image. Implemented by the generated snapshot structs.
pub trait Snapshot: Sized {
    /// Decodes a captured row image, with the redaction its change recorded.
    fn decode(row: &CapturedRow<'_>) -> Result<Self, Error>;
}

/// A captured row image and the redaction recorded with it: what [`Snapshot::decode`] reads.
///
/// `masked` and `excluded` are the columns the policy in force at capture time masked and
/// excluded ([`Change::masked_fields`] and [`Change::excluded_fields`]), so a row decodes the
/// same whatever the policy is now.
///
/// ```
/// use serde_json::{Map, Value, json};
/// use threadline::model::{CapturedRow, Field, field};
///
/// let Value::Object(data) = json!({"id": 1, "email": "[REDACTED]"}) else { unreachable!() };
/// let masked = vec!["email".to_owned()];
/// let excluded = vec!["password_hash".to_owned()];
/// let row = CapturedRow { data: &data, masked: &masked, excluded: &excluded };
/// assert_eq!(field::<i64>(&row, "id").unwrap(), Field::Value(1));
/// assert_eq!(field::<String>(&row, "email").unwrap(), Field::Masked);
/// assert_eq!(field::<String>(&row, "password_hash").unwrap(), Field::Excluded);
/// assert_eq!(field::<String>(&row, "nickname").unwrap(), Field::Absent);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapturedRow<'a> {
    /// The row image (`audit_changes.data`): column to stored value, masked columns holding
    /// the placeholder.
    pub data: &'a Map<String, Value>,
    /// The columns the policy masked when the row was captured.
    pub masked: &'a [String],
    /// The columns the policy excluded when the row was captured.
    pub excluded: &'a [String],
}

/// A field of a captured row.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field<T> {
    /// The value the row held.
    Value(T),
    /// The policy in force when the change was captured masked the column: it held a value
    /// that was not stored (the image holds the placeholder).
    Masked,
    /// The policy in force when the change was captured excluded the column: nothing of it
    /// was stored.
    Excluded,
    /// The captured row has no such column (it was added to the table later).
    Absent,
}

impl<T> Field<T> {
    /// The value, when the row held one that was stored.
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(value) => Some(value),
            _ => None,
        }
    }

    /// The value, when the row held one that was stored.
    pub fn into_value(self) -> Option<T> {
        match self {
            Field::Value(value) => Some(value),
            _ => None,
        }
    }
}

/// A value serializes as itself; the other cases as `{"masked": true}`, `{"excluded": true}`
/// or `{"absent": true}`, never as a value they are not.
impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let tag = match self {
            Field::Value(value) => return value.serialize(serializer),
            Field::Masked => "masked",
            Field::Excluded => "excluded",
            Field::Absent => "absent",
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(tag, &true)?;
        map.end()
    }
}

/// Decodes one field of a captured row, as the generated snapshot structs do: `Masked` when
/// the change recorded the column as masked, `Excluded` when it recorded it as excluded,
/// `Absent` when the image lacks it, else its stored value.
pub fn field<T: DeserializeOwned>(row: &CapturedRow<'_>, column: &str) -> Result<Field<T>, Error> {
    if row.masked.iter().any(|c| c == column) {
        return Ok(Field::Masked);
    }
    if row.excluded.iter().any(|c| c == column) {
        return Ok(Field::Excluded);
    }
    let Some(value) = row.data.get(column) else {
        return Ok(Field::Absent);
    };
    T::deserialize(value).map(Field::Value).map_err(|e| Error::Decode {
        column: column.to_owned(),
        reason: e.to_string(),
    })
}

/// One version of a row: a captured change with the row it left.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Version<S> {
    /// `audit_changes.id`.
    pub change_id: i64,
    /// `audit_transactions.id`.
    pub transaction_id: i64,
    /// What happened.
    pub op: Op,
    /// When it was captured.
    #[serde(serialize_with = "crate::read::micros")]
    pub captured_at: DateTime<Utc>,
    /// Who acted.
    pub actor: Option<ActorRef>,
    /// The name of the action, when one was recorded.
    pub action: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The correlation id.
    pub correlation_id: Option<String>,
    /// The changed columns (updates), sorted.
    pub changed_fields: Vec<String>,
    /// Prior values of the changed columns, redacted as captured: a column the policy masked
    /// then holds the placeholder (a string such as `"[REDACTED]"`), not its value. `row`
    /// tells masked columns apart; this map does not.
    pub changed_from: Option<Map<String, Value>>,
    /// The row after the change (before it, for a delete); `None` for a truncate.
    pub row: Option<S>,
}

impl<S: Snapshot> Version<S> {
    fn from_change(change: Change) -> Result<Self, Error> {
        let row = match change.data.as_ref() {
            Some(Value::Object(data)) if change.op != Op::Truncate => Some(S::decode(&CapturedRow {
                data,
                masked: &change.masked_fields,
                excluded: &change.excluded_fields,
            })?),
            _ => None,
        };
        Ok(Version {
            change_id: change.id,
            transaction_id: change.transaction_id,
            op: change.op,
            captured_at: change.captured_at,
            actor: change.actor,
            action: change.action,
            request_id: change.request_id,
            correlation_id: change.correlation_id,
            changed_fields: change.changed_fields,
            changed_from: change.changed_from,
            row,
        })
    }
}

/// A row as it was at a time, decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RowAsOf<S> {
    /// The row existed, in the state this version left it.
    Found(Box<Version<S>>),
    /// The row had been deleted (or its table truncated).
    Deleted {
        /// When the deletion was captured.
        at: DateTime<Utc>,
    },
    /// Nothing was captured for the row at or before that time.
    BeforeHorizon,
}

fn decode_page<S: Snapshot>(page: Page<Change>) -> Result<Page<Version<S>>, Error> {
    Ok(Page {
        entries: page
            .entries
            .into_iter()
            .map(Version::from_change)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    })
}

fn decode_as_of<S: Snapshot>(state: AsOf) -> Result<RowAsOf<S>, Error> {
    Ok(match state {
        AsOf::Found(change) => RowAsOf::Found(Box::new(Version::from_change(*change)?)),
        AsOf::Deleted { at } => RowAsOf::Deleted { at },
        AsOf::BeforeHorizon => RowAsOf::BeforeHorizon,
    })
}

impl Reader {
    /// One page of the versions of `M`'s row `key`, newest first, after `cursor`, under
    /// this reader's scope: what `Post::history_page` reads, for a scoped reader.
    /// [`Error::NotFound`] when nothing was captured for it (or the scope hides it).
    ///
    /// ```no_run
    /// # use threadline::{Audited, Reader, read::Restriction};
    /// # async fn demo<M: Audited<Key = i64>>(conn: &mut diesel_async::AsyncPgConnection) -> Result<(), threadline::Error> {
    /// let acme = Reader::scoped(|_| Restriction::new().tenant("acme"));
    /// let page = acme.typed_history_page::<M>(conn, &42, None, 50).await?;
    /// # Ok(()) }
    /// ```
    pub async fn typed_history_page<M: Audited>(
        &self,
        conn: &mut AsyncPgConnection,
        key: &M::Key,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Version<M::Snapshot>>, Error> {
        let page = self
            .row_history_page(conn, &M::table(), &M::row_key(key), cursor, page_size)
            .await?;
        decode_page(page)
    }

    /// `M`'s row `key` as it was at `at`, under this reader's scope: what `Post::as_of`
    /// reads, for a scoped reader.
    pub async fn typed_as_of<M: Audited>(
        &self,
        conn: &mut AsyncPgConnection,
        key: &M::Key,
        at: DateTime<Utc>,
    ) -> Result<RowAsOf<M::Snapshot>, Error> {
        decode_as_of(self.as_of(conn, &M::table(), &M::row_key(key), at).await?)
    }
}

impl Reader {
    /// [`Reader::typed_history_page`] on a blocking connection.
    pub fn typed_history_page_blocking<M: Audited>(
        &self,
        conn: &mut PgConnection,
        key: &M::Key,
        cursor: Option<&Cursor>,
        page_size: usize,
    ) -> Result<Page<Version<M::Snapshot>>, Error> {
        decode_page(self.row_history_page_blocking(conn, &M::table(), &M::row_key(key), cursor, page_size)?)
    }

    /// [`Reader::typed_as_of`] on a blocking connection.
    pub fn typed_as_of_blocking<M: Audited>(
        &self,
        conn: &mut PgConnection,
        key: &M::Key,
        at: DateTime<Utc>,
    ) -> Result<RowAsOf<M::Snapshot>, Error> {
        decode_as_of(self.as_of_blocking(conn, &M::table(), &M::row_key(key), at)?)
    }
}

/// A row's newest versions (up to [`DEFAULT_HISTORY_LIMIT`]), newest first, unscoped.
pub async fn history<M: Audited>(
    conn: &mut AsyncPgConnection,
    key: &M::Key,
) -> Result<Page<Version<M::Snapshot>>, Error> {
    history_page::<M>(conn, key, None, DEFAULT_HISTORY_LIMIT).await
}

/// One page of a row's versions, newest first, after `cursor`, unscoped
/// ([`Reader::typed_history_page`] reads under a scope).
pub async fn history_page<M: Audited>(
    conn: &mut AsyncPgConnection,
    key: &M::Key,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Page<Version<M::Snapshot>>, Error> {
    Reader::new()
        .typed_history_page::<M>(conn, key, cursor, page_size)
        .await
}

/// The row as it was at `at`, unscoped ([`Reader::typed_as_of`] reads under a scope).
pub async fn as_of<M: Audited>(
    conn: &mut AsyncPgConnection,
    key: &M::Key,
    at: DateTime<Utc>,
) -> Result<RowAsOf<M::Snapshot>, Error> {
    Reader::new().typed_as_of::<M>(conn, key, at).await
}

/// [`history`] on a blocking connection.
pub fn history_blocking<M: Audited>(
    conn: &mut PgConnection,
    key: &M::Key,
) -> Result<Page<Version<M::Snapshot>>, Error> {
    history_page_blocking::<M>(conn, key, None, DEFAULT_HISTORY_LIMIT)
}

/// [`history_page`] on a blocking connection.
pub fn history_page_blocking<M: Audited>(
    conn: &mut PgConnection,
    key: &M::Key,
    cursor: Option<&Cursor>,
    page_size: usize,
) -> Result<Page<Version<M::Snapshot>>, Error> {
    Reader::new().typed_history_page_blocking::<M>(conn, key, cursor, page_size)
}

/// [`as_of`] on a blocking connection.
pub fn as_of_blocking<M: Audited>(
    conn: &mut PgConnection,
    key: &M::Key,
    at: DateTime<Utc>,
) -> Result<RowAsOf<M::Snapshot>, Error> {
    Reader::new().typed_as_of_blocking::<M>(conn, key, at)
}

/// A key field's value as the reads take it: text the key column's type parses.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a key of typed history",
    label = "key fields may be integers, strings or chrono dates and times",
    note = "Threadline renders keys as text and casts them to the column's type"
)]
pub trait KeyPart {
    /// The value as text.
    fn key_text(&self) -> String;
}

macro_rules! key_part_by_display {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            fn key_text(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

key_part_by_display!(
    i16,
    i32,
    i64,
    u16,
    u32,
    String,
    str,
    chrono::NaiveDate,
    chrono::NaiveDateTime
);

impl<T: KeyPart + ?Sized> KeyPart for &T {
    fn key_text(&self) -> String {
        (**self).key_text()
    }
}
