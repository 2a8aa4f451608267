//! mxisd's and ma1sd's databases: only ma1sd's `hashes` table maps 3PIDs to users (the first
//! row of a 3PID wins); pending invites and sessions are counted, not imported. See the
//! [module docs](super).

use super::candidate::{self, Candidates, Rule};
use super::sqlite::{Database, Row, SqliteError};
use super::{
    Mapped, Seen, SkipKind, Skipped, VALIDITY_MS, check_user_id, in_memory, require_columns, spill,
    spill_error, text, threepid,
};
use crate::store::bindings::BindingRecord;

/// Reads what an mxisd or ma1sd database has that maps to bindings (ma1sd's `hashes` table),
/// in memory. `made_ms` is the binding time given to its rows (the file's modification time).
pub fn mxisd_bindings(db: &Database, made_ms: u64) -> Result<Mapped, SqliteError> {
    in_memory(|watch| read_mxisd(db, made_ms, watch))
}

/// Reads an mxisd or ma1sd database as [`read_sydent`] reads a sydent one: its `hashes` table,
/// where the first row of a 3PID wins. `made_ms` is the binding time given to its rows (the
/// file's modification time).
pub fn read_mxisd(
    db: &Database,
    made_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
) -> Result<Candidates, SqliteError> {
    read_mxisd_with(db, made_ms, watch, spill::Sorter::new())
}

const HASHES: &str = "hashes";

/// [`read_mxisd`] with the given sorter (tests give one with a small buffer).
pub(super) fn read_mxisd_with(
    db: &Database,
    made_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
    mut sorter: spill::Sorter,
) -> Result<Candidates, SqliteError> {
    let known = ["session_3pid", "invite_3pid", "invite_3pid_history", HASHES];
    if !known.iter().any(|t| db.has_table(t)) {
        return Err(SqliteError::new(format!(
            "this is not an mxisd or ma1sd database: it has none of the tables {}",
            known.join(", ")
        )));
    }
    let mut read_counts = Vec::new();
    let mut notes = Vec::new();
    if db.has_table(HASHES) {
        let read = read_hashes(db, made_ms, watch, &mut sorter)?;
        read_counts.push((HASHES.to_string(), read));
    } else {
        notes.push(
            "this database holds no bindings: mxisd and ma1sd do not store binds (they are \
             signed and forgotten) and answer lookups from their identity stores; ma1sd keeps a \
             'hashes' table only with hashing.hashStorageType: sql. Configure the matching oxisd \
             identity store instead (stores.synapse, stores.rest, stores.static): see \
             docs/MIGRATION.md"
                .into(),
        );
    }
    notes.extend(not_imported(db)?);
    Ok(Candidates {
        sorted: sorter.finish().map_err(spill_error)?,
        rule: Rule::First,
        tables: vec![HASHES],
        read: read_counts,
        notes,
    })
}

/// Reads ma1sd's `hashes` table: each row that maps a 3PID to a user goes to `sorter` as a
/// binding made at `made_ms`, each that does not to `watch`. Returns how many rows were read.
fn read_hashes(
    db: &Database,
    made_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
    sorter: &mut spill::Sorter,
) -> Result<usize, SqliteError> {
    require_columns(db, HASHES, &["mxid", "medium", "address"])?;
    let mut entry = Vec::new();
    let mut read = 0;
    for row in db.table_rows(HASHES)? {
        let row = row?;
        read += 1;
        watch(Seen::Row(HASHES));
        match hashes_record(&row, made_ms) {
            Err(reason) => watch(Seen::Skipped(Skipped {
                kind: SkipKind::Invalid,
                table: HASHES.to_string(),
                rowid: row.rowid,
                reason,
            })),
            Ok(record) => {
                candidate::encode(
                    &mut entry,
                    Rule::First,
                    &record.medium,
                    &record.address,
                    made_ms,
                    true,
                    0,
                    row.rowid,
                    Some(&record),
                );
                sorter.push(&entry).map_err(spill_error)?;
            }
        }
    }
    Ok(read)
}

/// The binding a row of `hashes` stands for, made at `made_ms`, or why it cannot be one.
fn hashes_record(row: &Row, made_ms: u64) -> Result<BindingRecord, String> {
    let (medium, address) = threepid(row)?;
    let mxid = text(row.get("mxid")).ok_or("mxid is not text")?;
    check_user_id(&mxid).map_err(|e| e.message().to_string())?;
    Ok(BindingRecord {
        medium,
        address,
        mxid,
        ts: made_ms,
        not_before: made_ms,
        not_after: made_ms.saturating_add(VALIDITY_MS),
    })
}

/// What the database holds that is not imported (pending invites, sessions), for the notes.
fn not_imported(db: &Database) -> Result<Vec<String>, SqliteError> {
    let mut notes = Vec::new();
    for (table, what) in [
        ("invite_3pid", "pending 3PID invites"),
        ("session_3pid", "validation sessions"),
    ] {
        if db.has_table(table) {
            let n = db.table_rows(table)?.count();
            if n > 0 {
                notes.push(format!(
                    "not imported: {n} {what} ({table}); users request new ones"
                ));
            }
        }
    }
    Ok(notes)
}
