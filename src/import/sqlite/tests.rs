//! The reader against the fixtures of `tests/fixtures/make_import_fixtures.py`, and against
//! truncated, bit-flipped and looping copies of them: errors, never panics.

use std::path::{Path, PathBuf};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fresh directory for copies, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("oxisd-sqlite-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rows(db: &Database, table: &str) -> Vec<Row> {
    db.table_rows(table)
        .unwrap()
        .collect::<Result<Vec<_>>>()
        .unwrap()
}

/// Opens `path` and reads every row of every table; the number of rows read.
fn scan_all(path: &Path) -> Result<usize> {
    let db = Database::open(path)?;
    let mut n = 0;
    for t in db.table_names() {
        if db.table_def(t)?.without_rowid {
            continue;
        }
        for row in db.table_rows(t)? {
            row?;
            n += 1;
        }
    }
    Ok(n)
}

#[test]
fn every_serial_type_and_64k_pages() {
    let db = Database::open(&fixture("misc64k.db")).unwrap();
    assert_eq!(db.page_size, 65536);
    let all = rows(&db, "TYPES");
    let ints = [
        0i64,
        1,
        -1,
        127,
        -128,
        128,
        32767,
        -32768,
        32768,
        (1 << 23) - 1,
        -(1 << 23),
        1 << 23,
        i32::MAX as i64,
        i32::MIN as i64,
        1 << 31,
        (1 << 47) - 1,
        -(1 << 47),
        1 << 47,
        i64::MAX,
        i64::MIN,
    ];
    for (n, v) in ints.iter().enumerate() {
        let row = &all[n];
        assert_eq!(row.rowid, n as i64 + 1);
        // "id" is the rowid alias: stored as NULL, read as the rowid.
        assert_eq!(row.get("id"), Some(&Value::Integer(n as i64 + 1)));
        assert_eq!(row.get("i"), Some(&Value::Integer(*v)), "row {n}");
        assert_eq!(row.get("name"), Some(&Value::Text(format!("int{n}"))));
    }
    let by_id = |id: i64| all.iter().find(|r| r.rowid == id).unwrap();
    let r = by_id(100);
    assert_eq!(r.get("name"), Some(&Value::Text("héllo ☃".into())));
    assert_eq!(r.get("data"), Some(&Value::Blob(vec![0, 0xff, 0x10])));
    assert_eq!(r.get("r"), Some(&Value::Real(1.5)));
    assert_eq!(r.get("n"), Some(&Value::Null));
    assert_eq!(r.get("i"), Some(&Value::Null));
    assert_eq!(r.get("nope"), None);
    assert_eq!(by_id(101).get("r"), Some(&Value::Real(-2.25e-5)));
    // 150 000 characters: two overflow pages of 64 KiB after the local part.
    let Some(Value::Text(big)) = by_id(102).get("n") else {
        panic!("no text");
    };
    assert_eq!(big.len(), 150_000);
    assert!(
        big.chars()
            .enumerate()
            .all(|(i, c)| c as u32 == 0x41 + (i as u32 * 7) % 26)
    );
    assert_eq!(by_id(103).get("data"), Some(&Value::Blob(vec![])));

    // A rowid alias declared as a table constraint.
    let keyed = rows(&db, "keyed");
    let xs: Vec<&Value> = keyed.iter().map(|r| r.get("x").unwrap()).collect();
    assert_eq!(xs, [&Value::Integer(7), &Value::Integer(9)]);
    assert!(db.has_table("odd \"name\""));
    assert_eq!(
        rows(&db, "odd \"name\"")[0].values(),
        [Value::Text("q".into())]
    );

    let err = db.table_rows("wr").err().unwrap();
    assert!(err.to_string().contains("WITHOUT ROWID"), "{err}");
    assert!(db.table_rows("missing").is_err());
}

#[test]
fn sydent_tables_with_interior_pages_overflow_and_added_columns() {
    let db = Database::open(&fixture("sydent.db")).unwrap();
    assert_eq!(db.page_size, 1024);
    let local = rows(&db, "local_threepid_associations");
    assert_eq!(local.len(), 2006);
    assert!(local.windows(2).all(|w| w[0].rowid < w[1].rowid));
    assert_eq!(local[0].get("id"), Some(&Value::Integer(1)));
    assert_eq!(
        local[0].get("address"),
        Some(&Value::Text("alice@example.org".into()))
    );
    // The tombstone of an unbind: mxid and the times are NULL.
    assert_eq!(local[4].get("mxid"), Some(&Value::Null));
    // 5 002 bytes on 1 KiB pages: overflow pages.
    assert_eq!(
        local[5].get("address").unwrap().as_text().unwrap().len(),
        5002
    );
    // lookup_hash was added by ALTER TABLE: older records do not have it.
    assert_eq!(local[10].get("lookup_hash"), Some(&Value::Null));
    assert_eq!(
        local[2005].get("lookup_hash"),
        Some(&Value::Text("hash1999".into()))
    );
    assert_eq!(rows(&db, "global_threepid_associations").len(), 7);
}

#[test]
fn utf16_wal_and_journal_are_refused_with_a_way_out() {
    let err = Database::open(&fixture("utf16.db")).unwrap_err();
    assert!(err.to_string().contains("UTF-16"), "{err}");

    let dir = Scratch::new("wal");
    let db = dir.write("s.db", &std::fs::read(fixture("sydent.db")).unwrap());
    dir.write("s.db-wal", b"");
    assert!(Database::open(&db).is_ok(), "an empty WAL is fine");
    dir.write("s.db-wal", b"pending frames");
    let err = Database::open(&db).unwrap_err().to_string();
    assert!(err.contains("PRAGMA wal_checkpoint(TRUNCATE)"), "{err}");
    assert!(err.contains("Stop the old server"), "{err}");
    std::fs::remove_file(dir.0.join("s.db-wal")).unwrap();

    dir.write("s.db-journal", &[0u8; 512]);
    assert!(
        Database::open(&db).is_ok(),
        "a zeroed (finished) journal is fine"
    );
    let mut hot = JOURNAL_MAGIC.to_vec();
    hot.resize(512, 0);
    dir.write("s.db-journal", &hot);
    let err = Database::open(&db).unwrap_err().to_string();
    assert!(err.contains("unfinished transaction"), "{err}");
}

#[test]
fn other_files_are_not_databases() {
    let dir = Scratch::new("notdb");
    for (name, bytes) in [
        ("empty", Vec::new()),
        ("short", MAGIC.to_vec()),
        ("text", b"CREATE TABLE t (a);\n".repeat(100)),
    ] {
        let err = Database::open(&dir.write(name, &bytes)).unwrap_err();
        assert!(
            err.to_string().contains("not an SQLite 3 database"),
            "{err}"
        );
    }
    assert!(Database::open(&dir.0.join("absent")).is_err());
}

/// xorshift64: deterministic noise without a dependency.
fn noise(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn truncated_and_damaged_files_give_errors_not_panics() {
    let dir = Scratch::new("damage");
    for fixture_name in ["sydent.db", "misc64k.db", "ma1sd.db"] {
        let original = std::fs::read(fixture(fixture_name)).unwrap();
        let full = scan_all(&fixture(fixture_name)).unwrap();
        assert!(full > 0);
        let path = dir.0.join(fixture_name);
        // Cut anywhere: before, inside and after the header, mid-page, on page boundaries.
        let mut cuts: Vec<usize> = vec![0, 1, 99, 100, 101, 512, 1023, 1024, 1025, 4096];
        cuts.extend((0..original.len()).step_by(3_001));
        for cut in cuts.into_iter().filter(|c| *c < original.len()) {
            std::fs::write(&path, &original[..cut]).unwrap();
            let _ = scan_all(&path);
        }
        // Random damage: a few bytes, or a run of bytes, overwritten.
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ original.len() as u64;
        for round in 0..300 {
            let mut bytes = original.clone();
            let at = noise(&mut state) as usize % bytes.len();
            if round % 3 == 0 {
                let run = 1 + noise(&mut state) as usize % 64;
                for b in bytes.iter_mut().skip(at).take(run) {
                    *b = noise(&mut state) as u8;
                }
            } else {
                for _ in 0..1 + round % 8 {
                    let at = noise(&mut state) as usize % bytes.len();
                    bytes[at] ^= 1 << (noise(&mut state) % 8);
                }
            }
            std::fs::write(&path, &bytes).unwrap();
            let _ = scan_all(&path);
        }
    }
}

#[test]
fn loops_between_pages_are_caught() {
    let dir = Scratch::new("loops");
    let mut bytes = std::fs::read(fixture("sydent.db")).unwrap();
    let db = Database::open(&fixture("sydent.db")).unwrap();
    let root = db
        .schema()
        .iter()
        .find(|e| e.name == "local_threepid_associations")
        .unwrap()
        .rootpage as usize;
    let at = (root - 1) * 1024;
    assert_eq!(
        bytes[at], 0x05,
        "the root of 2 006 rows is an interior page"
    );
    // The right-most child is the root itself.
    bytes[at + 8..at + 12].copy_from_slice(&(root as u32).to_be_bytes());
    let path = dir.write("loop.db", &bytes);
    let db = Database::open(&path).unwrap();
    let err = db
        .table_rows("local_threepid_associations")
        .unwrap()
        .find_map(|r| r.err())
        .unwrap();
    assert!(err.to_string().contains("appears twice"), "{err}");
}

/// SQLite's varint, for values below 2^56.
fn put_varint(out: &mut Vec<u8>, n: u64) {
    let mut groups = vec![(n & 0x7f) as u8];
    let mut rest = n >> 7;
    while rest > 0 {
        groups.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.extend(groups.iter().rev());
}

/// A record of text and small integer values.
fn record(values: &[std::result::Result<&str, u8>]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut body = Vec::new();
    for v in values {
        match v {
            Ok(text) => {
                put_varint(&mut types, 2 * text.len() as u64 + 13);
                body.extend_from_slice(text.as_bytes());
            }
            Err(n) => {
                types.push(1);
                body.push(*n);
            }
        }
    }
    let mut out = vec![1 + types.len() as u8];
    out.extend(types);
    out.extend(body);
    out
}

/// A database of 512-byte pages made by hand: page 1 holds the schema, one table `t (a)` whose
/// root is page 2; `pages` are pages 2, 3, ...
fn handmade(pages: &[Vec<u8>]) -> Vec<u8> {
    let mut file = vec![0u8; 512];
    file[..16].copy_from_slice(MAGIC);
    file[16..18].copy_from_slice(&512u16.to_be_bytes());
    file[18] = 1;
    file[19] = 1;
    file[56..60].copy_from_slice(&1u32.to_be_bytes());
    let schema = record(&[
        Ok("table"),
        Ok("t"),
        Ok("t"),
        Err(2),
        Ok("CREATE TABLE t (a)"),
    ]);
    let mut cell = Vec::new();
    put_varint(&mut cell, schema.len() as u64);
    cell.push(1); // rowid
    cell.extend(schema);
    let at = 512 - cell.len();
    file[at..].copy_from_slice(&cell);
    // The leaf header after the file header: type, no freeblock, one cell, content start.
    file[100] = 0x0d;
    file[103..105].copy_from_slice(&1u16.to_be_bytes());
    file[105..107].copy_from_slice(&(at as u16).to_be_bytes());
    file[108..110].copy_from_slice(&(at as u16).to_be_bytes());
    for page in pages {
        let mut page = page.clone();
        page.resize(512, 0);
        file.extend(page);
    }
    file
}

/// Regression (issue 16, seen while writing the fuzz target's size bound): cell pointers aimed
/// at one cell whose row spills onto overflow pages made every pointer read those pages again:
/// a file of a few pages yielded hundreds of times its size (a large file, terabytes). Each
/// page is now read at most once per scan, and the cells of a page cannot hold more than it.
#[test]
fn issue_16_cells_sharing_bytes_or_overflow_pages_are_refused() {
    // A row of 39 + 4 * 508 bytes: 39 on the leaf, the rest on pages 3 to 6 (508 bytes each
    // after their 4-byte next-page number).
    let text = "x".repeat(39 + 4 * 508 - 3);
    let payload = record(&[Ok(&text)]);
    assert_eq!(payload.len(), 39 + 4 * 508);
    let mut cell = Vec::new();
    put_varint(&mut cell, payload.len() as u64);
    cell.push(1); // rowid
    cell.extend_from_slice(&payload[..39]);
    cell.extend(3u32.to_be_bytes());
    let mut overflow = Vec::new();
    for (n, chunk) in payload[39..].chunks(508).enumerate() {
        let next = if n == 3 { 0 } else { n as u32 + 4 };
        let mut page = next.to_be_bytes().to_vec();
        page.extend_from_slice(chunk);
        overflow.push(page);
    }

    let dir = Scratch::new("shared-cells");
    let leaf = |pointers: usize| {
        let mut page = vec![0u8; 512];
        let at = 512 - cell.len();
        page[0] = 0x0d;
        page[3..5].copy_from_slice(&(pointers as u16).to_be_bytes());
        page[5..7].copy_from_slice(&(at as u16).to_be_bytes());
        for i in 0..pointers {
            page[8 + 2 * i..10 + 2 * i].copy_from_slice(&(at as u16).to_be_bytes());
        }
        page[at..].copy_from_slice(&cell);
        page
    };
    // One pointer: a well-formed file, the row reads back whole.
    let mut pages = vec![leaf(1)];
    pages.extend(overflow.iter().cloned());
    let db = Database::open(&dir.write("one.db", &handmade(&pages))).unwrap();
    let all = rows(&db, "t");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].get("a"), Some(&Value::Text(text.clone())));

    // 200 pointers to that cell: 3 KiB of file read as 400 KiB of rows before the fix. Then
    // 10 copies of the cell side by side, all spilling onto the same overflow pages.
    let mut copies = leaf(0);
    copies[3..5].copy_from_slice(&10u16.to_be_bytes());
    copies[5..7].copy_from_slice(&(512 - 10 * cell.len() as u16).to_be_bytes());
    for i in 0..10 {
        let at = 512 - (i + 1) * cell.len();
        copies[8 + 2 * i..10 + 2 * i].copy_from_slice(&(at as u16).to_be_bytes());
        copies[at..at + cell.len()].copy_from_slice(&cell);
    }
    for (name, page) in [("shared.db", leaf(200)), ("copies.db", copies)] {
        pages[0] = page;
        let file = handmade(&pages);
        let db = Database::open(&dir.write(name, &file)).unwrap();
        let mut yielded = 0;
        let mut error = None;
        for row in db.table_rows("t").unwrap() {
            match row {
                Ok(_) => yielded += text.len(),
                Err(e) => error = Some(e),
            }
        }
        assert!(
            yielded <= file.len(),
            "{name}: {yielded} bytes of rows from {}",
            file.len()
        );
        let error = error.expect("the shared bytes are refused").to_string();
        assert!(error.contains("the database is corrupt"), "{name}: {error}");
    }
}
