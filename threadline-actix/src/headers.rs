//! The request id and the correlation id: read from their headers, checked as
//! `AuditContext` checks them, and a request id generated when the client sent none.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use actix_web::http::header::HeaderName;
use threadline::AuditContext;

use crate::error::AuditError;

/// The header that carries the request id, both ways.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The header that carries the correlation id.
const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");

/// The request's id: its `x-request-id`, trimmed, or a fresh one when it has none. A header
/// that is not UTF-8, or not 1 to 256 bytes without control characters once trimmed, is a 400.
pub(crate) fn request_id(req: &HttpRequest) -> Result<String, AuditError> {
    let Some(id) = header(req, &REQUEST_ID)? else {
        return Ok(generate_id());
    };
    AuditContext::new()
        .with_request_id(id)
        .map_err(|error| refused(&REQUEST_ID, error))?;
    Ok(id.to_owned())
}

/// `ctx` with the request's `x-correlation-id`, trimmed, if it has one; checked like
/// [`request_id`].
pub(crate) fn with_correlation_id(req: &HttpRequest, ctx: AuditContext) -> Result<AuditContext, AuditError> {
    match header(req, &CORRELATION_ID)? {
        Some(id) => ctx
            .with_correlation_id(id)
            .map_err(|error| refused(&CORRELATION_ID, error)),
        None => Ok(ctx),
    }
}

/// The header's value, trimmed; `None` when absent. Values in UTF-8 beyond ASCII are kept.
fn header<'r>(req: &'r HttpRequest, name: &HeaderName) -> Result<Option<&'r str>, AuditError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(value) => std::str::from_utf8(value.as_bytes())
            .map(|text| Some(text.trim()))
            .map_err(|_| AuditError::bad_header(name.as_str(), "not UTF-8")),
    }
}

/// The 400 for a header `AuditContext` refused, with the core's reason.
fn refused(name: &HeaderName, error: threadline::Error) -> AuditError {
    match error {
        threadline::Error::Invalid { reason, .. } => AuditError::bad_header(name.as_str(), reason),
        other => AuditError::bad_header(name.as_str(), other),
    }
}

/// A fresh request id: 32 lowercase hex digits (128 bits).
///
/// No dependency: the bits are SipHash, keyed once per process from the OS's randomness
/// (std's `RandomState`), over the clock, the process id and a process-wide counter. The
/// counter makes every input distinct, so two ids collide no more often than two random
/// 128-bit numbers; ids are unpredictable without the key, but not a secret: never use one as
/// a token.
pub(crate) fn generate_id() -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(RandomState::new);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let half = |lane: u8| key.hash_one((lane, count, nanos, std::process::id()));
    format!("{:016x}{:016x}", half(0), half(1))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_ids_are_128_bit_hex_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|_| generate_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{id}"
            );
        }
    }
}
