//! The fuzz properties as proptest cases, so the normal suite runs them on every change.

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn cursors(text in "[0-9a-f.-]{0,60}|1\\.[0-9]{1,18}\\.[0-9]{1,19}\\.[0-9a-f]{16}") {
        threadline_fuzz::cursor(text.as_bytes());
    }

    #[test]
    fn filter_pairs(lines in prop::collection::vec(
        "(table|actor|from|to|request_id|correlation_id|action|op|tenant_id|tabel|[a-z]{0,8})=.{0,40}", 0..6)) {
        threadline_fuzz::filter_pairs(lines.join("\n").as_bytes());
    }

    #[test]
    fn row_keys(text in ".{0,40}|([a-z]{1,5}=[^,]{0,5},){0,4}[a-z]{0,5}(=.{0,5})?") {
        threadline_fuzz::row_key(text.as_bytes());
    }

    #[test]
    fn policy_json(text in "\\PC{0,60}|-- threadline:policy .{0,60}") {
        threadline_fuzz::policy_json(text.as_bytes());
    }

    #[test]
    fn audit_contexts(
        kind in "user|admin|job|system|anonymous|root|",
        id in ".{0,10}",
        request in proptest::option::of(".{0,300}"),
        meta in proptest::option::of("\\{\\}|\\[\\]|1|\\{\"k\": \"v\"\\}"),
    ) {
        let mut json = format!(r#"{{"actor": {{"type": {}, "id": {}}}"#,
            serde_json::to_string(&kind).unwrap(), serde_json::to_string(&id).unwrap());
        if let Some(request) = request {
            json.push_str(&format!(r#", "request_id": {}"#, serde_json::to_string(&request).unwrap()));
        }
        if let Some(meta) = meta {
            json.push_str(&format!(r#", "meta": {meta}"#));
        }
        json.push('}');
        threadline_fuzz::audit_context(json.as_bytes());
    }

    #[test]
    fn csv_records(cells in prop::collection::vec("[a,\"\r\n x\u{e9}]{0,8}", 0..8)) {
        threadline_fuzz::csv_writer(cells.join("\u{1f}").as_bytes());
    }
}
