//! Imports for people migrating from sydent, mxisd or ma1sd: their SQLite databases are read
//! here (by the `oxisd admin import` command, as the operator, with [`sqlite`]), each row is
//! checked and normalised into a [`BindingRecord`], and [`cli`] sends the records to the running
//! server's admin API, which stores them as bindings made here (`builtin`).
//!
//! What is imported:
//! - sydent: `local_threepid_associations` (the binds made on that sydent, with the tombstones
//!   its unbinds leave: a NULL mxid) and `global_threepid_associations` (what it answered
//!   lookups from, including associations replicated from peers). When rows name the same 3PID
//!   (after normalisation), the one with the latest `ts` wins, as in sydent's lookups; a local
//!   row wins a tie. A winning tombstone means the 3PID was unbound: nothing is imported for
//!   it. Rows whose `notAfter` has passed are skipped, as sydent's lookups skip them.
//! - mxisd/ma1sd: they store no bindings (a bind is signed and forgotten; lookups ask the
//!   identity stores). The only 3PID -> user data in their database is ma1sd's `hashes` table,
//!   filled from the identity stores when `hashing.hashStorageType: sql`; it is imported, with
//!   the time the database file was last written as the binding time. Pending invites and
//!   sessions are counted but not imported.
//!
//! Memory does not grow with the database: rows are read one at a time ([`read_sydent`],
//! [`read_mxisd`]), the rows naming a 3PID are sorted by 3PID in bounded memory, spilling to
//! temporary files when there are many (`spill`, `candidate`), and [`Candidates::items`]
//! then yields one binding per 3PID, in 3PID order, reading them back. [`sydent_bindings`] and
//! [`mxisd_bindings`] collect everything in memory instead, for tests and small files.
//!
//! Nothing here panics on a bad row: it is skipped with a reason.

mod candidate;
pub mod cli;
mod mxisd;
mod report;
mod spill;
pub mod sqlite;
mod sydent;

use sqlite::{Database, SqliteError, Value};

pub use candidate::{Candidates, Item, Items};
pub use mxisd::{mxisd_bindings, read_mxisd};
pub use sydent::{read_sydent, sydent_bindings};

use crate::service::bindings::{VALIDITY_MS, check_user_id, normalise_threepid};
use crate::store::bindings::BindingRecord;

/// Why a row was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipKind {
    /// It cannot be a binding: bad medium, address, user id or time.
    Invalid,
    /// Its validity ended.
    Expired,
    /// Another row of the same 3PID is newer.
    Superseded,
    /// The newest row of the 3PID is an unbind.
    Unbound,
}

impl SkipKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [SkipKind; 4] = [
        SkipKind::Invalid,
        SkipKind::Expired,
        SkipKind::Superseded,
        SkipKind::Unbound,
    ];

    /// How the summary names it.
    pub fn label(self) -> &'static str {
        match self {
            SkipKind::Invalid => "invalid",
            SkipKind::Expired => "expired",
            SkipKind::Superseded => "superseded",
            SkipKind::Unbound => "unbound",
        }
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Why.
    pub kind: SkipKind,
    /// The table it is in.
    pub table: String,
    /// Its rowid.
    pub rowid: i64,
    /// The reason, for the operator.
    pub reason: String,
}

/// What a database yields, all in memory (see [`sydent_bindings`]).
#[derive(Debug, Default)]
pub struct Mapped {
    /// The bindings to import, one per 3PID, ordered by medium and address.
    pub records: Vec<BindingRecord>,
    /// Rows read, per table.
    pub read: Vec<(String, usize)>,
    /// Rows not imported.
    pub skipped: Vec<Skipped>,
    /// Things the operator should know (what was not imported, and why).
    pub notes: Vec<String>,
}

impl Mapped {
    /// Rows read in all.
    pub fn rows_read(&self) -> usize {
        self.read.iter().map(|(_, n)| n).sum()
    }
}

/// A row as reading meets it, told to the caller as it goes (for progress and the summary).
#[derive(Debug)]
pub enum Seen<'a> {
    /// A row of this table was read.
    Row(&'a str),
    /// A row that will not be imported because of what it holds (invalid or expired).
    Skipped(Skipped),
}

/// Runs a streaming read (`read_sydent`, `read_mxisd`), keeping the rows it skips, and
/// collects its bindings in memory.
fn in_memory(
    read: impl FnOnce(&mut dyn FnMut(Seen<'_>)) -> Result<Candidates, SqliteError>,
) -> Result<Mapped, SqliteError> {
    let mut skipped = Vec::new();
    let candidates = read(&mut |seen| {
        if let Seen::Skipped(s) = seen {
            skipped.push(s);
        }
    })?;
    candidates.into_mapped(skipped)
}

fn spill_error(e: std::io::Error) -> SqliteError {
    SqliteError::new(format!("cannot sort the rows on disk: {e}"))
}

/// A whole number from an integer, a whole real or a decimal text; `None` for NULL.
fn number(v: Option<&Value>, column: &str) -> Result<Option<u64>, String> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Integer(n)) => Some(*n),
        Some(Value::Real(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(*f as i64),
        Some(Value::Text(s)) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        _ => Err(format!("{column} is not a time in milliseconds")),
    }
}

/// Text, or an integer as its digits (a phone number stored without affinity).
fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Text(s)) => Some(s.clone()),
        Some(Value::Integer(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// Checks that `table` has `columns`.
fn require_columns(db: &Database, table: &str, columns: &[&str]) -> Result<(), SqliteError> {
    let def = db.table_def(table)?;
    for c in columns {
        if !def.columns.iter().any(|d| d.name.eq_ignore_ascii_case(c)) {
            return Err(SqliteError::new(format!(
                "table {table} has no column '{c}': this is not a database of a supported version"
            )));
        }
    }
    Ok(())
}

/// The 3PID of a row, normalised as oxisd stores it.
fn threepid(row: &sqlite::Row) -> Result<(String, String), String> {
    let medium = text(row.get("medium")).ok_or("no medium")?;
    let address = text(row.get("address")).ok_or("no address")?;
    let shown: String = if address.chars().count() > 40 {
        format!(
            "{}... ({} bytes)",
            address.chars().take(40).collect::<String>(),
            address.len()
        )
    } else {
        address.clone()
    };
    normalise_threepid(&medium, &address)
        .map(|(m, a)| (m.as_str().to_string(), a))
        .map_err(|e| format!("{medium} '{shown}': {}", e.message()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn open(name: &str) -> Database {
        Database::open(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name),
        )
        .unwrap()
    }

    const NOW: u64 = 1_700_000_000_000;

    fn count(m: &Mapped, kind: SkipKind) -> usize {
        m.skipped.iter().filter(|s| s.kind == kind).count()
    }

    #[test]
    fn sydent_rows_become_one_binding_per_threepid() {
        let m = sydent_bindings(&open("sydent.db"), NOW).unwrap();
        assert_eq!(
            m.read,
            [
                ("local_threepid_associations".to_string(), 2006),
                ("global_threepid_associations".to_string(), 7)
            ]
        );
        assert_eq!(m.records.len(), 2005);
        assert_eq!(m.records.len() + m.skipped.len(), m.rows_read());
        assert_eq!(count(&m, SkipKind::Invalid), 3);
        assert_eq!(count(&m, SkipKind::Expired), 1);
        assert_eq!(count(&m, SkipKind::Superseded), 3);
        assert_eq!(count(&m, SkipKind::Unbound), 1);
        let find = |address: &str| m.records.iter().find(|r| r.address == address);
        let bob = find("bob.upper@example.org").unwrap();
        assert_eq!(bob.mxid, "@bob:example.org");
        assert_eq!(bob.ts, 1_600_000_000_001);
        assert_eq!(bob.not_after, 1_600_000_000_001 + VALIDITY_MS);
        assert_eq!(find("447700900123").unwrap().medium, "msisdn");
        assert_eq!(find("gina@example.org").unwrap().mxid, "@gina:example.org");
        assert_eq!(
            find("frank@remote.example").unwrap().mxid,
            "@frank:remote.example"
        );
        // The local row beats the older global one.
        assert_eq!(find("alice@example.org").unwrap().ts, 1_600_000_000_000);
        assert!(find("erin@example.org").is_none());
        assert!(find("dave@example.org").is_none());
        let reasons: Vec<&str> = m
            .skipped
            .iter()
            .filter(|s| s.kind == SkipKind::Invalid)
            .map(|s| s.reason.as_str())
            .collect();
        assert!(reasons[0].contains("not-a-user-id"), "{reasons:?}");
        assert!(reasons[1].contains("(5002 bytes)"), "{reasons:?}");
        assert!(reasons[2].contains("fax"), "{reasons:?}");
        assert!(
            m.records
                .windows(2)
                .all(|w| (&w[0].medium, &w[0].address) < (&w[1].medium, &w[1].address))
        );
    }

    #[test]
    fn ma1sd_hashes_are_imported_and_mxisd_has_nothing() {
        let m = mxisd_bindings(&open("ma1sd.db"), 5).unwrap();
        assert_eq!(m.rows_read(), 5);
        let got: Vec<(&str, &str)> = m
            .records
            .iter()
            .map(|r| (r.address.as_str(), r.mxid.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("kim@example.org", "@kim:example.org"),
                ("lee@example.org", "@lee:example.org"),
                ("33612345678", "@mia:example.org")
            ]
        );
        assert_eq!((m.records[0].ts, m.records[0].not_before), (5, 5));
        assert_eq!(count(&m, SkipKind::Invalid), 2);
        assert!(m.notes.iter().any(|n| n.contains("1 validation sessions")));

        let m = mxisd_bindings(&open("mxisd.db"), 5).unwrap();
        assert!(m.records.is_empty() && m.skipped.is_empty());
        assert!(m.notes[0].contains("holds no bindings"), "{:?}", m.notes);
    }

    #[test]
    fn the_wrong_kind_of_database_is_an_error() {
        assert!(mxisd_bindings(&open("sydent.db"), 0).is_err());
        assert!(sydent_bindings(&open("ma1sd.db"), 0).is_err());
    }

    #[test]
    fn rows_sorted_on_disk_give_what_sorting_in_memory_gives() {
        let sorted = |m: &Mapped| {
            let mut s = m.skipped.clone();
            s.sort_by(|a, b| (a.kind, &a.table, a.rowid).cmp(&(b.kind, &b.table, b.rowid)));
            s
        };
        let small = || spill::Sorter::with(&std::env::temp_dir(), 4096);
        for (name, in_memory) in [
            (
                "sydent.db",
                sydent_bindings(&open("sydent.db"), NOW).unwrap(),
            ),
            ("ma1sd.db", mxisd_bindings(&open("ma1sd.db"), 5).unwrap()),
        ] {
            let db = open(name);
            let mut skipped = Vec::new();
            let mut watch = |seen: Seen<'_>| {
                if let Seen::Skipped(s) = seen {
                    skipped.push(s);
                }
            };
            let candidates = if name == "sydent.db" {
                sydent::read_sydent_with(&db, NOW, &mut watch, small()).unwrap()
            } else {
                mxisd::read_mxisd_with(&db, 5, &mut watch, small()).unwrap()
            };
            if name == "sydent.db" {
                // About 50 runs: more than one merge reads at once.
                assert!(candidates.spilled_bytes() > 32 * 4096, "{name}");
            }
            let on_disk = candidates.into_mapped(skipped).unwrap();
            assert_eq!(on_disk.records, in_memory.records, "{name}");
            assert_eq!(sorted(&on_disk), sorted(&in_memory), "{name}");
            assert_eq!(on_disk.read, in_memory.read, "{name}");
        }
    }
}
