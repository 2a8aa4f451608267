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
//! Nothing here panics on a bad row: it is skipped with a reason.

pub mod cli;
pub mod sqlite;

use std::collections::BTreeMap;

use sqlite::{Database, SqliteError, Value};

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

/// What a database yields.
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

/// A row that names a 3PID: a binding, or (`record: None`) an unbind.
struct Candidate {
    record: Option<BindingRecord>,
    ts: u64,
    local: bool,
    table: &'static str,
    rowid: i64,
}

impl Candidate {
    fn beats(&self, other: &Candidate) -> bool {
        (self.ts, self.local, self.rowid) > (other.ts, other.local, other.rowid)
    }
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

/// Reads the bindings of a sydent database; `now_ms` decides which have expired.
pub fn sydent_bindings(db: &Database, now_ms: u64) -> Result<Mapped, SqliteError> {
    const LOCAL: &str = "local_threepid_associations";
    const GLOBAL: &str = "global_threepid_associations";
    let tables: Vec<&'static str> = [LOCAL, GLOBAL]
        .into_iter()
        .filter(|t| db.has_table(t))
        .collect();
    if tables.is_empty() {
        return Err(SqliteError::new(format!(
            "this is not a sydent database: it has neither {LOCAL} nor {GLOBAL}"
        )));
    }
    let mut out = Mapped::default();
    let mut best: BTreeMap<(String, String), Candidate> = BTreeMap::new();
    for table in tables {
        require_columns(db, table, &["medium", "address", "mxid", "ts"])?;
        let local = table == LOCAL;
        let mut read = 0;
        for row in db.table_rows(table)? {
            let row = row?;
            read += 1;
            let skip = |kind, reason: String| Skipped {
                kind,
                table: table.to_string(),
                rowid: row.rowid,
                reason,
            };
            let parsed = (|| -> Result<((String, String), Candidate), String> {
                let key = threepid(&row)?;
                let ts = number(row.get("ts"), "ts")?.ok_or("ts is NULL")?;
                let mxid = match row.get("mxid") {
                    // sydent's unbind leaves a row with a NULL mxid in the local table.
                    Some(Value::Null) if local => None,
                    v => Some(text(v).ok_or("mxid is not text")?),
                };
                let record = match mxid {
                    None => None,
                    Some(mxid) => {
                        check_user_id(&mxid).map_err(|e| e.message().to_string())?;
                        let not_before = number(row.get("notBefore"), "notBefore")?.unwrap_or(ts);
                        let not_after = number(row.get("notAfter"), "notAfter")?
                            .unwrap_or(ts.saturating_add(VALIDITY_MS));
                        Some(BindingRecord {
                            medium: key.0.clone(),
                            address: key.1.clone(),
                            mxid,
                            ts,
                            not_before,
                            not_after,
                        })
                    }
                };
                let candidate = Candidate {
                    record,
                    ts,
                    local,
                    table,
                    rowid: row.rowid,
                };
                Ok((key, candidate))
            })();
            let (key, candidate) = match parsed {
                Ok(p) => p,
                Err(reason) => {
                    out.skipped.push(skip(SkipKind::Invalid, reason));
                    continue;
                }
            };
            if let Some(r) = &candidate.record
                && r.not_after < now_ms
            {
                out.skipped.push(skip(
                    SkipKind::Expired,
                    format!("valid until {} (ms), which has passed", r.not_after),
                ));
                continue;
            }
            let loser = match best.get_mut(&key) {
                None => {
                    best.insert(key, candidate);
                    continue;
                }
                Some(held) if candidate.beats(held) => std::mem::replace(held, candidate),
                Some(_) => candidate,
            };
            out.skipped.push(Skipped {
                kind: SkipKind::Superseded,
                table: loser.table.to_string(),
                rowid: loser.rowid,
                reason: "a newer row names the same 3PID".into(),
            });
        }
        out.read.push((table.to_string(), read));
    }
    for (_, c) in best {
        match c.record {
            Some(r) => out.records.push(r),
            None => out.skipped.push(Skipped {
                kind: SkipKind::Unbound,
                table: c.table.to_string(),
                rowid: c.rowid,
                reason: "the 3PID was unbound in sydent".into(),
            }),
        }
    }
    Ok(out)
}

/// Reads what an mxisd or ma1sd database has that maps to bindings: ma1sd's `hashes` table.
/// `made_ms` is the binding time given to its rows (the file's modification time).
pub fn mxisd_bindings(db: &Database, made_ms: u64) -> Result<Mapped, SqliteError> {
    const HASHES: &str = "hashes";
    let known = ["session_3pid", "invite_3pid", "invite_3pid_history", HASHES];
    if !known.iter().any(|t| db.has_table(t)) {
        return Err(SqliteError::new(format!(
            "this is not an mxisd or ma1sd database: it has none of the tables {}",
            known.join(", ")
        )));
    }
    let mut out = Mapped::default();
    if db.has_table(HASHES) {
        require_columns(db, HASHES, &["mxid", "medium", "address"])?;
        let mut seen: BTreeMap<(String, String), BindingRecord> = BTreeMap::new();
        let mut read = 0;
        for row in db.table_rows(HASHES)? {
            let row = row?;
            read += 1;
            let parsed = threepid(&row).and_then(|key| {
                let mxid = text(row.get("mxid")).ok_or("mxid is not text")?;
                check_user_id(&mxid).map_err(|e| e.message().to_string())?;
                Ok((key, mxid))
            });
            let skip = |kind, reason: String| Skipped {
                kind,
                table: HASHES.to_string(),
                rowid: row.rowid,
                reason,
            };
            match parsed {
                Err(reason) => out.skipped.push(skip(SkipKind::Invalid, reason)),
                Ok((key, _)) if seen.contains_key(&key) => out.skipped.push(skip(
                    SkipKind::Superseded,
                    "an earlier row names the same 3PID".into(),
                )),
                Ok(((medium, address), mxid)) => {
                    let record = BindingRecord {
                        medium: medium.clone(),
                        address: address.clone(),
                        mxid,
                        ts: made_ms,
                        not_before: made_ms,
                        not_after: made_ms.saturating_add(VALIDITY_MS),
                    };
                    seen.insert((medium, address), record);
                }
            }
        }
        out.read.push((HASHES.to_string(), read));
        out.records = seen.into_values().collect();
    } else {
        out.notes.push(
            "this database holds no bindings: mxisd and ma1sd do not store binds (they are \
             signed and forgotten) and answer lookups from their identity stores; ma1sd keeps a \
             'hashes' table only with hashing.hashStorageType: sql. Configure the matching oxisd \
             identity store instead (stores.synapse, stores.rest, stores.static): see \
             docs/MIGRATION.md"
                .into(),
        );
    }
    for (table, what) in [
        ("invite_3pid", "pending 3PID invites"),
        ("session_3pid", "validation sessions"),
    ] {
        if db.has_table(table) {
            let n = db.table_rows(table)?.count();
            if n > 0 {
                out.notes.push(format!(
                    "not imported: {n} {what} ({table}); users request new ones"
                ));
            }
        }
    }
    Ok(out)
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
}
