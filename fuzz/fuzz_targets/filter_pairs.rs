//! cargo-fuzz target: see `threadline_fuzz::filter_pairs` for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| threadline_fuzz::filter_pairs(data));
