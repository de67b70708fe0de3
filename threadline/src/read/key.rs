//! Row keys as callers give them.

use serde_json::{Map, Value};

use crate::Error;

/// The key of one audited row: a single value for a one-column key, or every key
/// column by name. Values are matched after casting to the column's type, exactly as
/// capture rendered `table_pk`, so `RowKey::from(42)` and `RowKey::from("0042")` find the
/// same row of an integer key.
///
/// ```
/// use threadline::read::RowKey;
///
/// let single = RowKey::from(42);
/// let composite = RowKey::columns([("tenant", "acme"), ("number", "7")])?;
/// assert_eq!("tenant=acme,number=7".parse::<RowKey>()?, composite);
/// assert_eq!("42".parse::<RowKey>()?, RowKey::from("42"));
/// # Ok::<(), threadline::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey(Value);

impl RowKey {
    /// A key naming every key column: `(column, value)` pairs, each column once.
    pub fn columns<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error> {
        let mut map = Map::new();
        for (column, value) in pairs {
            let column = column.into();
            if column.is_empty() {
                return Err(Error::invalid("row key", "a key column needs a name"));
            }
            if map.insert(column.clone(), Value::String(value.into())).is_some() {
                return Err(Error::invalid("row key", format!("column {column:?} is given twice")));
            }
        }
        if map.is_empty() {
            return Err(Error::invalid("row key", "name at least one key column"));
        }
        Ok(RowKey(Value::Object(map)))
    }

    /// The JSON that `threadline.render_key` takes.
    pub(crate) fn json(&self) -> &Value {
        &self.0
    }
}

impl From<i64> for RowKey {
    fn from(value: i64) -> Self {
        RowKey(Value::String(value.to_string()))
    }
}

impl From<i32> for RowKey {
    fn from(value: i32) -> Self {
        RowKey(Value::String(value.to_string()))
    }
}

impl From<&str> for RowKey {
    fn from(value: &str) -> Self {
        RowKey(Value::String(value.to_owned()))
    }
}

impl From<String> for RowKey {
    fn from(value: String) -> Self {
        RowKey(Value::String(value))
    }
}

impl std::str::FromStr for RowKey {
    type Err = Error;

    /// Parses the command line's form: `42` (one value), `col=value,col=value` (every
    /// key column), a JSON object, or a JSON string for a single value that contains `=`
    /// or `,`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid("row key", "is empty"));
        }
        if text.starts_with('{') || text.starts_with('"') {
            let value: Value =
                serde_json::from_str(text).map_err(|e| Error::invalid("row key", format!("is not valid JSON: {e}")))?;
            return match value {
                Value::String(s) => Ok(RowKey(Value::String(s))),
                Value::Object(map) => RowKey::columns(map.into_iter().map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })),
                _ => Err(Error::invalid("row key", "JSON must be a string or an object")),
            };
        }
        if !text.contains('=') {
            return Ok(RowKey(Value::String(text.to_owned())));
        }
        let pairs = text
            .split(',')
            .map(|part| {
                part.split_once('=').map(|(c, v)| (c.trim(), v.trim())).ok_or_else(|| {
                    Error::invalid(
                        "row key",
                        format!(
                            "{part:?} is not col=value; the correct format looks like id=42 or tenant=acme,number=7"
                        ),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        RowKey::columns(pairs)
    }
}
