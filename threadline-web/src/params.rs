//! Reading a page's parameters: the query string or a form body, as decoded pairs; a
//! filter through the read core's own [`Filter::from_pairs`], so the page, the CLI and the
//! library accept the same filters with the same messages.

use actix_web::HttpRequest;
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use threadline::read::{Cursor, Filter, parse_time, query_pairs};

use crate::PageError;

/// The pairs of a query string or a form, empty values dropped (a form sends its empty
/// fields).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    /// The request's query string.
    pub(crate) fn query(req: &HttpRequest) -> Result<Params, PageError> {
        Params::parse(req.query_string())
    }

    /// A form body.
    pub(crate) fn form(body: &[u8]) -> Result<Params, PageError> {
        let text = std::str::from_utf8(body).map_err(|_| PageError::bad("form", "the body is not UTF-8"))?;
        Params::parse(text)
    }

    fn parse(text: &str) -> Result<Params, PageError> {
        let pairs = query_pairs(text)?;
        Ok(Params(
            pairs.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect(),
        ))
    }

    /// Removes and returns `key`'s value.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// Removes `key`'s value, or answers 400 saying it is needed.
    pub(crate) fn require(&mut self, key: &str, what: &str) -> Result<String, PageError> {
        self.take(key)
            .ok_or_else(|| PageError::bad(key, format!("give {what}")))
    }

    /// Removes and parses the `cursor`.
    pub(crate) fn cursor(&mut self) -> Result<Option<Cursor>, PageError> {
        self.take("cursor")
            .map(|text| text.parse::<Cursor>().map_err(PageError::from))
            .transpose()
    }

    /// Whether no parameter is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rest as a filter: every key left must be a filter key. `from` and `to` may be
    /// the `YYYY-MM-DDTHH:MM[:SS]` of a `datetime-local` field, read as UTC.
    pub(crate) fn into_filter(self) -> Result<Filter, PageError> {
        let pairs = self
            .0
            .into_iter()
            .map(|(key, value)| match key.as_str() {
                "from" | "to" => {
                    let field = if key == "from" { "from" } else { "to" };
                    let at = time(field, &value)?;
                    Ok((key, at.to_rfc3339()))
                }
                _ => Ok((key, value)),
            })
            .collect::<Result<Vec<_>, PageError>>()?;
        Ok(Filter::from_pairs(pairs)?)
    }

    /// Answers 400 for any key left over.
    pub(crate) fn finish(self) -> Result<(), PageError> {
        match self.0.first() {
            Some((key, _)) => Err(PageError::bad(key.clone(), "is not a parameter of this page")),
            None => Ok(()),
        }
    }
}

/// An RFC 3339 time, or the `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` of a `datetime-local` field
/// read as UTC; years 1 to 9999, as RFC 3339 writes them.
pub(crate) fn time(field: &'static str, text: &str) -> Result<DateTime<Utc>, PageError> {
    let text = text.trim();
    let at = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
        .map_or_else(|| parse_time(field, text).map_err(PageError::from), Ok)?;
    if !(1..=9999).contains(&at.year()) {
        return Err(PageError::bad(
            field,
            format!("{text:?} is outside the years 1 to 9999: the correct format looks like 2026-11-27T09:30"),
        ));
    }
    Ok(at)
}

/// The value of a `datetime-local` field for `at` (UTC, to the second).
pub(crate) fn local_value(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Parses a whole number that names something (a transaction, a job).
pub(crate) fn id(field: &'static str, text: &str) -> Result<i64, PageError> {
    text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        PageError::bad(
            field,
            format!("{text:?} is not an id: the correct format looks like 42"),
        )
    })
}
