//! Sorting more entries than memory should hold, for imports: entries (byte strings, compared
//! as bytes) gather in a buffer of [`BUFFER_BYTES`]; a full buffer is sorted and written to a
//! temporary file (a run), and reading merges the runs. A database that fits in one buffer
//! never touches the disk. Memory stays near `BUFFER_BYTES` plus [`FAN_IN`] read buffers
//! whatever the number of entries; the disk holds each entry once (twice for a moment while
//! more than `FAN_IN` runs are merged into one).
//!
//! Temporary files go to `std::env::temp_dir()` (`TMPDIR`) and are unlinked as soon as they
//! are created, so nothing is left behind if the process dies. It must not be used for
//! anything but imports: it gives no durability.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of entries held in memory before they are sorted and written out.
pub const BUFFER_BYTES: usize = 16 * 1024 * 1024;
/// Runs read at once by a merge; more are first merged into fewer.
pub const FAN_IN: usize = 32;
/// Read buffer of each run during a merge.
const READ_BUFFER: usize = 64 * 1024;

/// A distinct name for each temporary file of this process.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

/// Collects entries; [`Sorter::finish`] sorts them.
pub struct Sorter {
    dir: PathBuf,
    budget: usize,
    /// The entries, one after the other.
    arena: Vec<u8>,
    /// (start, end) of each entry in `arena`.
    spans: Vec<(usize, usize)>,
    runs: Vec<Run>,
}

/// One sorted run on disk: `u32` little-endian length, then the entry, repeated.
pub struct Run {
    file: File,
    len: u64,
}

impl Sorter {
    /// A sorter that spills to `std::env::temp_dir()`.
    pub fn new() -> Sorter {
        Sorter::with(&std::env::temp_dir(), BUFFER_BYTES)
    }

    /// A sorter that spills to `dir` once `budget` bytes of entries are held.
    pub fn with(dir: &Path, budget: usize) -> Sorter {
        Sorter {
            dir: dir.to_path_buf(),
            budget: budget.max(1),
            arena: Vec::new(),
            spans: Vec::new(),
            runs: Vec::new(),
        }
    }

    /// Adds an entry.
    pub fn push(&mut self, entry: &[u8]) -> io::Result<()> {
        if !self.spans.is_empty() && self.arena.len() + entry.len() > self.budget {
            self.spill()?;
        }
        if self.arena.capacity() == 0 {
            // One allocation for the whole buffer: growing by doubling would hold twice it.
            self.arena.reserve_exact(self.budget.min(BUFFER_BYTES));
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(entry);
        self.spans.push((start, self.arena.len()));
        Ok(())
    }

    fn sort_buffer(&mut self) {
        let arena = &self.arena;
        self.spans
            .sort_unstable_by(|a, b| arena[a.0..a.1].cmp(&arena[b.0..b.1]));
    }

    /// Sorts the buffer into a new run and empties it.
    fn spill(&mut self) -> io::Result<()> {
        self.sort_buffer();
        let mut out = RunWriter::create(&self.dir)?;
        for &(a, b) in &self.spans {
            out.write(&self.arena[a..b])?;
        }
        self.runs.push(out.finish()?);
        self.arena.clear();
        self.spans.clear();
        Ok(())
    }

    /// Sorts what was pushed; the result can be read in order any number of times.
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.sort_buffer();
            return Ok(Sorted::Memory {
                arena: self.arena,
                spans: self.spans,
            });
        }
        if !self.spans.is_empty() {
            self.spill()?;
        }
        // Give the buffer back before merging.
        self.arena = Vec::new();
        self.spans = Vec::new();
        let mut runs = self.runs;
        while runs.len() > FAN_IN {
            let rest = runs.split_off(FAN_IN);
            let mut out = RunWriter::create(&self.dir)?;
            let mut merge = Merge::new(&runs)?;
            while let Some(entry) = merge.next_entry()? {
                out.write(&entry)?;
            }
            drop(merge);
            // The merged runs' space is freed here (their files are unlinked already).
            runs = rest;
            runs.push(out.finish()?);
        }
        Ok(Sorted::Runs(runs))
    }
}

impl Default for Sorter {
    fn default() -> Self {
        Sorter::new()
    }
}

/// Writes one run to a new, already unlinked, temporary file.
struct RunWriter {
    out: BufWriter<File>,
    len: u64,
}

impl RunWriter {
    fn create(dir: &Path) -> io::Result<RunWriter> {
        let name = dir.join(format!(
            ".oxisd-import-{}-{}",
            std::process::id(),
            NEXT_FILE.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&name)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                )
            })?;
        std::fs::remove_file(&name)?;
        Ok(RunWriter {
            out: BufWriter::with_capacity(READ_BUFFER, file),
            len: 0,
        })
    }

    fn write(&mut self, entry: &[u8]) -> io::Result<()> {
        let n = u32::try_from(entry.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an entry above 4 GiB"))?;
        self.out.write_all(&n.to_le_bytes())?;
        self.out.write_all(entry)?;
        self.len += 4 + entry.len() as u64;
        Ok(())
    }

    fn finish(self) -> io::Result<Run> {
        let len = self.len;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok(Run { file, len })
    }
}

/// Sorted entries.
pub enum Sorted {
    /// Few enough to stay in memory.
    Memory {
        /// The entries.
        arena: Vec<u8>,
        /// Their spans in `arena`, in order.
        spans: Vec<(usize, usize)>,
    },
    /// Runs on disk, merged as they are read.
    Runs(Vec<Run>),
}

impl Sorted {
    /// Bytes on disk (0 in memory).
    pub fn spilled_bytes(&self) -> u64 {
        match self {
            Sorted::Memory { .. } => 0,
            Sorted::Runs(runs) => runs.iter().map(|r| r.len).sum(),
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> io::Result<Entries<'_>> {
        Ok(match self {
            Sorted::Memory { arena, spans } => Entries::Memory {
                arena,
                spans: spans.iter(),
            },
            Sorted::Runs(runs) => Entries::Runs(Merge::new(runs)?),
        })
    }
}

/// Reads a run through `pread`, so that several readers of one file keep their own place.
struct RunReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RunReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A k-way merge of runs.
pub struct Merge<'a> {
    readers: Vec<BufReader<RunReader<'a>>>,
    /// The next entry of each run that has one; ties go to the lower run.
    heads: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

fn read_entry(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut entry = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut entry)?;
    Ok(Some(entry))
}

impl<'a> Merge<'a> {
    fn new(runs: &'a [Run]) -> io::Result<Merge<'a>> {
        let mut readers: Vec<_> = runs
            .iter()
            .map(|r| {
                BufReader::with_capacity(
                    READ_BUFFER,
                    RunReader {
                        file: &r.file,
                        pos: 0,
                        end: r.len,
                    },
                )
            })
            .collect();
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(e) = read_entry(r)? {
                heads.push(Reverse((e, i)));
            }
        }
        Ok(Merge { readers, heads })
    }

    fn next_entry(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(Reverse((entry, i))) = self.heads.pop() else {
            return Ok(None);
        };
        if let Some(r) = self.readers.get_mut(i)
            && let Some(next) = read_entry(r)?
        {
            self.heads.push(Reverse((next, i)));
        }
        Ok(Some(entry))
    }
}

/// The entries of a [`Sorted`], in order.
pub enum Entries<'a> {
    /// From memory.
    Memory {
        /// The entries.
        arena: &'a [u8],
        /// Their spans, in order.
        spans: std::slice::Iter<'a, (usize, usize)>,
    },
    /// From a merge of runs.
    Runs(Merge<'a>),
}

impl<'a> Entries<'a> {
    /// The next entry, or `None` after the last.
    pub fn next_entry(&mut self) -> io::Result<Option<Cow<'a, [u8]>>> {
        match self {
            Entries::Memory { arena, spans } => Ok(spans
                .next()
                .and_then(|&(a, b)| arena.get(a..b))
                .map(Cow::Borrowed)),
            Entries::Runs(merge) => Ok(merge.next_entry()?.map(Cow::Owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrambled(n: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let k = i.wrapping_mul(2_654_435_761) % n;
                // Variable lengths, shared prefixes and an empty entry.
                let mut e = format!("{}", k % 1000).into_bytes();
                e.extend(std::iter::repeat_n(b'x', (k % 7) as usize));
                e.extend_from_slice(&k.to_be_bytes());
                if k == 0 {
                    e.clear();
                }
                e
            })
            .collect()
    }

    fn sorted_by(sorter: Sorter, input: &[Vec<u8>]) -> (Vec<Vec<u8>>, bool) {
        let mut sorter = sorter;
        for e in input {
            sorter.push(e).unwrap();
        }
        let sorted = sorter.finish().unwrap();
        let spilled = sorted.spilled_bytes() > 0;
        let all = || {
            let mut out = Vec::new();
            let mut entries = sorted.iter().unwrap();
            while let Some(e) = entries.next_entry().unwrap() {
                out.push(e.to_vec());
            }
            out
        };
        // A second reading gives the same.
        let (first, second) = (all(), all());
        assert_eq!(first, second);
        (first, spilled)
    }

    #[test]
    fn entries_come_out_sorted_from_memory_and_from_many_runs() {
        let input = scrambled(20_000);
        let mut expected = input.clone();
        expected.sort();
        let (got, spilled) = sorted_by(Sorter::new(), &input);
        assert!(!spilled);
        assert_eq!(got, expected);
        // About 400 runs of 1 KiB: merged in more than one level.
        let dir = std::env::temp_dir();
        let (got, spilled) = sorted_by(Sorter::with(&dir, 1024), &input);
        assert!(spilled);
        assert_eq!(got, expected);
        // Nothing is left in the directory.
        let prefix = format!(".oxisd-import-{}-", std::process::id());
        let left = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn an_unwritable_directory_is_an_error() {
        let mut s = Sorter::with(Path::new("/nonexistent/dir"), 4);
        s.push(b"abc").unwrap();
        let e = s.push(b"def").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
    }
}
