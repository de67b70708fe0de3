//! cargo-fuzz target: see `threadline_fuzz::cursor` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threadline_fuzz::cursor(data));
