//! The responses the middleware and the extractor answer with: a status and a small JSON body,
//! `{"error": "..."}`, in the shape of `threadline::Error`'s own responses.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// A refusal by the middleware or the extractor, answered as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct AuditError {
    status: StatusCode,
    message: String,
}

impl AuditError {
    /// 400: a request header that cannot go into an `AuditContext`.
    pub(crate) fn bad_header(header: &str, reason: impl fmt::Display) -> Self {
        AuditError {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid {header}: {reason}"),
        }
    }

    /// 400: a value from the client, found by the host's resolver, refused by `AuditContext`.
    pub(crate) fn bad_request(error: threadline::Error) -> Self {
        AuditError {
            status: StatusCode::BAD_REQUEST,
            message: error.to_string(),
        }
    }

    /// 500: the app's own state (a session, say) holds what cannot be an actor.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        AuditError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for AuditError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.message }))
    }
}
