//! Procedural macros of Threadline.
//!
//! This crate is re-exported by the `threadline` facade; depend on `threadline`, not on it directly.
//! It will hold `#[derive(Audited)]` and `#[audited_action("name")]`, one module per macro.
