//! Lifecycle: retention with its runs log, and the evidence plane, on real data.

#[path = "../support/mod.rs"]
mod support;

mod evidence;
mod retention;
