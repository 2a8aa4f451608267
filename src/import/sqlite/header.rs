//! What is checked before any page is read: the files beside the database that hold writes it
//! does not (a write-ahead log, a rollback journal), and its 100-byte header.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Result, SqliteError};

/// The first bytes of every SQLite 3 file.
pub(super) const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The first bytes of a rollback journal that holds an unfinished transaction.
pub(super) const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// What the header says about the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Bytes in a page.
    pub page_size: usize,
    /// Bytes of a page that b-trees use (the page size less the reserved bytes).
    pub usable: usize,
}

/// `path` with `suffix` appended to its file name (`db` -> `db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Refuses a database whose recent writes are elsewhere: a non-empty write-ahead log, or a
/// rollback journal of an interrupted transaction.
pub(super) fn refuse_unfinished_writes(path: &Path) -> Result<()> {
    let shown = path.display();
    let wal = sibling(path, "-wal");
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        return Err(SqliteError(format!(
            "{} exists and is not empty: recent writes are still in the write-ahead log, \
             where this importer cannot read them. Stop the old server, or run \
             `sqlite3 {shown} 'PRAGMA wal_checkpoint(TRUNCATE)'`, then import again",
            wal.display()
        )));
    }
    let journal = sibling(path, "-journal");
    if let Ok(mut j) = File::open(&journal) {
        let mut head = [0u8; 8];
        if j.read_exact(&mut head).is_ok() && head == JOURNAL_MAGIC {
            return Err(SqliteError(format!(
                "{} holds an unfinished transaction: stop the old server, or open the \
                 database once with `sqlite3 {shown} 'PRAGMA integrity_check'` to roll it \
                 back, then import again",
                journal.display()
            )));
        }
    }
    Ok(())
}

impl Header {
    /// Reads and checks the header of `file`, `len` bytes long (`path` names it in errors).
    /// Refuses anything that is not an SQLite 3 file, an unknown file format version and a
    /// UTF-16 database.
    pub(super) fn read(file: &File, len: u64, path: &Path) -> Result<Header> {
        let shown = path.display();
        let mut header = [0u8; 100];
        if len < 100 || file.read_exact_at(&mut header, 0).is_err() || &header[..16] != MAGIC {
            return Err(SqliteError(format!("{shown} is not an SQLite 3 database")));
        }
        let page_size = match u16::from_be_bytes([header[16], header[17]]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => n as usize,
            n => return Err(SqliteError::corrupt(format_args!("page size {n}"))),
        };
        let reserved = header[20] as usize;
        let usable = page_size.saturating_sub(reserved);
        if usable < 480 {
            return Err(SqliteError::corrupt(
                "the usable page size is below 480 bytes",
            ));
        }
        if header[18] > 2 || header[19] > 2 {
            return Err(SqliteError(format!(
                "{shown} uses a file format version this importer does not know ({}, {})",
                header[18], header[19]
            )));
        }
        match u32::from_be_bytes([header[56], header[57], header[58], header[59]]) {
            0 | 1 => {}
            2 | 3 => {
                return Err(SqliteError(format!(
                    "{shown} stores its text as UTF-16, which this importer does not read: \
                     convert it with `sqlite3 {shown} .dump | sed \"s/PRAGMA encoding.*//\" \
                     | sqlite3 converted.db` and import converted.db"
                )));
            }
            n => return Err(SqliteError::corrupt(format_args!("text encoding {n}"))),
        }
        Ok(Header { page_size, usable })
    }
}
