//! Saved views: an operator's named filters, stored as the filter's canonical query
//! string (`Filter::to_query_string`) in `threadline.saved_views`, unique per owner and
//! name. Saving under a name the owner already uses replaces that view's filter.
//!
//! ```no_run
//! # fn demo(conn: &mut diesel::PgConnection) -> Result<(), threadline::Error> {
//! use threadline::ActorRef;
//! use threadline::read::Filter;
//! use threadline::views;
//!
//! let me = ActorRef::admin("7")?;
//! views::save_blocking(conn, &me, "refunds today", &Filter::new().action("refund_issued")?)?;
//! for view in views::list_blocking(conn, &me)? {
//!     println!("{}: {}", view.name, view.query);
//! }
//! # Ok(()) }
//! ```

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Jsonb, Text, Timestamptz};
use diesel::{PgConnection, QueryableByName};
use diesel_async::AsyncPgConnection;
use serde::Serialize;
use serde_json::Value;

use crate::read::Filter;
use crate::read::exec::{Db, ready};
use crate::read::sql::{Bind, Sql};
use crate::{ActorRef, Error};

/// One saved view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SavedView {
    /// Its id.
    pub id: i64,
    /// The operator it belongs to.
    pub owner: ActorRef,
    /// Its name, unique for the owner.
    pub name: String,
    /// The filter's canonical query string.
    pub query: String,
    /// When it was first saved.
    #[serde(serialize_with = "crate::read::micros")]
    pub created_at: DateTime<Utc>,
    /// When it was last saved.
    #[serde(serialize_with = "crate::read::micros")]
    pub updated_at: DateTime<Utc>,
}

impl SavedView {
    /// The view's filter.
    pub fn filter(&self) -> Result<Filter, Error> {
        Filter::from_query_string(&self.query)
    }
}

#[derive(QueryableByName)]
struct ViewRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Jsonb)]
    owner: Value,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    query: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    updated_at: DateTime<Utc>,
}

impl TryFrom<ViewRow> for SavedView {
    type Error = Error;

    fn try_from(row: ViewRow) -> Result<Self, Error> {
        Ok(SavedView {
            id: row.id,
            owner: serde_json::from_value(row.owner).map_err(|e| Error::Decode {
                column: "saved_views.owner".into(),
                reason: e.to_string(),
            })?,
            name: row.name,
            query: row.query,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, owner, name, query, created_at, updated_at";

fn owner_json(owner: &ActorRef) -> Value {
    serde_json::to_value(owner).expect("an actor serializes")
}

/// The longest view name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;

/// Checks a view's name: 1 to [`MAX_NAME_BYTES`] bytes, no control characters, trimmed.
fn view_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "view name",
            format!("{name:?} must be 1 to {MAX_NAME_BYTES} bytes without control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Saves `filter` as `owner`'s view `name`, replacing the filter of a view of that name.
pub async fn save(
    conn: &mut AsyncPgConnection,
    owner: &ActorRef,
    name: &str,
    filter: &Filter,
) -> Result<SavedView, Error> {
    upsert(conn, owner, name, filter).await
}

/// [`save`] on a blocking connection.
pub fn save_blocking(
    conn: &mut PgConnection,
    owner: &ActorRef,
    name: &str,
    filter: &Filter,
) -> Result<SavedView, Error> {
    ready(upsert(conn, owner, name, filter))
}

async fn upsert<C: Db>(conn: &mut C, owner: &ActorRef, name: &str, filter: &Filter) -> Result<SavedView, Error> {
    let mut sql = Sql::new("INSERT INTO threadline.saved_views (owner, name, query) VALUES (");
    sql.bind(Bind::Jsonb(owner_json(owner)))
        .push(", ")
        .bind(Bind::Text(view_name(name)?))
        .push(", ")
        .bind(Bind::Text(filter.to_query_string()))
        .push(&format!(
            ") ON CONFLICT (owner, name) DO UPDATE SET query = excluded.query, updated_at = now() RETURNING {COLUMNS}"
        ));
    conn.load::<ViewRow>(sql.writing())
        .await?
        .pop()
        .expect("the saved row")
        .try_into()
}

/// The views of `owner`, by name.
pub async fn list(conn: &mut AsyncPgConnection, owner: &ActorRef) -> Result<Vec<SavedView>, Error> {
    select(conn, Some(owner)).await
}

/// [`list`] on a blocking connection.
pub fn list_blocking(conn: &mut PgConnection, owner: &ActorRef) -> Result<Vec<SavedView>, Error> {
    ready(select(conn, Some(owner)))
}

/// Every owner's views, by owner then name.
pub fn list_all_blocking(conn: &mut PgConnection) -> Result<Vec<SavedView>, Error> {
    ready(select(conn, None))
}

async fn select<C: Db>(conn: &mut C, owner: Option<&ActorRef>) -> Result<Vec<SavedView>, Error> {
    let mut sql = Sql::new(&format!("SELECT {COLUMNS} FROM threadline.saved_views"));
    if let Some(owner) = owner {
        sql.push(" WHERE owner = ").bind(Bind::Jsonb(owner_json(owner)));
    }
    sql.push(" ORDER BY owner ->> 'type', owner ->> 'id', name");
    conn.load::<ViewRow>(sql)
        .await?
        .into_iter()
        .map(TryInto::try_into)
        .collect()
}

/// Deletes `owner`'s view `name`; [`Error::NotFound`] when there is none (another owner's
/// view of that name is never touched).
pub async fn delete(conn: &mut AsyncPgConnection, owner: &ActorRef, name: &str) -> Result<(), Error> {
    remove(conn, owner, name).await
}

/// [`delete`] on a blocking connection.
pub fn delete_blocking(conn: &mut PgConnection, owner: &ActorRef, name: &str) -> Result<(), Error> {
    ready(remove(conn, owner, name))
}

async fn remove<C: Db>(conn: &mut C, owner: &ActorRef, name: &str) -> Result<(), Error> {
    let mut sql = Sql::new("DELETE FROM threadline.saved_views WHERE owner = ");
    sql.bind(Bind::Jsonb(owner_json(owner)))
        .push(" AND name = ")
        .bind(Bind::Text(name.trim().to_owned()))
        .push(&format!(" RETURNING {COLUMNS}"));
    match conn.load::<ViewRow>(sql.writing()).await?.is_empty() {
        true => Err(Error::NotFound { what: "saved view" }),
        false => Ok(()),
    }
}
