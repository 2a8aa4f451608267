//! sydent's tables: `local_threepid_associations` (binds made there, and the tombstones of
//! unbinds) and `global_threepid_associations` (what it answered lookups from). The newest row
//! of a 3PID wins; see the [module docs](super).

use super::candidate::{self, Candidates, Rule};
use super::sqlite::{self, Database, SqliteError, Value};
use super::{
    Mapped, Seen, SkipKind, Skipped, VALIDITY_MS, check_user_id, in_memory, number,
    require_columns, spill, spill_error, text, threepid,
};
use crate::store::bindings::BindingRecord;

/// A row of a sydent table, checked.
struct SydentRow {
    medium: String,
    address: String,
    ts: u64,
    /// `None` for an unbind.
    record: Option<BindingRecord>,
}

/// Checks and normalises a row of a sydent table (`local`: of `local_threepid_associations`).
fn sydent_row(row: &sqlite::Row, local: bool) -> Result<SydentRow, String> {
    let (medium, address) = threepid(row)?;
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
            let not_after =
                number(row.get("notAfter"), "notAfter")?.unwrap_or(ts.saturating_add(VALIDITY_MS));
            Some(BindingRecord {
                medium: medium.clone(),
                address: address.clone(),
                mxid,
                ts,
                not_before,
                not_after,
            })
        }
    };
    Ok(SydentRow {
        medium,
        address,
        ts,
        record,
    })
}

/// Reads the bindings of a sydent database, in memory; `now_ms` decides which have expired.
pub fn sydent_bindings(db: &Database, now_ms: u64) -> Result<Mapped, SqliteError> {
    in_memory(|watch| read_sydent(db, now_ms, watch))
}

/// Reads every row of a sydent database once; `now_ms` decides which have expired. Rows that
/// cannot be imported for what they hold go to `watch` as they are read; the others are
/// sorted by 3PID (see [`Candidates::items`]).
pub fn read_sydent(
    db: &Database,
    now_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
) -> Result<Candidates, SqliteError> {
    read_sydent_with(db, now_ms, watch, spill::Sorter::new())
}

const LOCAL: &str = "local_threepid_associations";
const GLOBAL: &str = "global_threepid_associations";

/// [`read_sydent`] with the given sorter (tests give one with a small buffer).
pub(super) fn read_sydent_with(
    db: &Database,
    now_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
    mut sorter: spill::Sorter,
) -> Result<Candidates, SqliteError> {
    let tables = sydent_tables(db)?;
    let mut read_counts = Vec::new();
    for (index, &table) in tables.iter().enumerate() {
        let read = read_table(db, table, index as u8, now_ms, watch, &mut sorter)?;
        read_counts.push((table.to_string(), read));
    }
    Ok(Candidates {
        sorted: sorter.finish().map_err(spill_error)?,
        rule: Rule::Newest,
        tables,
        read: read_counts,
        notes: Vec::new(),
    })
}

/// The sydent tables the database has, local first; an error when it has neither.
fn sydent_tables(db: &Database) -> Result<Vec<&'static str>, SqliteError> {
    let tables: Vec<&'static str> = [LOCAL, GLOBAL]
        .into_iter()
        .filter(|t| db.has_table(t))
        .collect();
    if tables.is_empty() {
        return Err(SqliteError::new(format!(
            "this is not a sydent database: it has neither {LOCAL} nor {GLOBAL}"
        )));
    }
    Ok(tables)
}

/// Reads one table (the `index`th of [`sydent_tables`]): each row that may be imported goes
/// to `sorter`, each that may not to `watch`. Returns how many rows were read.
fn read_table(
    db: &Database,
    table: &'static str,
    index: u8,
    now_ms: u64,
    watch: &mut dyn FnMut(Seen<'_>),
    sorter: &mut spill::Sorter,
) -> Result<usize, SqliteError> {
    require_columns(db, table, &["medium", "address", "mxid", "ts"])?;
    let local = table == LOCAL;
    let mut entry = Vec::new();
    let mut read = 0;
    for row in db.table_rows(table)? {
        let row = row?;
        read += 1;
        watch(Seen::Row(table));
        match importable(&row, local, now_ms) {
            Ok(SydentRow {
                medium,
                address,
                ts,
                record,
            }) => {
                candidate::encode(
                    &mut entry,
                    Rule::Newest,
                    &medium,
                    &address,
                    ts,
                    local,
                    index,
                    row.rowid,
                    record.as_ref(),
                );
                sorter.push(&entry).map_err(spill_error)?;
            }
            Err((kind, reason)) => watch(Seen::Skipped(Skipped {
                kind,
                table: table.to_string(),
                rowid: row.rowid,
                reason,
            })),
        }
    }
    Ok(read)
}

/// A row checked for what it holds and for its validity at `now_ms`, or why it is skipped.
fn importable(
    row: &sqlite::Row,
    local: bool,
    now_ms: u64,
) -> Result<SydentRow, (SkipKind, String)> {
    let parsed = sydent_row(row, local).map_err(|reason| (SkipKind::Invalid, reason))?;
    if let Some(r) = &parsed.record
        && r.not_after < now_ms
    {
        return Err((
            SkipKind::Expired,
            format!("valid until {} (ms), which has passed", r.not_after),
        ));
    }
    Ok(parsed)
}
