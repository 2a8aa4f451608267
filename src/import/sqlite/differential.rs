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

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use super::{Database, Value};

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

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Integers at the edges of every integer serial type (1, 2, 3, 4, 6 and 8 bytes, and the
/// constants 0 and 1).
const EDGE_INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    127,
    -128,
    128,
    -129,
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

const CHARS: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    'Z',
    '0',
    '9',
    ' ',
    '\'',
    '"',
    '\\',
    '\n',
    '\0',
    'é',
    'ß',
    '日',
    '本',
    '\u{2028}',
    '\u{feff}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
    '@',
    '.',
    '+',
];

fn text(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| CHARS[rng.below(CHARS.len() as u64) as usize])
        .collect()
}

/// A length: mostly short, often past what fits on a page, sometimes many pages long.
fn length(rng: &mut Rng, page_size: usize) -> usize {
    match rng.below(200) {
        0..=9 => 0,
        10..=139 => rng.below(60) as usize,
        140..=189 => rng.below(3 * page_size as u64) as usize,
        // Around the largest payload that still fits on a leaf page.
        190..=197 => page_size - 39 + rng.below(8) as usize,
        _ => rng.below(120_000) as usize,
    }
}

fn random_text(rng: &mut Rng, page_size: usize) -> String {
    let n = length(rng, page_size);
    text(rng, n)
}

fn random_value(rng: &mut Rng, page_size: usize) -> SqlValue {
    match rng.below(20) {
        0..=1 => SqlValue::Null,
        2..=5 => SqlValue::Integer(EDGE_INTS[rng.below(EDGE_INTS.len() as u64) as usize]),
        6..=7 => {
            let bits = rng.below(64);
            SqlValue::Integer((rng.next() as i64) >> bits)
        }
        8..=10 => SqlValue::Real(match rng.below(8) {
            0 => -0.0,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            // NaN: SQLite stores NULL.
            3 => f64::NAN,
            4 => (rng.below(2000) as f64 - 1000.0) / 4.0,
            5 => f64::MIN_POSITIVE / 4.0,
            _ => f64::from_bits(rng.next()),
        }),
        11..=15 => SqlValue::Text(random_text(rng, page_size)),
        _ => {
            let n = length(rng, page_size);
            SqlValue::Blob((0..n).map(|_| rng.next() as u8).collect())
        }
    }
}

/// How a database is made.
#[derive(Debug, Clone, Copy)]
struct Shape {
    page_size: usize,
    /// 0 none, 1 full, 2 incremental.
    auto_vacuum: u8,
    /// Bytes reserved at the end of every page.
    reserve: u8,
    wal: bool,
    seed: u64,
}

fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    for (i, page_size) in [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
        .into_iter()
        .enumerate()
    {
        out.push(Shape {
            page_size,
            auto_vacuum: (i % 3) as u8,
            reserve: 0,
            wal: i % 4 == 3,
            seed: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
        });
    }
    // Reserved bytes shrink the usable size, which every overflow computation depends on;
    // 512 - 32 = 480 is the smallest usable size SQLite allows.
    for (page_size, reserve, auto_vacuum) in [(512, 32, 1), (1024, 100, 0), (4096, 255, 2)] {
        out.push(Shape {
            page_size,
            auto_vacuum,
            reserve,
            wal: false,
            seed: page_size as u64 * 31 + reserve as u64,
        });
    }
    out
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

/// Sets the bytes reserved at the end of each page of a database that has no page yet.
#[allow(unsafe_code)] // The one call rusqlite has no safe wrapper for.
fn reserve_bytes(conn: &Connection, n: u8) {
    let mut n = std::ffi::c_int::from(n);
    // SAFETY: the handle is the open connection's; "main" is a NUL-terminated literal and `n` a
    // live c_int, which is what SQLITE_FCNTL_RESERVE_BYTES reads and writes.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&mut n as *mut std::ffi::c_int).cast(),
        )
    };
    assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
}

/// The tables besides the importer's: every affinity, quoting, comments, rowid aliases and
/// non-aliases, generated columns, a WITHOUT ROWID table, and one grown by ALTER TABLE.
const TRICKY_TABLES: &str = r#"
    CREATE TABLE mixed (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC,
        a, v VARCHAR(10), d DOUBLE PRECISION, f FLOAT, u UNSIGNED BIG INT);
    CREATE INDEX mixed_t ON mixed (t);
    CREATE INDEX mixed_ib ON mixed (i, b);
    CREATE TABLE "odd ""name""" ( -- a comment, (with parentheses)
        [col 1] TEXT, `x``y` INT, 'z' REAL /* ) */, "primary" CHECK ("primary" IS NOT ','),
        CONSTRAINT c CHECK (length([col 1]) < 1000000), UNIQUE ("x`y", z));
    CREATE TABLE keyed (x INTEGER, y TEXT, PRIMARY KEY (x DESC));
    CREATE TABLE intpk (x INT PRIMARY KEY, y);
    CREATE TABLE descpk (x INTEGER PRIMARY KEY DESC, y);
    CREATE TABLE sizedpk (x INTEGER(10) PRIMARY KEY, y);
    CREATE TABLE quotedpk ("x" "integer" NOT NULL PRIMARY KEY ASC ON CONFLICT ABORT, y);
    CREATE TABLE wr (k TEXT PRIMARY KEY, v) WITHOUT ROWID;
    CREATE TABLE altered (a INTEGER);
    CREATE TABLE reals (x REAL, y DOUBLE PRECISION, z FLOAT, w NUMERIC, v);
    CREATE TABLE gen_stored (a INTEGER, b REAL GENERATED ALWAYS AS (a * 2) STORED,
        c TEXT AS (a || 'x') STORED, d);
    CREATE TABLE gen_virtual (a INTEGER, b AS (a * 2), c TEXT AS (a || 'x') STORED);
    CREATE TABLE filler (x);
    CREATE VIEW mixed_view AS SELECT id, t FROM mixed;
    CREATE TRIGGER keyed_trigger AFTER INSERT ON keyed BEGIN SELECT 1; END;
"#;

/// The columns ALTER TABLE adds to `altered` after its first rows: rows written before read
/// the DEFAULT (with the column's affinity), not NULL.
const ADDED_COLUMNS: &[&str] = &[
    "b TEXT DEFAULT 'dflt'",
    "c INTEGER DEFAULT -5",
    "d REAL DEFAULT 1",
    "e DEFAULT X'00ff'",
    "f INTEGER DEFAULT '7'",
    "g TEXT DEFAULT 12",
    "h",
    "i INTEGER DEFAULT NULL",
    "j DEFAULT +3.5",
    "k NUMERIC DEFAULT '1e2'",
    "l DEFAULT TRUE",
];

/// The importer's tables, as sydent, ma1sd and mxisd create them.
const IMPORTER_TABLES: &str = r#"
    CREATE TABLE local_threepid_associations (id integer primary key autoincrement,
        medium varchar(16) not null, address varchar(256) not null, mxid varchar(256),
        ts integer, notBefore bigint, notAfter bigint);
    CREATE UNIQUE INDEX local_threepid_medium_address
        ON local_threepid_associations(medium, address);
    CREATE TABLE IF NOT EXISTS global_threepid_associations (
        id integer primary key, medium varchar(16) not null, address varchar(256) not null,
        mxid varchar(256) not null, ts integer not null, notBefore bigint not null,
        notAfter integer not null, originServer varchar(255) not null,
        originId integer not null, sgAssoc text not null);
    CREATE INDEX global_threepid_medium_address
        ON global_threepid_associations (medium, address);
    CREATE TABLE `hashes` (`mxid` VARCHAR(255) NOT NULL , `medium` VARCHAR(255) NOT NULL ,
        `address` VARCHAR(255) NOT NULL , `hash` VARCHAR(255) NOT NULL , PRIMARY KEY (`mxid`) );
    CREATE TABLE `session_3pid` (`id` VARCHAR NOT NULL , `creationTime` BIGINT NOT NULL ,
        `server` VARCHAR NOT NULL , `medium` VARCHAR NOT NULL , `address` VARCHAR NOT NULL ,
        `secret` VARCHAR NOT NULL , `attempt` INTEGER NOT NULL , `nextLink` VARCHAR ,
        `token` VARCHAR NOT NULL , `validated` BOOLEAN , `validationTime` BIGINT ,
        `isRemote` BOOLEAN NOT NULL , `remoteServer` VARCHAR , `remoteId` VARCHAR ,
        `remoteSecret` VARCHAR , `remoteAttempt` INTEGER , `isRemoteValidated` BOOLEAN NOT NULL ,
        PRIMARY KEY (`id`) );
"#;

/// Milliseconds; every binding written is valid from `TS` for a century.
const TS: i64 = 1_600_000_000_000;
const CENTURY: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Writes a database of `shape` at `path`.
fn build(path: &Path, shape: Shape) {
    let mut rng = Rng(shape.seed);
    let conn = Connection::open(path).unwrap();
    if shape.reserve > 0 {
        reserve_bytes(&conn, shape.reserve);
    }
    conn.execute_batch(&format!(
        "PRAGMA page_size = {}; PRAGMA auto_vacuum = {}; PRAGMA journal_mode = {};",
        shape.page_size,
        shape.auto_vacuum,
        if shape.wal { "WAL" } else { "DELETE" }
    ))
    .unwrap();
    conn.execute_batch(TRICKY_TABLES).unwrap();
    conn.execute_batch(IMPORTER_TABLES).unwrap();
    let ps = shape.page_size;
    let tx = conn.unchecked_transaction().unwrap();

    // A table to drop at the end, so its pages go to the freelist (or are moved by vacuum).
    for _ in 0..rng.below(40) + 10 {
        let n = ps + rng.below(2 * ps as u64) as usize;
        let v = SqlValue::Text(text(&mut rng, n));
        tx.execute("INSERT INTO filler VALUES (?1)", [v]).unwrap();
    }
    // Rowids at the edges (9-byte varints, negative), then sparse ones.
    let mut rowids: Vec<i64> = vec![i64::MIN, -1, 0, i64::MAX];
    let rows = 200 + rng.below(400) as i64;
    rowids.extend((1..=rows).map(|i| i * 8 + i % 7 + 1_000));
    for rowid in &rowids {
        let mut values = vec![SqlValue::Integer(*rowid)];
        values.extend((0..10).map(|_| random_value(&mut rng, ps)));
        tx.execute(
            "INSERT INTO mixed VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params_from_iter(values),
        )
        .unwrap();
    }
    // Text that is not UTF-8: the reader replaces it, as its documentation says.
    tx.execute(
        "INSERT INTO mixed (id, t) VALUES (5, CAST(X'61ff62c3' AS TEXT))",
        [],
    )
    .unwrap();
    for n in 0..200i64 {
        tx.execute(
            r#"INSERT INTO "odd ""name""" VALUES (?1, ?2, ?3, ?4)"#,
            rusqlite::params_from_iter([
                random_value(&mut rng, ps),
                SqlValue::Integer(n),
                random_value(&mut rng, ps),
                random_value(&mut rng, ps),
            ]),
        )
        .unwrap();
    }
    for table in ["keyed", "intpk", "descpk", "sizedpk", "quotedpk", "wr"] {
        for n in 0..50i64 {
            let key = match table {
                "wr" => SqlValue::Text(format!("k{n}")),
                _ => SqlValue::Integer(n * 3 - 70),
            };
            tx.execute(
                &format!("INSERT INTO {table} VALUES (?1, ?2)"),
                rusqlite::params_from_iter([key, random_value(&mut rng, ps)]),
            )
            .unwrap();
        }
    }
    for n in 0..30i64 {
        tx.execute("INSERT INTO altered VALUES (?1)", [n]).unwrap();
    }
    // REAL columns store whole numbers as integers, and SQLite reads them back as reals.
    for v in EDGE_INTS.iter().map(|n| SqlValue::Integer(*n)).chain([
        SqlValue::Real(3.0),
        SqlValue::Real(-0.0),
        SqlValue::Real(1e15),
        SqlValue::Real(2.5),
        SqlValue::Text("7".into()),
        SqlValue::Text("1e2".into()),
        SqlValue::Text("x".into()),
    ]) {
        tx.execute("INSERT INTO reals VALUES (?1, ?1, ?1, ?1, ?1)", [v.clone()])
            .unwrap();
        tx.execute("INSERT INTO gen_stored (a, d) VALUES (?1, ?1)", [v.clone()])
            .unwrap();
        tx.execute("INSERT INTO gen_virtual (a) VALUES (?1)", [v])
            .unwrap();
    }
    tx.execute_batch("INSERT INTO reals VALUES (3, 3, 3, 3, 3); INSERT INTO reals VALUES (4.0, 4.0, 4.0, 4.0, 4.0);")
        .unwrap();
    for column in ADDED_COLUMNS {
        tx.execute_batch(&format!("ALTER TABLE altered ADD COLUMN {column}"))
            .unwrap();
    }
    for n in 30..40i64 {
        tx.execute("INSERT INTO altered (a, b, h) VALUES (?1, 'new', ?1)", [n])
            .unwrap();
    }

    // The importer's tables, with what sydent and ma1sd store. Distinct, normalised 3PIDs, so
    // that every row is one binding.
    for n in 0..(ps as i64 / 16).clamp(300, 1000) {
        let medium = if n % 5 == 0 { "msisdn" } else { "email" };
        let address = if n % 5 == 0 {
            format!("44{:010}", n)
        } else if n % 97 == 1 {
            format!("{}{n}@long.example", "x".repeat(ps))
        } else {
            format!("user{n}.é@example.org")
        };
        let ts = TS + n;
        tx.execute(
            "INSERT INTO local_threepid_associations (medium, address, mxid, ts, notBefore, \
             notAfter) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                medium,
                address,
                format!("@user{n}:example.org"),
                ts,
                ts,
                ts + CENTURY
            ],
        )
        .unwrap();
    }
    for n in 0..300i64 {
        let ts = TS + 10_000 + n;
        tx.execute(
            "INSERT INTO global_threepid_associations (medium, address, mxid, ts, notBefore, \
             notAfter, originServer, originId, sgAssoc) VALUES ('email', ?1, ?2, ?3, ?3, ?4, \
             'other.example', ?5, ?6)",
            rusqlite::params![
                format!("remote{n}@other.example"),
                format!("@remote{n}:other.example"),
                ts,
                ts + CENTURY,
                n,
                random_text(&mut rng, ps),
            ],
        )
        .unwrap();
    }
    for n in 0..100i64 {
        tx.execute(
            "INSERT INTO hashes VALUES (?1, 'email', ?2, ?3)",
            rusqlite::params![
                format!("@h{n}:example.org"),
                format!("h{n}@example.org"),
                text(&mut rng, 43)
            ],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO session_3pid VALUES (?1, ?2, '192.0.2.1', 'email', ?3, 'secret', 1, \
             NULL, '123456', ?4, NULL, 0, NULL, NULL, NULL, NULL, 0)",
            rusqlite::params![
                n.to_string(),
                TS + n,
                format!("s{n}@example.org"),
                n % 2 == 0
            ],
        )
        .unwrap();
    }
    tx.commit().unwrap();

    // Deletes and updates leave free blocks, fragments and free pages behind; with secure
    // delete off, the old bytes stay where a confused reader could find them.
    let tx = conn.unchecked_transaction().unwrap();
    for rowid in &rowids {
        match rng.below(10) {
            0..=1 => {
                tx.execute("DELETE FROM mixed WHERE id = ?1", [rowid])
                    .unwrap();
            }
            2 => {
                tx.execute(
                    "UPDATE mixed SET t = ?2, b = ?3 WHERE id = ?1",
                    rusqlite::params_from_iter([
                        SqlValue::Integer(*rowid),
                        random_value(&mut rng, ps),
                        random_value(&mut rng, ps),
                    ]),
                )
                .unwrap();
            }
            _ => {}
        }
    }
    tx.execute(
        "DELETE FROM local_threepid_associations WHERE id % 11 = 3",
        [],
    )
    .unwrap();
    tx.execute_batch("DROP TABLE filler").unwrap();
    tx.commit().unwrap();
    if shape.auto_vacuum == 2 {
        conn.execute_batch("PRAGMA incremental_vacuum(5)").unwrap();
    }
    if rng.chance(50) {
        conn.execute_batch("ANALYZE").unwrap();
    }
    if shape.wal {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    conn.close().unwrap();
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists(),
        "the WAL is gone once the last connection closes"
    );
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
