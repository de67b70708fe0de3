use thiserror::Error as ThisError;

/// Everything that can go wrong in Threadline.
///
/// Match on the variant to act on a failure; the set grows, so keep a catch-all arm.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// A value given to Threadline was refused before it reached the database.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was being set, such as `actor id` or `request_id`.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An action was to be recorded with a context that names no actor.
    #[error("an action needs an actor: give the AuditContext one with with_actor")]
    MissingActor,
    /// The database refused or failed a statement, including Threadline's own checks
    /// (their messages start with `threadline:`).
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// No connection could be checked out of a pool (it timed out, or the pool could not
    /// connect).
    #[error("cannot check out a pooled connection: {0}")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The installed schema is not the one this release knows.
    #[error("threadline schema version {found} is installed, this release knows version {expected}")]
    SchemaVersion {
        /// The version recorded in `threadline.schema_version`.
        found: i32,
        /// The version of [`crate::migrations::INSTALL_SQL`].
        expected: i32,
    },
    /// What was asked for does not exist, or the reader's scope hides it (a scope never
    /// reveals what lies beyond it).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, such as `row` or `transaction`.
        what: &'static str,
    },
    /// A page cursor was malformed or made for another read or filter.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// The host's scope function refused the read.
    #[error("read refused by scope: {0}")]
    ScopeRefused(String),
    /// A captured row could not be decoded into a model's field (its column's type changed
    /// since, say), or a stored audit row holds what Threadline did not write (a tampered
    /// actor or op). A server-side failure, not bad input.
    #[error("cannot decode column {column} of a captured row: {reason}")]
    Decode {
        /// The column (of the audited table, or of the audit table, such as `actor`).
        column: String,
        /// What did not fit.
        reason: String,
    },
    /// Another process holds what this one needs (a retention run's lock); nothing was done.
    #[error("{0}")]
    Locked(String),
    /// The object store of export jobs failed.
    #[error("export storage: {0}")]
    Storage(String),
    /// Writing an export failed.
    #[error("export output: {0}")]
    Io(#[from] std::io::Error),
    /// The private test server could not be started or a test database not created.
    #[cfg(feature = "testing")]
    #[error("test database: {0}")]
    TestDatabase(String),
}

impl Error {
    /// Turns a refusal by one of Threadline's SQL checks (a message starting with
    /// `threadline:`) into [`Error::Invalid`] for `field`; other errors pass through.
    pub(crate) fn refused_as(self, field: &'static str) -> Self {
        match self {
            Error::Database(diesel::result::Error::DatabaseError(_, info))
                if info.message().starts_with("threadline: ") =>
            {
                let mut reason = info.message().trim_start_matches("threadline: ").to_owned();
                if let Some(hint) = info.hint() {
                    reason = format!("{reason} ({hint})");
                }
                Error::invalid(field, reason)
            }
            other => other,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// With the `actix` feature, handlers may return `threadline::Error` (or turn it into
/// `actix_web::Error` with `?`). The response is a small JSON body, `{"error": "..."}`,
/// that never carries captured row values or database messages.
///
/// | error | status |
/// |---|---|
/// | `NotFound`, `ScopeRefused` (a scope never reveals what lies beyond it) | 404 |
/// | `Invalid`, `InvalidCursor` | 400 |
/// | `Pool`, `Connection` | 503 |
/// | `Locked` | 409 |
/// | anything else | 500 |
#[cfg(feature = "actix")]
impl actix_web::ResponseError for Error {
    fn status_code(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode;
        match self {
            Error::NotFound { .. } | Error::ScopeRefused(_) => StatusCode::NOT_FOUND,
            Error::Invalid { .. } | Error::InvalidCursor(_) => StatusCode::BAD_REQUEST,
            Error::Pool(_) | Error::Connection(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Locked(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let message = match self {
            // Their messages name what was refused and why, never a stored value.
            Error::NotFound { .. } | Error::Invalid { .. } | Error::InvalidCursor(_) | Error::Locked(_) => {
                self.to_string()
            }
            Error::ScopeRefused(_) => "not found".to_owned(),
            Error::Pool(_) | Error::Connection(_) => "database unavailable".to_owned(),
            _ => "internal error".to_owned(),
        };
        actix_web::HttpResponse::build(self.status_code())
            .content_type("application/json")
            .body(serde_json::json!({ "error": message }).to_string())
    }
}
