//! The reader against SQLite itself (rusqlite, built from SQLite's bundled source): databases
//! written by SQLite with deterministic pseudo-random content, in every page size from 512 to
//! 65 536 bytes, with and without auto-vacuum, WAL or rollback journal, reserved bytes at the
//! end of pages, deleted and updated rows (freelist pages, free blocks), dropped tables, indexes,
//! views and triggers. For every table, the reader must return exactly the rows, columns and
//! values that `SELECT rowid, * FROM t ORDER BY rowid` returns, or refuse the table with a
//! clear error (`WITHOUT ROWID` tables), never other data.
//!
//! The real schemas of the importer (sydent's association tables, ma1sd's `hashes`, mxisd's
//! sessions and invites) are among the tables, and [`crate::import::sydent_bindings`] must
//! return, binding for binding, the rows SQLite holds.
//!
//! `build.rs` writes the databases (with `random.rs`'s content); this file compares them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::{Database, Value};

mod build;
mod random;

use build::{TS, build, shapes};

/// A value both sides can compare exactly: reals by their bits (so `-0.0` is not `0.0`).
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Int(i64),
    Real(u64),
    Text(String),
    Blob(Vec<u8>),
}

fn ours(v: &Value) -> V {
    match v {
        Value::Null => V::Null,
        Value::Integer(n) => V::Int(*n),
        Value::Real(f) => V::Real(f.to_bits()),
        Value::Text(s) => V::Text(s.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

fn theirs(v: ValueRef<'_>) -> V {
    match v {
        ValueRef::Null => V::Null,
        ValueRef::Integer(n) => V::Int(n),
        ValueRef::Real(f) => V::Real(f.to_bits()),
        // The reader replaces invalid UTF-8 with U+FFFD, as documented.
        ValueRef::Text(t) => V::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => V::Blob(b.to_vec()),
    }
}

/// A fresh directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("oxisd-sqlite-diff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The names of a table's columns and its rows as (rowid, values), as SQLite reads them.
fn sqlite_rows(conn: &Connection, table: &str) -> (Vec<String>, Vec<(i64, Vec<V>)>) {
    let quoted = format!("\"{}\"", table.replace('"', "\"\""));
    let mut stmt = conn
        .prepare(&format!("SELECT rowid, * FROM {quoted} ORDER BY rowid"))
        .unwrap();
    let names: Vec<String> = stmt.column_names().skip(1).map(String::from).collect();
    let n = names.len();
    let rows = stmt
        .query_map([], |row| {
            let rowid: i64 = row.get(0)?;
            let values = (1..=n).map(|i| theirs(row.get_ref_unwrap(i))).collect();
            Ok((rowid, values))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    (names, rows)
}

/// Compares every table of the database at `path`; the number of rows compared.
fn compare(path: &Path, what: &str) -> usize {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let db = Database::open(path).unwrap_or_else(|e| panic!("{what}: {e}"));

    // The schema table first: every entry, in order.
    let mut stmt = conn
        .prepare("SELECT type, name, rootpage, sql FROM sqlite_schema ORDER BY rowid")
        .unwrap();
    let schema: Vec<(String, String, i64, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let ours_schema: Vec<(String, String, i64, Option<String>)> = db
        .schema()
        .iter()
        .map(|e| (e.kind.clone(), e.name.clone(), e.rootpage, e.sql.clone()))
        .collect();
    assert_eq!(ours_schema, schema, "{what}: sqlite_schema");

    let mut compared = 0;
    for (kind, name, _, _) in &schema {
        if kind != "table" {
            continue;
        }
        // What the reader refuses, with the reason it must give.
        let refused = match name.as_str() {
            "wr" => Some("WITHOUT ROWID"),
            "gen_virtual" => Some("computed (VIRTUAL) column 'b'"),
            _ => None,
        };
        let rows = match (db.table_rows(name), refused) {
            (Ok(rows), None) => rows,
            (Err(e), Some(why)) if e.to_string().contains(why) => continue,
            (Err(e), _) => panic!("{what}: table {name}: {e}"),
            (Ok(_), Some(why)) => panic!("{what}: table {name} was read, not refused ({why})"),
        };
        let (names, want) = sqlite_rows(&conn, name);
        assert_eq!(
            rows.columns(),
            names.as_slice(),
            "{what}: columns of {name}"
        );
        let got: Vec<(i64, Vec<V>)> = rows
            .map(|r| {
                let r = r.unwrap_or_else(|e| panic!("{what}: table {name}: {e}"));
                (r.rowid, r.values().iter().map(ours).collect())
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{what}: rows of {name}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{what}: table {name}, rowid {}", w.0);
        }
        compared += got.len();
    }
    compared
}

/// The sydent import of the database at `path` against the association rows SQLite holds: one
/// binding each, but for the addresses too long to be email addresses, skipped as invalid.
fn sydent_import_matches(path: &Path, what: &str) -> usize {
    let conn =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let columns = "medium, address, mxid, ts, notBefore, notAfter";
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {columns} FROM local_threepid_associations UNION ALL \
             SELECT {columns} FROM global_threepid_associations ORDER BY 1, 2"
        ))
        .unwrap();
    type Binding = (String, String, String, u64, u64, u64);
    let all: Vec<Binding> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, i64>(4)? as u64,
                r.get::<_, i64>(5)? as u64,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let (long, want): (Vec<Binding>, Vec<Binding>) = all
        .into_iter()
        .partition(|b| b.1.ends_with("@long.example"));
    let db = Database::open(path).unwrap();
    let m = crate::import::sydent_bindings(&db, TS as u64).unwrap();
    let got: Vec<Binding> = m
        .records
        .iter()
        .map(|r| {
            let r = r.clone();
            (r.medium, r.address, r.mxid, r.ts, r.not_before, r.not_after)
        })
        .collect();
    assert_eq!(got, want, "{what}: sydent bindings");
    assert!(!long.is_empty());
    assert_eq!(m.skipped.len(), long.len(), "{what}: {:?}", m.skipped);
    assert!(
        m.skipped
            .iter()
            .all(|s| s.kind == crate::import::SkipKind::Invalid),
        "{what}"
    );
    got.len()
}

#[test]
fn every_table_reads_as_sqlite_reads_it() {
    let dir = Scratch::new("tables");
    let mut total = 0;
    let mut page_sizes = HashSet::new();
    let mut bindings = 0;
    for shape in shapes() {
        let path = dir
            .0
            .join(format!("{}-{}.db", shape.page_size, shape.reserve));
        build(&path, shape);
        let header = std::fs::read(&path).unwrap();
        // The shape took: page size, reserved bytes, auto-vacuum and the WAL format bytes.
        let size = u16::from_be_bytes([header[16], header[17]]);
        assert_eq!(
            if size == 1 { 65536 } else { size as usize },
            shape.page_size
        );
        assert_eq!(header[20], shape.reserve, "{shape:?}");
        let largest_root = u32::from_be_bytes([header[52], header[53], header[54], header[55]]);
        assert_eq!(largest_root != 0, shape.auto_vacuum != 0, "{shape:?}");
        assert_eq!(header[18] == 2, shape.wal, "{shape:?}");
        page_sizes.insert(shape.page_size);
        total += compare(&path, &format!("{shape:?}"));
        bindings += sydent_import_matches(&path, &format!("{shape:?}"));
    }
    assert_eq!(page_sizes.len(), 8);
    assert!(total > 15_000, "{total} rows compared");
    assert!(bindings > 5_000, "{bindings} bindings compared");
    eprintln!("{total} rows and {bindings} imported bindings compared");
}
