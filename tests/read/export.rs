use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use threadline::export::{ExportOptions, FIELDS, Format};
use threadline::read::{Filter, Reader};

use crate::{ctx, seeded, write};

/// Values that break naive CSV and JSON writers.
const HOSTILE: [&str; 8] = [
    "quote \" inside",
    "comma, inside",
    "line\nfeed",
    "carriage\r\nreturn",
    "lone\rcr",
    "ünïcödé ✓ 🚀",
    "=1+2 and \\ backslash",
    "\"",
];

fn export(
    conn: &mut diesel::PgConnection,
    filter: &Filter,
    options: ExportOptions,
) -> (Vec<u8>, threadline::export::ExportSummary) {
    let mut out = Vec::new();
    let summary = Reader::new()
        .export(filter, options)
        .unwrap()
        .write_to_blocking(conn, &mut out, |_| {})
        .unwrap();
    (out, summary)
}

fn hostile_rows(conn: &mut diesel::PgConnection) {
    let huge = "x".repeat(1_000_000);
    for (i, value) in HOSTILE.iter().chain([&huge.as_str()]).enumerate() {
        let literal = value.replace('\'', "''");
        write(
            conn,
            &ctx(
                "user:1",
                value
                    .get(..value.len().min(200))
                    .unwrap_or("req")
                    .replace(['\r', '\n'], " ")
                    .trim(),
                "flow",
                "acme",
            ),
            &format!("INSERT INTO posts (id, title, body) VALUES ({i}, '{literal}', '{literal}')"),
        );
    }
}

#[test]
fn csv_survives_hostile_values_through_a_standard_parser() {
    let (_db, mut conn) = seeded();
    hostile_rows(&mut conn);
    let (bytes, summary) = export(&mut conn, &Filter::new(), ExportOptions::new(Format::Csv));
    assert_eq!(summary.rows, HOSTILE.len() as u64 + 1);
    assert!(!summary.truncated);
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with(&format!("{}\r\n", FIELDS.join(","))));
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), FIELDS);
    let mut titles = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        assert_eq!(record.len(), FIELDS.len());
        let data: Value = serde_json::from_str(&record[7]).unwrap();
        assert_eq!(data["title"], data["body"]);
        assert_eq!(&record[5], "insert");
        let actor: Value = serde_json::from_str(&record[11]).unwrap();
        assert_eq!(actor, json!({"type": "user", "id": "1"}));
        titles.push(data["title"].as_str().unwrap().to_owned());
    }
    titles.reverse();
    let mut expected: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    expected.push("x".repeat(1_000_000));
    assert_eq!(titles, expected);
}

#[test]
fn json_and_ndjson_carry_the_same_changes() {
    let (_db, mut conn) = seeded();
    hostile_rows(&mut conn);
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap();
    let (json_bytes, _) = export(
        &mut conn,
        &Filter::new(),
        ExportOptions::new(Format::Json).generated_at(at),
    );
    let document: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(document["format_version"], 1);
    assert_eq!(document["generated_at"], "2026-11-27T09:30:00.000000Z");
    assert_eq!(document["truncated"], false);
    let changes = document["changes"].as_array().unwrap();
    assert_eq!(changes.len(), HOSTILE.len() + 1);
    let keys: Vec<&str> = changes[0].as_object().unwrap().keys().map(String::as_str).collect();
    let mut fields = FIELDS.to_vec();
    fields.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, fields);

    let (nd, _) = export(&mut conn, &Filter::new(), ExportOptions::new(Format::Ndjson));
    let lines: Vec<Value> = String::from_utf8(nd)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&lines, changes);
    let typed = Reader::new().timeline_blocking(&mut conn, &Filter::new()).unwrap();
    assert_eq!(
        serde_json::to_value(&typed.entries).unwrap(),
        Value::Array(lines),
        "exports and typed reads agree"
    );
}

#[test]
fn streamed_and_eager_exports_are_byte_identical() {
    let (_db, mut conn) = seeded();
    hostile_rows(&mut conn);
    write(
        &mut conn,
        &ctx("user:2", "r", "f", "t"),
        "UPDATE posts SET title = 'changed' WHERE id < 3; TRUNCATE notes",
    );
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    for format in [Format::Csv, Format::Json, Format::Ndjson] {
        let eager = export(
            &mut conn,
            &Filter::new(),
            ExportOptions::new(format).generated_at(at).page_size(10_000),
        )
        .0;
        for page_size in [1, 2, 5] {
            let streamed = export(
                &mut conn,
                &Filter::new(),
                ExportOptions::new(format).generated_at(at).page_size(page_size),
            )
            .0;
            assert!(streamed == eager, "{format} with pages of {page_size}");
        }
    }
}

#[test]
fn max_rows_caps_the_export_and_says_so() {
    let (_db, mut conn) = seeded();
    write(
        &mut conn,
        &ctx("user:1", "r", "f", "t"),
        "INSERT INTO posts (id, title) SELECT i, 't' FROM generate_series(1, 10) i",
    );
    for (max, rows, truncated) in [(3, 3, true), (10, 10, false), (11, 10, false), (0, 0, true)] {
        for page_size in [2, 100] {
            let (bytes, summary) = export(
                &mut conn,
                &Filter::new(),
                ExportOptions::new(Format::Json).max_rows(max).page_size(page_size),
            );
            assert_eq!(
                (summary.rows, summary.truncated),
                (rows, truncated),
                "max {max}, pages of {page_size}"
            );
            let document: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(document["truncated"], truncated);
            assert_eq!(document["changes"].as_array().unwrap().len() as u64, rows);
        }
    }
    let (csv, summary) = export(
        &mut conn,
        &Filter::new().table("notes").unwrap(),
        ExportOptions::new(Format::Csv),
    );
    assert_eq!(summary.rows, 0);
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        format!("{}\r\n", FIELDS.join(",")),
        "header only"
    );
}

#[test]
fn changes_and_exports_carry_the_redaction_they_were_captured_under() {
    let (_db, mut conn) = seeded();
    write(
        &mut conn,
        &ctx("user:1", "r1", "f", "acme"),
        "INSERT INTO posts (id, title, email, secret) VALUES (1, 't', 'a@example.com', 's');
         INSERT INTO memberships VALUES ('acme', 5, 'member')",
    );
    let typed = Reader::new().timeline_blocking(&mut conn, &Filter::new()).unwrap();
    let redaction: Vec<(&str, &[String], &[String])> = typed
        .entries
        .iter()
        .map(|c| (c.table_name.as_str(), &c.masked_fields[..], &c.excluded_fields[..]))
        .collect();
    let (email, secret) = (["email".to_owned()], ["secret".to_owned()]);
    assert_eq!(
        redaction,
        [("memberships", &[][..], &[][..]), ("posts", &email[..], &secret[..])]
    );
    assert_eq!(typed.entries[1].data.as_ref().unwrap()["email"], "[REDACTED]");

    let (bytes, _) = export(&mut conn, &Filter::new(), ExportOptions::new(Format::Csv));
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(
        (at("masked_fields"), at("excluded_fields")),
        (16, 17),
        "appended, existing columns keep their places"
    );
    let cells: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[16].to_owned(), r[17].to_owned())
        })
        .collect();
    assert_eq!(
        cells,
        [
            ("[]".to_owned(), "[]".to_owned()),
            (r#"["email"]"#.to_owned(), r#"["secret"]"#.to_owned())
        ]
    );

    let (nd, _) = export(&mut conn, &Filter::new(), ExportOptions::new(Format::Ndjson));
    let lines: Vec<Value> = String::from_utf8(nd)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[1]["masked_fields"], json!(["email"]));
    assert_eq!(lines[1]["excluded_fields"], json!(["secret"]));
    assert_eq!(lines[0]["masked_fields"], json!([]));
    assert_eq!(serde_json::to_value(&typed.entries).unwrap(), Value::Array(lines));
}
