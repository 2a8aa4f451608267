//! A small read-only SQLite reader, so that imports need no C library: it scans every row of a
//! rowid table. It reads the 100-byte header, the schema table on page 1, table b-trees
//! (interior and leaf pages), payloads spilling onto overflow pages, and records.
//!
//! The file may be corrupt or hostile, so every offset, length and page number is checked
//! before use, each page may be read once per scan (as a b-tree or an overflow page) and the
//! cells of a page may not share bytes, so one scan yields at most the file's size; the tree
//! depth and row sizes are bounded, and any violation is an [`SqliteError`], never a panic.
//! It does not read WAL files, indexes, `WITHOUT ROWID` tables, tables with `VIRTUAL` generated
//! columns or UTF-16 databases, and it does not lock the file: the program that writes it must
//! be stopped (or its WAL checkpointed) first. Values read as SQLite reads them
//! (`differential/` checks this against SQLite itself): whole numbers stored in REAL columns
//! come back as reals, and records older than an ALTER TABLE ADD COLUMN read the column's
//! DEFAULT.
//!
//! Format reference: <https://www.sqlite.org/fileformat2.html>.

mod affinity;
#[cfg(test)]
mod differential;
mod header;
#[cfg(test)]
mod proptests;
mod record;
mod schema;
#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use header::Header;
#[cfg(test)]
use header::{JOURNAL_MAGIC, MAGIC};
use record::varint;
pub use schema::{Affinity, Column, TableDef, parse_create_table};

/// Deepest b-tree accepted (SQLite's own trees stay far below: fan-out is at least 2 per page).
const MAX_DEPTH: usize = 40;
/// Largest row accepted, in bytes.
const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// Why a database cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteError(String);

impl SqliteError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> SqliteError {
        SqliteError(message.into())
    }

    fn corrupt(what: impl fmt::Display) -> SqliteError {
        SqliteError(format!("the database is corrupt: {what}"))
    }
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqliteError {}

type Result<T> = std::result::Result<T, SqliteError>;

/// A column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL (also for columns added after the row was written).
    Null,
    /// An integer.
    Integer(i64),
    /// A floating-point number.
    Real(f64),
    /// Text (invalid UTF-8 is replaced by U+FFFD).
    Text(String),
    /// A blob.
    Blob(Vec<u8>),
}

impl Value {
    /// The text, if the value is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// One row of a table.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
    /// The row's rowid.
    pub rowid: i64,
}

impl Row {
    /// The value of a column (names compare case-insensitively, as in SQL).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| self.values.get(i))
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// One entry of `sqlite_schema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaEntry {
    /// `table`, `index`, `view` or `trigger`.
    pub kind: String,
    /// The object's name.
    pub name: String,
    /// Root page of its b-tree (0 for views, triggers and virtual tables).
    pub rootpage: i64,
    /// The statement that created it.
    pub sql: Option<String>,
}

/// An open database file.
pub struct Database {
    file: File,
    path: PathBuf,
    page_size: usize,
    usable: usize,
    page_count: u32,
    schema: Vec<SchemaEntry>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({})", self.path.display())
    }
}

impl Database {
    /// Opens `path` and reads its schema. Refuses a database with uncheckpointed WAL content or
    /// an interrupted transaction next to it, a UTF-16 database, and anything that is not an
    /// SQLite 3 file.
    pub fn open(path: &Path) -> Result<Database> {
        let shown = path.display();
        header::refuse_unfinished_writes(path)?;
        let file =
            File::open(path).map_err(|e| SqliteError(format!("cannot open {shown}: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| SqliteError(format!("cannot read {shown}: {e}")))?
            .len();
        let Header { page_size, usable } = Header::read(&file, len, path)?;
        let page_count = u32::try_from(len / page_size as u64)
            .map_err(|_| SqliteError::corrupt("the file has too many pages"))?;
        let mut db = Database {
            file,
            path: path.to_path_buf(),
            page_size,
            usable,
            page_count,
            schema: Vec::new(),
        };
        db.schema = db.read_schema()?;
        Ok(db)
    }

    /// The entries of `sqlite_schema`, the table on page 1.
    fn read_schema(&self) -> Result<Vec<SchemaEntry>> {
        let columns: Arc<[String]> = ["type", "name", "tbl_name", "rootpage", "sql"]
            .map(String::from)
            .into();
        let mut schema = Vec::new();
        for row in Rows::new(self, 1, columns, None, vec![0, 1, 2, 3, 4]) {
            let row = row?;
            let text = |i: usize| row.values.get(i).and_then(Value::as_text).map(String::from);
            schema.push(SchemaEntry {
                kind: text(0).unwrap_or_default(),
                name: text(1).unwrap_or_default(),
                rootpage: match row.values.get(3) {
                    Some(Value::Integer(n)) => *n,
                    _ => 0,
                },
                sql: text(4),
            });
        }
        Ok(schema)
    }

    /// The schema entries.
    pub fn schema(&self) -> &[SchemaEntry] {
        &self.schema
    }

    /// The names of the tables, in schema order.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.schema
            .iter()
            .filter(|e| e.kind == "table")
            .map(|e| e.name.as_str())
    }

    /// Whether a table of this name exists (case-insensitively).
    pub fn has_table(&self, name: &str) -> bool {
        self.table_entry(name).is_some()
    }

    fn table_entry(&self, name: &str) -> Option<&SchemaEntry> {
        self.schema
            .iter()
            .find(|e| e.kind == "table" && e.name.eq_ignore_ascii_case(name))
    }

    /// The definition of a table, from its `CREATE TABLE` statement.
    pub fn table_def(&self, name: &str) -> Result<TableDef> {
        let entry = self
            .table_entry(name)
            .ok_or_else(|| SqliteError(format!("there is no table '{name}'")))?;
        let sql = entry
            .sql
            .as_deref()
            .ok_or_else(|| SqliteError::corrupt(format_args!("table '{name}' has no SQL")))?;
        parse_create_table(sql)
            .map_err(|e| SqliteError(format!("cannot read the definition of table '{name}': {e}")))
    }

    /// Every row of table `name`, in rowid order. The iterator stops after the first error.
    pub fn table_rows(&self, name: &str) -> Result<Rows<'_>> {
        let def = self.table_def(name)?;
        if def.without_rowid {
            return Err(SqliteError(format!(
                "table '{name}' is a WITHOUT ROWID table, which this importer does not read"
            )));
        }
        let root = self.table_entry(name).map(|e| e.rootpage).unwrap_or(0);
        let root = u32::try_from(root)
            .ok()
            .filter(|r| *r >= 1)
            .ok_or_else(|| SqliteError(format!("table '{name}' has no b-tree (virtual table?)")))?;
        if let Some(c) = def.columns.iter().find(|c| !c.stored) {
            return Err(SqliteError(format!(
                "table '{name}' has a computed (VIRTUAL) column '{}', which this importer does \
                 not compute",
                c.name
            )));
        }
        let columns: Arc<[String]> = def.columns.iter().map(|c| c.name.clone()).collect();
        let alias = def.columns.iter().position(|c| c.rowid_alias);
        let stored = (0..def.columns.len()).collect();
        let mut rows = Rows::new(self, root, columns, alias, stored);
        rows.real = def
            .columns
            .iter()
            .map(|c| c.affinity() == Affinity::Real)
            .collect();
        rows.defaults = def
            .columns
            .iter()
            .map(|c| match &c.default {
                None => Ok(Value::Null),
                Some(sql) => affinity::default_value(sql, c.affinity()).ok_or_else(|| {
                    format!(
                        "column '{}' of table '{name}' was added with DEFAULT {sql}, which this \
                         importer cannot compute for the rows written before it",
                        c.name
                    )
                }),
            })
            .collect();
        Ok(rows)
    }

    fn page(&self, n: u32) -> Result<Vec<u8>> {
        if n == 0 || n > self.page_count {
            return Err(SqliteError::corrupt(format_args!(
                "page {n} is outside the file ({} pages)",
                self.page_count
            )));
        }
        let mut buf = vec![0u8; self.page_size];
        self.file
            .read_exact_at(&mut buf, (n as u64 - 1) * self.page_size as u64)
            .map_err(|e| SqliteError(format!("cannot read page {n}: {e}")))?;
        Ok(buf)
    }
}

/// Marks page `n` (1-based) in a scan's bitmap of pages; false when it was marked already or is
/// outside the file (it has no bit).
fn first_visit(visited: &mut [u64], n: u32) -> bool {
    let Some(i) = n.checked_sub(1) else {
        return false;
    };
    let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
    match visited.get_mut(word) {
        Some(w) if *w & bit == 0 => {
            *w |= bit;
            true
        }
        _ => false,
    }
}

fn be_u32(buf: &[u8], at: usize) -> Result<u32> {
    buf.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| SqliteError::corrupt("a page number runs past its page"))
}

fn be_u16(buf: &[u8], at: usize) -> Result<usize> {
    buf.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| SqliteError::corrupt("a page header runs past its page"))
}

/// A b-tree page being walked.
struct Frame {
    number: u32,
    data: Vec<u8>,
    leaf: bool,
    /// Cell offsets within `data`.
    cells: Vec<usize>,
    /// Bytes of the cell content area not yet taken by the cells read: cells cannot overlap,
    /// so together they are no larger than that area.
    room: usize,
    right: u32,
    next: usize,
}

/// The rows of one table; see [`Database::table_rows`].
pub struct Rows<'a> {
    db: &'a Database,
    columns: Arc<[String]>,
    alias: Option<usize>,
    /// The columns a record holds values for, in record order.
    stored: Vec<usize>,
    /// Columns of REAL affinity, whose whole numbers are stored as integers.
    real: Vec<bool>,
    /// What each column reads as when a record predates it (ALTER TABLE ADD COLUMN), or why
    /// that cannot be computed.
    defaults: Vec<std::result::Result<Value, String>>,
    stack: Vec<Frame>,
    /// One bit per page of the file: a page met twice in one scan means a loop. A bitmap, not
    /// a set: 128 KiB for a 4 GiB file of 4 KiB pages, where a hash set would take megabytes.
    visited: Vec<u64>,
    pending_root: Option<u32>,
    failed: bool,
}

impl<'a> Rows<'a> {
    fn new(
        db: &'a Database,
        root: u32,
        columns: Arc<[String]>,
        alias: Option<usize>,
        stored: Vec<usize>,
    ) -> Rows<'a> {
        Rows {
            db,
            columns,
            alias,
            stored,
            real: Vec::new(),
            defaults: Vec::new(),
            stack: Vec::new(),
            visited: vec![0; (db.page_count as usize).div_ceil(64)],
            pending_root: Some(root),
            failed: false,
        }
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    fn push(&mut self, n: u32) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(SqliteError::corrupt("the table's b-tree is too deep"));
        }
        // Checked first: a page outside the file has no bit.
        let data = self.db.page(n)?;
        if !first_visit(&mut self.visited, n) {
            return Err(SqliteError::corrupt(format_args!(
                "page {n} appears twice in one b-tree"
            )));
        }
        let start = if n == 1 { 100 } else { 0 };
        let kind = data[start];
        let leaf = match kind {
            0x0d => true,
            0x05 => false,
            0x02 | 0x0a => {
                return Err(SqliteError::corrupt(format_args!(
                    "page {n} is an index page inside a table"
                )));
            }
            k => return Err(SqliteError::corrupt(format_args!("page {n} has type {k}"))),
        };
        let header_len = if leaf { 8 } else { 12 };
        let count = be_u16(&data, start + 3)?;
        let right = if leaf { 0 } else { be_u32(&data, start + 8)? };
        let pointers = start + header_len;
        let first_cell = pointers + 2 * count;
        if first_cell > self.db.usable {
            return Err(SqliteError::corrupt(format_args!(
                "page {n} claims {count} cells"
            )));
        }
        let mut cells = Vec::with_capacity(count);
        for i in 0..count {
            let off = be_u16(&data, pointers + 2 * i)?;
            if off < first_cell || off >= self.db.usable {
                return Err(SqliteError::corrupt(format_args!(
                    "page {n} has a cell outside its content area"
                )));
            }
            cells.push(off);
        }
        self.stack.push(Frame {
            number: n,
            data,
            leaf,
            cells,
            room: self.db.usable - first_cell,
            right,
            next: 0,
        });
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Row>> {
        if let Some(root) = self.pending_root.take() {
            self.push(root)?;
        }
        loop {
            let Some(frame) = self.stack.last_mut() else {
                return Ok(None);
            };
            let i = frame.next;
            frame.next += 1;
            if frame.leaf {
                if let Some(&off) = frame.cells.get(i) {
                    let (rowid, payload) = self.leaf_cell(off)?;
                    return self.row(rowid, &payload).map(Some);
                }
                self.stack.pop();
            } else if let Some(&off) = frame.cells.get(i) {
                let child = be_u32(&frame.data, off)?;
                self.push(child)?;
            } else if i == frame.cells.len() {
                let right = frame.right;
                self.push(right)?;
            } else {
                self.stack.pop();
            }
        }
    }

    /// The rowid and the whole payload of the leaf cell at `off` of the top page.
    fn leaf_cell(&mut self, off: usize) -> Result<(i64, Vec<u8>)> {
        let usable = self.db.usable;
        let Some(frame) = self.stack.last_mut() else {
            return Err(SqliteError("no leaf page to read a cell from".into()));
        };
        let data = &frame.data[..usable];
        let mut pos = off;
        let size = varint(data, &mut pos)?;
        let rowid = varint(data, &mut pos)? as i64;
        if size > MAX_PAYLOAD {
            return Err(SqliteError(format!(
                "row {rowid} is larger than {MAX_PAYLOAD} bytes"
            )));
        }
        let size = size as usize;
        // How much stays on the page (fileformat2, "Cell Payload Overflow Pages").
        let max_local = usable - 35;
        let local = if size <= max_local {
            size
        } else {
            let min_local = (usable - 12) * 32 / 255 - 23;
            let k = min_local + (size - min_local) % (usable - 4);
            if k <= max_local { k } else { min_local }
        };
        // Cells sharing bytes would make one page yield its bytes many times over.
        let cell_len = pos - off + local + if local < size { 4 } else { 0 };
        frame.room = frame.room.checked_sub(cell_len).ok_or_else(|| {
            SqliteError::corrupt(format_args!("the cells of page {} overlap", frame.number))
        })?;
        let mut payload = Vec::with_capacity(size.min(1 << 20));
        payload.extend_from_slice(
            data.get(pos..pos + local).ok_or_else(|| {
                SqliteError::corrupt(format_args!("row {rowid} runs past its page"))
            })?,
        );
        if local < size {
            let mut next = be_u32(data, pos + local)?;
            while payload.len() < size {
                // Each page has one place in the file: an overflow page met before in this
                // scan (in this row's chain, another row's, or the b-tree) is a loop or shared.
                let page = self.db.page(next)?;
                if !first_visit(&mut self.visited, next) {
                    return Err(SqliteError::corrupt(format_args!(
                        "overflow page {next} of row {rowid} is used twice"
                    )));
                }
                let take = (size - payload.len()).min(usable - 4);
                payload.extend_from_slice(&page[4..4 + take]);
                next = be_u32(&page, 0)?;
            }
        }
        Ok((rowid, payload))
    }

    /// Decodes a record into a row.
    fn row(&self, rowid: i64, payload: &[u8]) -> Result<Row> {
        let mut values =
            record::decode(payload, rowid, self.columns.len(), &self.stored, self.alias)?;
        if !self.defaults.is_empty() {
            for &col in self.stored.iter().skip(record::field_count(payload)?) {
                if let Some(default) = self.defaults.get(col) {
                    values[col] = default.clone().map_err(SqliteError)?;
                }
            }
        }
        for (value, real) in values.iter_mut().zip(&self.real) {
            if let (true, Value::Integer(n)) = (real, &value) {
                *value = Value::Real(*n as f64);
            }
        }
        Ok(Row {
            columns: self.columns.clone(),
            values,
            rowid,
        })
    }
}

impl Iterator for Rows<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
