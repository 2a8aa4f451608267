//! A row that names a 3PID, as the importer sorts it on disk ([`super::spill`]): encoded so
//! that plain byte order groups the rows of one 3PID together, in 3PID order (as the store
//! orders bindings), and puts the row that wins first in its group. So the newest binding wins
//! without holding every 3PID in memory.
//!
//! [`Candidates`] holds the sorted rows of a database, and [`Items`] reads them back as one
//! binding per 3PID (or the reason there is none), with the rows that lost.
//!
//! Layout: the medium and the address, each with `00` escaped as `00 FF` and ended by `00 00`
//! (so that byte order is the order of (medium, address)); the rank, which sorts the winner
//! first; the table (an index into the reader's list of tables) and the rowid; then the binding,
//! or nothing for an unbind. The rank and the rowid make every entry distinct.

use super::sqlite::SqliteError;
use super::{Mapped, SkipKind, Skipped, spill, spill_error};
use crate::store::bindings::BindingRecord;

/// Which row of a 3PID wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The latest `ts`, then a local row, then the higher rowid (sydent's lookups).
    Newest,
    /// The first row in rowid order (ma1sd's `hashes`).
    First,
}

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `medium 00 00 address 00 00`, escaped: equal for the rows of one 3PID.
    pub key_len: usize,
    /// Index of the table in the reader's list.
    pub table: u8,
    /// The row's rowid.
    pub rowid: i64,
    /// The binding, or `None` for an unbind.
    pub record: Option<BindingRecord>,
}

fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Reads an escaped string at `*pos`, moving past it.
fn take_escaped(bytes: &[u8], pos: &mut usize) -> Option<String> {
    let mut s = Vec::new();
    loop {
        match (bytes.get(*pos)?, bytes.get(*pos + 1)) {
            (0, Some(0)) => {
                *pos += 2;
                return String::from_utf8(s).ok();
            }
            (0, Some(0xff)) => {
                s.push(0);
                *pos += 2;
            }
            (0, _) => return None,
            (&b, _) => {
                s.push(b);
                *pos += 1;
            }
        }
    }
}

/// The rowid as an unsigned number in the same order.
fn ordered_rowid(rowid: i64) -> u64 {
    (rowid as u64) ^ (1 << 63)
}

fn take_u64(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(*pos..*pos + 8)?.try_into().ok()?;
    *pos += 8;
    Some(u64::from_be_bytes(b))
}

/// Encodes a row of `medium`/`address` (normalised): `ts` and `local` rank it under
/// [`Rule::Newest`]; `record` is `None` for an unbind.
#[allow(clippy::too_many_arguments)]
pub fn encode(
    out: &mut Vec<u8>,
    rule: Rule,
    medium: &str,
    address: &str,
    ts: u64,
    local: bool,
    table: u8,
    rowid: i64,
    record: Option<&BindingRecord>,
) {
    out.clear();
    push_escaped(out, medium);
    push_escaped(out, address);
    match rule {
        Rule::Newest => {
            out.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
            out.push(u8::from(!local));
            out.extend_from_slice(&(u64::MAX - ordered_rowid(rowid)).to_be_bytes());
        }
        Rule::First => out.extend_from_slice(&ordered_rowid(rowid).to_be_bytes()),
    }
    out.push(table);
    out.extend_from_slice(&rowid.to_be_bytes());
    if let Some(r) = record {
        out.push(1);
        push_escaped(out, &r.mxid);
        for n in [r.ts, r.not_before, r.not_after] {
            out.extend_from_slice(&n.to_be_bytes());
        }
    } else {
        out.push(0);
    }
}

/// Decodes an entry written by [`encode`] with the same `rule`.
pub fn decode(bytes: &[u8], rule: Rule) -> Option<Candidate> {
    let mut pos = 0;
    let medium = take_escaped(bytes, &mut pos)?;
    let address = take_escaped(bytes, &mut pos)?;
    let key_len = pos;
    pos += match rule {
        Rule::Newest => 17,
        Rule::First => 8,
    };
    let table = *bytes.get(pos)?;
    pos += 1;
    let rowid = take_u64(bytes, &mut pos)? as i64;
    let record = match bytes.get(pos)? {
        0 => None,
        _ => {
            pos += 1;
            let mxid = take_escaped(bytes, &mut pos)?;
            let ts = take_u64(bytes, &mut pos)?;
            let not_before = take_u64(bytes, &mut pos)?;
            let not_after = take_u64(bytes, &mut pos)?;
            Some(BindingRecord {
                medium,
                address,
                mxid,
                ts,
                not_before,
                not_after,
            })
        }
    };
    Some(Candidate {
        key_len,
        table,
        rowid,
        record,
    })
}

/// The rows of a database that name a 3PID, sorted by 3PID; see [`Candidates::items`].
pub struct Candidates {
    pub(super) sorted: spill::Sorted,
    pub(super) rule: Rule,
    /// The tables the rows come from; candidates name them by index.
    pub(super) tables: Vec<&'static str>,
    /// Rows read, per table.
    pub read: Vec<(String, usize)>,
    /// Things the operator should know (what was not imported, and why).
    pub notes: Vec<String>,
}

/// What [`Candidates::items`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// The binding of a 3PID to import.
    Binding(BindingRecord),
    /// A row that lost to another of its 3PID, or an unbind that won.
    Skipped(Skipped),
}

impl Candidates {
    /// Rows read in all.
    pub fn rows_read(&self) -> usize {
        self.read.iter().map(|(_, n)| n).sum()
    }

    /// Temporary bytes on disk (0 when every row fitted in memory).
    pub fn spilled_bytes(&self) -> u64 {
        self.sorted.spilled_bytes()
    }

    /// One binding per 3PID, in 3PID order (medium, then address), with the rows that lost
    /// (superseded) and the winning unbinds. Each call reads the sorted rows again and gives
    /// the same items. The iterator stops after the first error.
    pub fn items(&self) -> Result<Items<'_>, SqliteError> {
        Ok(Items {
            entries: self.sorted.iter().map_err(spill_error)?,
            rule: self.rule,
            tables: &self.tables,
            previous: Vec::new(),
            failed: false,
        })
    }

    /// Everything in memory, with the rows that `skipped` collected while reading.
    pub(super) fn into_mapped(self, mut skipped: Vec<Skipped>) -> Result<Mapped, SqliteError> {
        let mut records = Vec::new();
        for item in self.items()? {
            match item? {
                Item::Binding(r) => records.push(r),
                Item::Skipped(s) => skipped.push(s),
            }
        }
        Ok(Mapped {
            records,
            read: self.read,
            skipped,
            notes: self.notes,
        })
    }
}

/// The items of [`Candidates`].
pub struct Items<'a> {
    entries: spill::Entries<'a>,
    rule: Rule,
    tables: &'a [&'static str],
    /// The 3PID (encoded) of the last entry: the next with the same one lost to it.
    previous: Vec<u8>,
    failed: bool,
}

impl Items<'_> {
    fn step(&mut self) -> Result<Option<Item>, SqliteError> {
        let Some(entry) = self.entries.next_entry().map_err(spill_error)? else {
            return Ok(None);
        };
        let c = decode(&entry, self.rule)
            .ok_or_else(|| SqliteError::new("a temporary file of the import is damaged"))?;
        let table = self
            .tables
            .get(usize::from(c.table))
            .copied()
            .unwrap_or("?")
            .to_string();
        let key = &entry[..c.key_len];
        if key == self.previous.as_slice() {
            let reason = match self.rule {
                Rule::Newest => "a newer row names the same 3PID",
                Rule::First => "an earlier row names the same 3PID",
            };
            return Ok(Some(Item::Skipped(Skipped {
                kind: SkipKind::Superseded,
                table,
                rowid: c.rowid,
                reason: reason.into(),
            })));
        }
        self.previous.clear();
        self.previous.extend_from_slice(key);
        Ok(Some(match c.record {
            Some(r) => Item::Binding(r),
            None => Item::Skipped(Skipped {
                kind: SkipKind::Unbound,
                table,
                rowid: c.rowid,
                reason: "the 3PID was unbound in sydent".into(),
            }),
        }))
    }
}

impl Iterator for Items<'_> {
    type Item = Result<Item, SqliteError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(address: &str, ts: u64) -> BindingRecord {
        BindingRecord {
            medium: "email".into(),
            address: address.into(),
            mxid: "@a\0b:example.org".into(),
            ts,
            not_before: ts,
            not_after: ts + 5,
        }
    }

    fn entry(rule: Rule, address: &str, ts: u64, local: bool, rowid: i64) -> Vec<u8> {
        let mut out = Vec::new();
        let r = record(address, ts);
        encode(
            &mut out,
            rule,
            "email",
            address,
            ts,
            local,
            u8::from(!local),
            rowid,
            Some(&r),
        );
        out
    }

    #[test]
    fn entries_decode_to_what_was_encoded() {
        let e = entry(Rule::Newest, "a\0z@example.org", 7, true, -3);
        let c = decode(&e, Rule::Newest).unwrap();
        assert_eq!(c.record, Some(record("a\0z@example.org", 7)));
        assert_eq!((c.table, c.rowid), (0, -3));
        assert_eq!(&e[..c.key_len], b"email\0\0a\0\xffz@example.org\0\0");
        let mut unbind = Vec::new();
        encode(
            &mut unbind,
            Rule::First,
            "msisdn",
            "1",
            0,
            false,
            2,
            9,
            None,
        );
        let c = decode(&unbind, Rule::First).unwrap();
        assert_eq!((c.table, c.rowid, c.record), (2, 9, None));
        assert!(decode(&e[..e.len() - 1], Rule::Newest).is_none());
    }

    #[test]
    fn byte_order_groups_a_threepid_and_puts_its_winner_first() {
        let mut newest = [
            entry(Rule::Newest, "b@x", 5, false, 1),
            entry(Rule::Newest, "a@x", 1, true, 9),
            entry(Rule::Newest, "b@x", 5, true, 2),
            entry(Rule::Newest, "b@x", 6, false, -1),
            entry(Rule::Newest, "a", 1, true, 1),
            entry(Rule::Newest, "b@x", 5, true, 3),
        ];
        newest.sort();
        let got: Vec<(String, u64, i64)> = newest
            .iter()
            .map(|e| {
                let c = decode(e, Rule::Newest).unwrap();
                let r = c.record.unwrap();
                (r.address, r.ts, c.rowid)
            })
            .collect();
        let want = [("a", 1, 1), ("a@x", 1, 9), ("b@x", 6, -1), ("b@x", 5, 3)];
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1, g.2), w);
        }
        assert_eq!((got[4].2, got[5].2), (2, 1));

        let mut first = [
            entry(Rule::First, "c@x", 9, true, 5),
            entry(Rule::First, "c@x", 1, true, -2),
            entry(Rule::First, "c@x", 5, true, 3),
        ];
        first.sort();
        let rowids: Vec<i64> = first
            .iter()
            .map(|e| decode(e, Rule::First).unwrap().rowid)
            .collect();
        assert_eq!(rowids, [-2, 3, 5]);
    }
}
