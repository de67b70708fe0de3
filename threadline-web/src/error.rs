//! What a page can fail with, and the status each answers with.

use std::fmt;

use actix_web::http::StatusCode;

use crate::Capability;

/// Why a page could not be shown. Each renders as an HTML page that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageError {
    /// 400: a parameter could not be read; `reason` says what to fix.
    BadInput {
        /// The parameter, such as `key` or `from`.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// 403: the authorize callback turned the request away.
    Denied,
    /// 303: the authorize callback sent the request elsewhere (a sign-in page).
    Redirect(String),
    /// 403: the operator lacks a capability.
    Missing(Capability),
    /// 403: the capability would read beyond the operator's restriction (background exports
    /// read the whole trail), so a restricted operator cannot use it.
    BeyondScope(Capability),
    /// 403: a form post's CSRF token was missing or not this operator's.
    Csrf,
    /// 404: no such thing, or it lies outside the operator's scope.
    NotFound(&'static str),
    /// 409: the thing is busy (a retention run holds the lock).
    Conflict(String),
    /// 503: no database connection could be checked out.
    Unavailable,
    /// 500: the database or the store failed; the log has the error's kind.
    Internal,
}

impl PageError {
    /// A 400 for `field`.
    pub(crate) fn bad(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PageError::BadInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            PageError::BadInput { .. } => StatusCode::BAD_REQUEST,
            PageError::Denied | PageError::Missing(_) | PageError::BeyondScope(_) | PageError::Csrf => {
                StatusCode::FORBIDDEN
            }
            PageError::Redirect(_) => StatusCode::SEE_OTHER,
            PageError::NotFound(_) => StatusCode::NOT_FOUND,
            PageError::Conflict(_) => StatusCode::CONFLICT,
            PageError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            PageError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::BadInput { field, reason } => write!(f, "invalid {field}: {reason}"),
            PageError::Denied => f.write_str("you are not allowed to open the audit pages"),
            PageError::Redirect(to) => write!(f, "sign in first ({to})"),
            PageError::Missing(capability) => write!(f, "this page needs {capability}"),
            PageError::BeyondScope(capability) => write!(f, "{capability} reads beyond the operator's restriction"),
            PageError::Csrf => f.write_str("the form's security token is missing or not yours"),
            PageError::NotFound(what) => write!(f, "{what} not found"),
            PageError::Conflict(why) => f.write_str(why),
            PageError::Unavailable => f.write_str("the audit database is not reachable right now"),
            PageError::Internal => f.write_str("the audit database failed to answer"),
        }
    }
}

impl From<threadline::Error> for PageError {
    fn from(error: threadline::Error) -> Self {
        use threadline::Error as E;
        match error {
            E::Invalid { field, reason } => PageError::bad(field, reason),
            E::InvalidCursor(reason) => PageError::bad("cursor", reason),
            E::NotFound { what } => PageError::NotFound(what),
            E::ScopeRefused(_) => PageError::Denied,
            E::Locked(why) => PageError::Conflict(why),
            E::Pool(_) | E::Connection(_) => PageError::Unavailable,
            other => {
                tracing::error!(target: "threadline::web", error = kind(&other), "page failed");
                PageError::Internal
            }
        }
    }
}

/// The error's kind, never its message (which may quote audited values).
fn kind(error: &threadline::Error) -> &'static str {
    use threadline::Error as E;
    match error {
        E::Database(_) => "database",
        E::Decode { .. } => "decode",
        E::Storage(_) => "storage",
        E::SchemaVersion { .. } => "schema_version",
        E::Io(_) => "io",
        _ => "other",
    }
}
