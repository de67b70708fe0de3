//! The headers every response of the surface carries.

use actix_web::middleware::DefaultHeaders;

/// The surface's Content-Security-Policy: its own stylesheet and script, nothing inline,
/// no frames, forms posting only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     img-src 'self' data:; form-action 'self'; frame-ancestors 'none'";

/// The security headers, as a middleware wrapped around every route.
pub(crate) fn security() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("content-security-policy", CONTENT_SECURITY_POLICY))
        .add(("x-content-type-options", "nosniff"))
        .add(("referrer-policy", "no-referrer"))
        .add(("cache-control", "no-store"))
        .add(("x-frame-options", "DENY"))
}
