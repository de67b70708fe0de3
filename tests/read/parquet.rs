//! The Parquet export, read back by DuckDB: every row and value as the NDJSON export has
//! it, the folders by table and day, parts rolled over, and no redacted value anywhere.

use std::path::Path;
use std::process::Command;

use diesel::connection::SimpleConnection;
use serde_json::Value;
use threadline::export::parquet::ParquetOptions;
use threadline::export::{ExportOptions, FIELDS, Format};
use threadline::read::{Filter, Reader};

use crate::{ctx, seeded, write};

/// Every row of every file under `dir`, as DuckDB reads them, newest first, with
/// `captured_at` in microseconds since the epoch.
fn duckdb_rows(dir: &Path) -> Vec<Value> {
    let script = r#"
import duckdb, json, sys
rows = duckdb.sql(
    "SELECT * EXCLUDE (captured_at), epoch_us(captured_at) AS captured_at FROM read_parquet(?, hive_partitioning = false) "
    "ORDER BY captured_at DESC, id DESC",
    params=[sys.argv[1] + "/**/*.parquet"],
)
names = [c for c in rows.columns]
print(json.dumps([dict(zip(names, r)) for r in rows.fetchall()]))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .output()
        .expect("python3 runs (DuckDB is installed by .ci/run: pip install duckdb)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn parquet_files_by_table_and_day_read_back_by_duckdb_hold_every_value() {
    let (_db, mut conn) = seeded();
    conn.batch_execute(
        r#"CREATE TABLE "odd/table" (id int PRIMARY KEY, note text); SELECT threadline.audit_table('"odd/table"');"#,
    )
    .unwrap();
    for i in 0..5 {
        write(
            &mut conn,
            &ctx("user:1", &format!("req-{i}"), "flow", "acme"),
            &format!(
                "INSERT INTO posts (id, title, body, email, secret) VALUES ({i}, 'quote \" ü {i}', NULL, 'a{i}@example.com', 'hunter{i}2');
                 UPDATE posts SET title = 'line\nfeed {i}' WHERE id = {i};
                 INSERT INTO \"odd/table\" VALUES ({i}, 'n{i}')"
            ),
        );
    }
    conn.batch_execute("INSERT INTO memberships VALUES ('acme', 1, 'owner')")
        .unwrap();
    // Half of the changes a day earlier: two days of files.
    conn.batch_execute(
        "UPDATE threadline.audit_changes SET captured_at = captured_at - interval '1 day' WHERE id % 2 = 0",
    )
    .unwrap();

    let dir = std::env::temp_dir().join(format!("threadline-parquet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = Reader::new()
        .export_parquet(&Filter::new(), ParquetOptions::new().page_size(3).rows_per_file(2))
        .unwrap()
        .write_dir_blocking(&mut conn, &dir, |_| {})
        .unwrap();
    let mut nd = Vec::new();
    Reader::new()
        .export(&Filter::new(), ExportOptions::new(Format::Ndjson))
        .unwrap()
        .write_to_blocking(&mut conn, &mut nd, |_| {})
        .unwrap();
    let expected: Vec<Value> = String::from_utf8(nd)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary.rows, expected.len() as u64);
    assert_eq!(expected.len(), 16, "five of each of three writes, and a membership");
    assert!(!summary.truncated);

    let files: Vec<String> = summary.files.iter().map(|f| f.display().to_string()).collect();
    for file in &files {
        let parts: Vec<&str> = file.split('/').collect();
        assert_eq!(parts.len(), 3, "{file}");
        assert!(parts[0].starts_with("table="), "{file}");
        assert!(
            parts[1].starts_with("date=") && parts[1].len() == "date=2026-12-03".len(),
            "{file}"
        );
        assert!(
            parts[2].starts_with("part-") && parts[2].ends_with(".parquet"),
            "{file}"
        );
        assert!(dir.join(file).is_file());
    }
    assert!(
        files.iter().any(|f| f.starts_with("table=public.odd%2Ftable/")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("/part-1.parquet")),
        "parts roll over: {files:?}"
    );
    let days: std::collections::BTreeSet<&str> = files.iter().map(|f| f.split('/').nth(1).unwrap()).collect();
    assert_eq!(days.len(), 2, "{files:?}");

    let read = duckdb_rows(&dir);
    assert_eq!(read.len(), expected.len(), "every row");
    for (got, want) in read.iter().zip(&expected) {
        for field in FIELDS {
            let (got_value, want_value) = (&got[field], &want[field]);
            match field {
                "captured_at" => {
                    let micros = chrono::DateTime::parse_from_rfc3339(want_value.as_str().unwrap())
                        .unwrap()
                        .timestamp_micros();
                    assert_eq!(got_value.as_i64(), Some(micros), "{field}");
                }
                "table_pk" | "data" | "changed_fields" | "changed_from" | "actor" | "masked_fields"
                | "excluded_fields" => {
                    let parsed = got_value.as_str().map(|t| serde_json::from_str::<Value>(t).unwrap());
                    assert_eq!(parsed.unwrap_or(Value::Null), *want_value, "{field} of {}", want["id"]);
                }
                _ => assert_eq!(got_value, want_value, "{field} of {}", want["id"]),
            }
        }
    }
    let everything = serde_json::to_string(&read).unwrap();
    assert!(
        everything.contains("[REDACTED]"),
        "the masked email reads as the placeholder"
    );
    for i in 0..5 {
        assert!(
            !everything.contains(&format!("a{i}@example.com")),
            "masked value absent"
        );
        assert!(!everything.contains(&format!("hunter{i}2")), "excluded value absent");
    }
    for file in &files {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"hunter"),
            "{file} holds no excluded byte"
        );
    }
    let again = Reader::new()
        .export_parquet(&Filter::new(), ParquetOptions::new())
        .unwrap()
        .write_dir_blocking(&mut conn, &dir, |_| {})
        .unwrap_err()
        .to_string();
    assert!(again.contains("is not empty"), "{again}");
    std::fs::remove_dir_all(&dir).unwrap();
}
