//! actix-web integration of Threadline.
//!
//! It will hold the middleware that builds a [`threadline::AuditContext`] per request, the
//! `AuditContext` extractor and the mountable read-only `/audit` operator surface, one file each.
