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
    /// The installed schema is not the one this release knows.
    #[error("threadline schema version {found} is installed, this release knows version {expected}")]
    SchemaVersion {
        /// The version recorded in `threadline.schema_version`.
        found: i32,
        /// The version of [`crate::schema::INSTALL_SQL`].
        expected: i32,
    },
    /// The private test server could not be started or a test database not created.
    #[cfg(feature = "testing")]
    #[error("test database: {0}")]
    TestDatabase(String),
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
