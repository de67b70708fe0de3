//! Properties of Threadline's parsers and writers of untrusted input, one function each.
//! The proptest cases in `tests/properties.rs` run them in the normal suite; the
//! cargo-fuzz targets in `fuzz_targets/` run them under libFuzzer:
//!
//! ```sh
//! RUSTC_BOOTSTRAP=1 cargo fuzz run --features libfuzzer-sys cursor -- -max_total_time=60
//! ```
//!
//! Each function panics when its property fails, and only then: bad input is refused
//! with an error, never a panic.

use threadline::AuditContext;
use threadline::read::{ActorFilter, Cursor, Filter, RowKey, TableName};

/// A cursor that parses prints back to the same text and parses to the same cursor.
pub fn cursor(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cursor) = text.parse::<Cursor>() {
        let printed = cursor.to_string();
        assert_eq!(
            printed.parse::<Cursor>().ok(),
            Some(cursor),
            "{text:?} printed as {printed:?}"
        );
    }
}

/// Filter pairs (`key=value` lines) never panic, and every table name and actor a filter
/// accepts prints back to text that parses to the same value.
pub fn filter_pairs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text.lines().map(|l| l.split_once('=').unwrap_or((l, ""))).collect();
    let _ = Filter::from_pairs(pairs.iter().copied());
    for (key, value) in pairs {
        match key {
            "table" => {
                if let Ok(table) = value.parse::<TableName>() {
                    assert_eq!(table.to_string().parse::<TableName>().ok(), Some(table));
                }
            }
            "actor" => {
                if let Ok(actor) = ActorFilter::parse(value) {
                    assert_eq!(ActorFilter::parse(&actor.to_string()).ok(), Some(actor));
                }
            }
            _ => {}
        }
    }
}

/// Row-key text never panics, and a key that parses names at least one value: a single
/// value, or `column=value` pairs.
pub fn row_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(key) = text.parse::<RowKey>() {
        assert_eq!(text.parse::<RowKey>().ok(), Some(key));
        assert!(!text.is_empty());
    }
}

/// Column names of any text survive the policy JSON written into trigger migrations, and
/// the migration marker parser never panics and returns only parts of its line.
pub fn policy_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let quoted = threadline_syntax::json_string(&text);
    assert_eq!(serde_json::from_str::<String>(&quoted).ok().as_deref(), Some(&*text));
    for line in text.lines() {
        if let Some((table, policy)) = threadline_syntax::parse_marker(line) {
            assert!(line.contains(table) && line.contains(policy), "{line:?}");
        }
    }
}

/// A context that deserializes (as a background job receives it) passed the builders'
/// checks, and serializes to JSON that deserializes to the same context.
pub fn audit_context(data: &[u8]) {
    let Ok(context) = serde_json::from_slice::<AuditContext>(data) else {
        return;
    };
    let json = serde_json::to_vec(&context).expect("a context serializes");
    assert_eq!(
        serde_json::from_slice::<AuditContext>(&json).ok(),
        Some(context.clone())
    );
    let mut rebuilt = AuditContext::new();
    if let Some(id) = context.request_id() {
        rebuilt = rebuilt
            .with_request_id(id)
            .expect("a deserialized request id passes the builder");
    }
    if let Some(id) = context.correlation_id() {
        rebuilt = rebuilt
            .with_correlation_id(id)
            .expect("a deserialized correlation id passes the builder");
    }
    if let Some(id) = context.tenant_id() {
        rebuilt
            .with_tenant_id(id)
            .expect("a deserialized tenant id passes the builder");
    }
}

/// Any text cells written as an export's CSV record read back, through a real CSV parser,
/// as exactly one record of the same cells (split the input at U+001F into cells).
pub fn csv_writer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // exports always write many cells: a lone empty cell would be a blank line
    let cells: Vec<&str> = std::iter::once("id").chain(text.split('\u{1f}')).collect();
    let record = threadline::export::csv_record(&cells.iter().map(|c| Some(*c)).collect::<Vec<_>>());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(record.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("valid CSV")).collect();
    assert_eq!(records.len(), 1, "{record:?}");
    assert_eq!(records[0].iter().collect::<Vec<_>>(), cells);
}
