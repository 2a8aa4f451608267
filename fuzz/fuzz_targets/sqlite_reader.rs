//! The SQLite reader of the importer (`oxisd::import::sqlite`) on any file: it opens and scans
//! every table, and maps the file as a sydent and as an mxisd database, without a panic, in
//! bounded time (libFuzzer's `-timeout`) and memory (`-rss_limit_mb`). One scan of a table
//! never yields more text and blob bytes than the file holds: every page is read at most once
//! per scan, so a crafted file cannot make the reader copy the same bytes over and over.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oxisd::import::sqlite::{Database, Value};
use oxisd::import::{mxisd_bindings, sydent_bindings};

/// The file the input is written to, one per fuzzing process: in memory when /dev/shm is
/// there (rewriting a file on a disk file system flushes it, a hundred times slower).
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("oxisd-fuzz-sqlite-{}.db", std::process::id()))
    })
}

/// Text characters and blob bytes: each comes from at least one byte of the file.
fn weight(values: &[Value]) -> usize {
    values
        .iter()
        .map(|v| match v {
            Value::Text(s) => s.chars().count(),
            Value::Blob(b) => b.len(),
            _ => 0,
        })
        .sum()
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("the temporary directory is writable");
    let Ok(db) = Database::open(path) else {
        return;
    };
    let schema_weight: usize = db
        .schema()
        .iter()
        .map(|e| e.kind.len() + e.name.len() + e.sql.as_ref().map_or(0, |s| s.chars().count()))
        .sum();
    assert!(
        schema_weight <= data.len(),
        "the schema is larger than the file"
    );
    let tables: Vec<String> = db
        .schema()
        .iter()
        .filter(|e| e.kind == "table")
        .map(|e| e.name.clone())
        .collect();
    for table in &tables {
        let Ok(rows) = db.table_rows(table) else {
            continue;
        };
        let mut read = 0;
        for row in rows {
            let Ok(row) = row else {
                break;
            };
            read += weight(row.values());
            assert!(
                read <= data.len(),
                "table {table} yields more bytes than the file has"
            );
        }
    }
    let _ = sydent_bindings(&db, 1_700_000_000_000);
    let _ = mxisd_bindings(&db, 1_700_000_000_000);
});
