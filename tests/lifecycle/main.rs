//! Lifecycle: retention with its runs log, background export jobs, saved views and the
//! evidence plane, on real data.

#[path = "../support/mod.rs"]
mod support;

mod evidence;
mod jobs;
mod partitions;
mod retention;
