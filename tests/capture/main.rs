//! Capture: the schema install, the SQL table API and what the triggers record.

#[path = "../support/mod.rs"]
mod support;

mod hardening;
mod health;
mod install;
mod keys;
mod partitions;
mod policy;
mod privileges;
mod redaction;
mod schema_changes;
mod search_path;
mod semantics;
