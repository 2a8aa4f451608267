//! What the operator sees of an import: progress on stderr while it runs (a line rewritten in
//! place on a terminal, else plain lines) and the counts the summary is made of. Nothing here
//! holds rows: only counts and the first few reasons.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use super::{SkipKind, Skipped};

/// Skip reasons shown in the summary.
pub(super) const SHOWN_REASONS: usize = 5;
/// How often reading reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What reading found, counted: all the summary needs, without holding the rows.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Rows read, per table.
    pub(super) read: Vec<(String, usize)>,
    /// Rows read so far, in all.
    pub(super) rows: usize,
    /// Bindings to import.
    pub(super) bindings: usize,
    /// Rows skipped, per kind (in the order of [`SkipKind::ALL`]).
    pub(super) skipped: [usize; 4],
    /// The first invalid rows, shown with their reasons.
    pub(super) invalid: Vec<Skipped>,
    /// Things the operator should know.
    pub(super) notes: Vec<String>,
}

impl Tally {
    /// Counts a skipped row; keeps it if it is one of the first invalid ones.
    pub(super) fn skip(&mut self, s: Skipped) {
        if let Some(i) = SkipKind::ALL.iter().position(|k| *k == s.kind) {
            self.skipped[i] += 1;
        }
        if s.kind == SkipKind::Invalid && self.invalid.len() < SHOWN_REASONS {
            self.invalid.push(s);
        }
    }

    /// Rows skipped, of every kind.
    pub(super) fn skipped_rows(&self) -> usize {
        self.skipped.iter().sum()
    }

    /// Rows skipped of one kind.
    pub(super) fn count(&self, kind: SkipKind) -> usize {
        SkipKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.skipped[i])
    }
}

/// Progress on stderr: a line rewritten in place on a terminal, else lines (at most one a
/// second while reading, one per batch while sending).
pub(super) struct Progress {
    /// stderr is a terminal.
    pub(super) tty: bool,
    quiet: bool,
    last: Instant,
    /// A line is open on the terminal (ended by `\r`, not `\n`).
    open: bool,
}

impl Progress {
    pub(super) fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            quiet: false,
            last: Instant::now(),
            open: false,
        }
    }

    #[cfg(test)]
    pub(super) fn quiet() -> Progress {
        Progress {
            quiet: true,
            ..Progress::new()
        }
    }

    /// Shows `line` if a second went by since the last one.
    pub(super) fn tick(&mut self, line: impl FnOnce() -> String) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.show(&line());
        }
    }

    /// Shows `line` now.
    pub(super) fn show(&mut self, line: &str) {
        self.last = Instant::now();
        if self.quiet {
            return;
        }
        if self.tty {
            // Clear what a longer line left.
            eprint!("\r{line}\x1b[K");
            self.open = true;
        } else {
            eprintln!("{line}");
        }
    }

    /// Ends the line open on the terminal, if any.
    pub(super) fn end(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}

/// What the server did with the batches.
#[derive(Default)]
pub(super) struct Sent {
    /// Bindings stored (new, or replacing an older one).
    pub(super) written: u64,
    /// Bindings the server had already, to the same user.
    pub(super) unchanged: u64,
    /// Bindings the server kept because its own is newer.
    pub(super) kept_newer: u64,
    /// Records the server refused.
    pub(super) refused: usize,
    /// The first of them, with the server's reason.
    pub(super) refused_examples: Vec<String>,
}

/// `[#####.....] 12000/30000 bindings` on a terminal, else a line per batch.
pub(super) fn progress_line(done: usize, total: usize, sent: &Sent, tty: bool) -> String {
    let counts = format!(
        "{} new or changed, {} already there, {} kept, {} refused",
        sent.written, sent.unchanged, sent.kept_newer, sent.refused
    );
    if tty {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH)
            .checked_div(total)
            .unwrap_or(WIDTH)
            .min(WIDTH);
        format!(
            "[{}{}] {done}/{total} bindings ({counts})",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled)
        )
    } else {
        format!("sent {done}/{total} bindings ({counts})")
    }
}
