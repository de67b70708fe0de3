//! The macro API, pinned: every case in `fail/` must fail to compile with exactly the
//! message in its `.stderr`, and every case in `pass/` must compile.
//!
//! After changing a macro's messages on purpose, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn macro_api() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
