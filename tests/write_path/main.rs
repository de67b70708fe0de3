//! The audited write path: context, actions and rollback, async and blocking.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod context;
