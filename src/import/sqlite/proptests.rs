//! Property tests of the reader (issue 16; `fuzz/fuzz_targets/sqlite_reader.rs` and
//! `sqlite_schema.rs` are the fuzz targets): damaged files give errors or rows, never a panic,
//! and never more row bytes than the file has; `CREATE TABLE` statements written in any of
//! SQLite's quoting styles give their columns back.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
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

/// Opens the file and scans every table, checking that no scan yields more than the file.
fn scan_within_bounds(path: &Path, len: usize) {
    let Ok(db) = Database::open(path) else {
        return;
    };
    for table in db.table_names() {
        let Ok(rows) = db.table_rows(table) else {
            continue;
        };
        let mut read = 0;
        for row in rows.map_while(|r| r.ok()) {
            read += weight(row.values());
            assert!(read <= len, "{table}: {read} bytes of rows from {len}");
        }
    }
    let _ = crate::import::sydent_bindings(&db, 1_700_000_000_000);
    let _ = crate::import::mxisd_bindings(&db, 1_700_000_000_000);
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A column name in one of SQLite's quoting styles, and the name it stands for.
fn column_name() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        "[a-z_][a-z0-9_$]{0,8}"
            .prop_filter("not a keyword", |n| {
                ![
                    "create",
                    "table",
                    "primary",
                    "constraint",
                    "unique",
                    "check",
                    "foreign",
                ]
                .contains(&n.as_str())
            })
            .prop_map(|n| (n.clone(), n)),
        "[a-z ,()\"'-]{0,8}".prop_map(|n| (format!("\"{}\"", n.replace('"', "\"\"")), n)),
        "[a-z ,()`-]{0,8}".prop_map(|n| (format!("`{}`", n.replace('`', "``")), n)),
        "[a-z ,()\"'-]{0,8}".prop_map(|n| (format!("[{n}]"), n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn damaged_files_give_errors_or_bounded_rows(
        fixture_name in prop_oneof![Just("ma1sd.db"), Just("mxisd.db")],
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = fixture(fixture_name);
        for (at, byte) in damage {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len()));
        }
        let file = TempFile(std::env::temp_dir().join(format!(
            "oxisd-proptest-sqlite-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        )));
        std::fs::write(&file.0, &bytes).unwrap();
        scan_within_bounds(&file.0, bytes.len());
    }

    #[test]
    fn create_table_gives_its_columns_in_order(
        columns in prop::collection::vec(
            (column_name(), prop_oneof![
                Just(""), Just("INTEGER"), Just("text"), Just("varchar(256)"),
                Just("DECIMAL(10, 2)"), Just("unsigned big int"),
            ], prop_oneof![
                Just(""), Just("NOT NULL"), Just("DEFAULT (1)"), Just("CHECK (x > 0)"),
                Just("REFERENCES u(x)"), Just("COLLATE nocase"), Just("UNIQUE"),
            ]),
            1..6,
        ),
        key in prop::option::of(any::<prop::sample::Index>()),
        comment in any::<bool>(),
    ) {
        let key = key.map(|k| k.index(columns.len()));
        let defs: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, ((quoted, _), ty, extra))| {
                let pk = if key == Some(i) { " PRIMARY KEY" } else { "" };
                format!("{quoted} {ty}{pk} {extra}")
            })
            .collect();
        let separator = if comment { ", /* a, (comment */ " } else { ",\n  -- a, (comment\n  " };
        let sql = format!("CREATE TABLE IF NOT EXISTS \"t\" ({})", defs.join(separator));
        let def = parse_create_table(&sql).unwrap();
        let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
        let expected: Vec<&str> = columns.iter().map(|((_, n), _, _)| n.as_str()).collect();
        prop_assert_eq!(names, expected, "{}", sql);
        for (i, column) in def.columns.iter().enumerate() {
            let alias = key == Some(i) && columns[i].1 == "INTEGER";
            prop_assert_eq!(column.rowid_alias, alias, "{}", sql);
            prop_assert!(column.stored);
        }
    }

    #[test]
    fn any_statement_is_read_or_refused(sql in "(CREATE TABLE t ?\\()?[a-z\"'`\\[\\]() ,*/-]{0,40}") {
        if let Ok(def) = parse_create_table(&sql) {
            prop_assert!(!def.columns.is_empty());
            prop_assert!(def.columns.iter().filter(|c| c.rowid_alias).count() <= 1);
        }
    }
}
