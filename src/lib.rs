//! Integration tests, examples and migrations of the Threadline workspace.
