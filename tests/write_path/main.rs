//! The audited write path: context, actions and rollback, async and blocking.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod context;

/// The audited table every write-path test writes to.
const SCHEMA: &str = "CREATE TABLE posts (id int PRIMARY KEY, title text);
                      SELECT threadline.audit_table('posts');";
