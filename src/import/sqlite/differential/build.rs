//! Writing the databases the differential tests compare: their shapes (page size, reserved
//! bytes, auto-vacuum, WAL), their tables, and the rows, updates and deletes that fill them.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use super::random::{EDGE_INTS, Rng, random_text, random_value, text};

/// How a database is made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shape {
    pub(super) page_size: usize,
    /// 0 none, 1 full, 2 incremental.
    pub(super) auto_vacuum: u8,
    /// Bytes reserved at the end of every page.
    pub(super) reserve: u8,
    pub(super) wal: bool,
    seed: u64,
}

/// Every page size, with auto-vacuum and WAL in turn, and three with reserved bytes.
pub(super) fn shapes() -> Vec<Shape> {
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
pub(super) const TS: i64 = 1_600_000_000_000;
const CENTURY: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Writes a database of `shape` at `path`.
pub(super) fn build(path: &Path, shape: Shape) {
    let mut rng = Rng(shape.seed);
    let conn = open_shaped(path, shape);
    let ps = shape.page_size;
    let tx = conn.unchecked_transaction().unwrap();
    let rowids = fill_tricky_tables(&tx, &mut rng, ps);
    fill_importer_tables(&tx, &mut rng, ps);
    tx.commit().unwrap();
    churn(&conn, &mut rng, &rowids, ps);
    finish(conn, shape, &mut rng, path);
}

/// A new database at `path` with the page size, reserved bytes, auto-vacuum and journal mode
/// of `shape`, and every table created.
fn open_shaped(path: &Path, shape: Shape) -> Connection {
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
    conn
}

/// Fills [`TRICKY_TABLES`] (and grows `altered` with [`ADDED_COLUMNS`]); the rowids of
/// `mixed`, for [`churn`].
fn fill_tricky_tables(tx: &Connection, rng: &mut Rng, ps: usize) -> Vec<i64> {
    // A table to drop at the end, so its pages go to the freelist (or are moved by vacuum).
    for _ in 0..rng.below(40) + 10 {
        let n = ps + rng.below(2 * ps as u64) as usize;
        let v = SqlValue::Text(text(rng, n));
        tx.execute("INSERT INTO filler VALUES (?1)", [v]).unwrap();
    }
    // Rowids at the edges (9-byte varints, negative), then sparse ones.
    let mut rowids: Vec<i64> = vec![i64::MIN, -1, 0, i64::MAX];
    let rows = 200 + rng.below(400) as i64;
    rowids.extend((1..=rows).map(|i| i * 8 + i % 7 + 1_000));
    for rowid in &rowids {
        let mut values = vec![SqlValue::Integer(*rowid)];
        values.extend((0..10).map(|_| random_value(rng, ps)));
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
                random_value(rng, ps),
                SqlValue::Integer(n),
                random_value(rng, ps),
                random_value(rng, ps),
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
                rusqlite::params_from_iter([key, random_value(rng, ps)]),
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
    rowids
}

/// Fills the importer's tables with what sydent and ma1sd store.
fn fill_importer_tables(tx: &Connection, rng: &mut Rng, ps: usize) {
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
                random_text(rng, ps),
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
                text(rng, 43)
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
}

/// Deletes and updates rows of `mixed` and the local associations, and drops `filler`, in a
/// transaction of its own.
fn churn(conn: &Connection, rng: &mut Rng, rowids: &[i64], ps: usize) {
    // Deletes and updates leave free blocks, fragments and free pages behind; with secure
    // delete off, the old bytes stay where a confused reader could find them.
    let tx = conn.unchecked_transaction().unwrap();
    for rowid in rowids {
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
                        random_value(rng, ps),
                        random_value(rng, ps),
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
}

/// Vacuums, analyses and checkpoints as `shape` asks, then closes the database.
fn finish(conn: Connection, shape: Shape, rng: &mut Rng, path: &Path) {
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
