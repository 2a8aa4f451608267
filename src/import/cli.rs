//! `oxisd admin import sydent|mxisd FILE`: reads the database here, as the operator (the server
//! may run as another user and need not see the file), and sends the bindings to the running
//! server's admin API in batches, with progress on stderr and a summary on stdout.
//! Importing again changes nothing: the server keeps a binding it already has for the same user.
//!
//! Memory stays bounded whatever the size of the file: the rows are read once and sorted by 3PID
//! (on disk, in `TMPDIR`, when there are many; see `super::spill`), then the sorted rows are
//! read twice: once to count what will be imported (so progress can show how far it is), once to
//! send it, one batch at a time.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::report::{Progress, SHOWN_REASONS, Sent, Tally, progress_line};
use super::sqlite::Database;
use super::{Candidates, Item, Seen, SkipKind, read_mxisd, read_sydent};
use crate::admin::client::{Args as AdminArgs, Client};
use crate::config::Config;
use crate::store::bindings::BindingRecord;
use crate::util::time::{epoch_ms, now_ms};

/// Bindings per request. Large batches cost the server less (for 1 000 000 bindings, 25 s of
/// server CPU in batches of 5 000, 11 s in batches of 20 000): fewer ingestions, fewer runs for
/// its compactions to merge.
pub const DEFAULT_BATCH: usize = 20_000;
/// Most bytes of bindings in one request, half the admin listener's limit on its body (20 000
/// bindings of the longest addresses and user ids would pass it).
const MAX_BATCH_BYTES: usize = crate::http::routes::MAX_IMPORT_BODY / 2;
/// The JSON of a binding besides its three strings (field names, quotes, three times).
const RECORD_OVERHEAD: usize = 128;

/// Usage of the import command.
const USAGE: &str =
    "usage: oxisd admin [-c FILE] import sydent|mxisd FILE [--batch-size N] [--dry-run]
    sydent   a sydent database (sydent.db)
    mxisd    an mxisd or ma1sd database (storage.provider.sqlite.database; ma1sd also works)
    --batch-size N   bindings per request (default and most 20000; 4 MiB at most)
    --dry-run        read and check the file, send nothing
Large databases are sorted with temporary files in $TMPDIR (about 100 bytes per row).";

struct Args<'a> {
    kind: &'a str,
    file: &'a str,
    batch: usize,
    dry_run: bool,
}

/// The import's arguments from those of `admin` (whose first word is `import`).
fn parse(args: &AdminArgs) -> Result<Args<'_>, String> {
    args.only("import", &["--batch-size", "--dry-run"])?;
    let batch = match &args.batch_size {
        None => DEFAULT_BATCH,
        Some(n) => n
            .parse()
            .ok()
            .filter(|n| (1..=20_000).contains(n))
            .ok_or("--batch-size needs a number from 1 to 20000")?,
    };
    match args.words.get(1..).unwrap_or_default() {
        [kind, file] if matches!(kind.as_str(), "sydent" | "mxisd" | "ma1sd") => Ok(Args {
            kind,
            file,
            batch,
            dry_run: args.dry_run,
        }),
        _ => Err("give the kind of database and its file".into()),
    }
}

/// Reads the file and counts what it holds: the sorted candidates and the tally.
fn scan(kind: &str, file: &Path, progress: &mut Progress) -> Result<(Candidates, Tally), String> {
    let db = Database::open(file).map_err(|e| e.to_string())?;
    let mut tally = Tally::default();
    let mut watch = |seen: Seen<'_>| match seen {
        Seen::Row(_) => {
            tally.rows += 1;
            if tally.rows % 1024 == 0 {
                progress.tick(|| {
                    format!(
                        "reading: {} rows, {} skipped",
                        tally.rows,
                        tally.skipped_rows()
                    )
                });
            }
        }
        Seen::Skipped(s) => tally.skip(s),
    };
    let candidates = if kind == "sydent" {
        read_sydent(&db, now_ms(), &mut watch)
    } else {
        // ma1sd rewrites its hashes at each pepper rotation: the file's last write is when
        // its rows were last true.
        let made = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .map(epoch_ms)
            .unwrap_or_else(now_ms);
        read_mxisd(&db, made, &mut watch)
    }
    .map_err(|e| e.to_string())?;
    for item in candidates.items().map_err(|e| e.to_string())? {
        match item.map_err(|e| e.to_string())? {
            Item::Binding(_) => tally.bindings += 1,
            Item::Skipped(s) => tally.skip(s),
        }
    }
    tally.read = candidates.read.clone();
    tally.notes = candidates.notes.clone();
    let spilled = candidates.spilled_bytes();
    progress.show(&format!(
        "read {} rows: {} bindings to import, {} rows skipped{}",
        tally.rows,
        tally.bindings,
        tally.skipped_rows(),
        if spilled > 0 {
            format!(
                " (sorted with {} MiB of temporary files in {})",
                spilled.div_ceil(1024 * 1024),
                std::env::temp_dir().display()
            )
        } else {
            String::new()
        }
    ));
    progress.end();
    Ok((candidates, tally))
}

/// The body of one request.
#[derive(Serialize)]
struct Batch<'a> {
    bindings: &'a [BindingRecord],
    finish: bool,
}

/// Sends the bindings of `candidates` (`total` of them) in batches of `batch`, or of
/// [`MAX_BATCH_BYTES`] when that comes first.
fn send(
    client: &Client,
    candidates: &Candidates,
    total: usize,
    batch: usize,
    progress: &mut Progress,
) -> Result<Sent, String> {
    let mut sent = Sent::default();
    let mut number = 0;
    let mut done = 0;
    let mut post = |chunk: &[BindingRecord], finish: bool| -> Result<(), String> {
        number += 1;
        let body = serde_json::to_string(&Batch {
            bindings: chunk,
            finish,
        })
        .map_err(|e| e.to_string())?;
        let (status, text) = client.call("POST", "/import/bindings", &[], Some(&body))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            return Err(format!(
                "the server refused batch {number} ({status}): {}{}",
                answer["error"].as_str().unwrap_or(&text),
                if done > 0 {
                    format!("; the first {done} bindings are stored, and importing again is safe")
                } else {
                    String::new()
                }
            ));
        }
        let n = |k: &str| answer[k].as_u64().unwrap_or(0);
        sent.written += n("written");
        sent.unchanged += n("unchanged");
        sent.kept_newer += n("kept_newer");
        for r in answer["rejected"].as_array().into_iter().flatten() {
            sent.refused += 1;
            if sent.refused_examples.len() < SHOWN_REASONS {
                let record = chunk.get(r["index"].as_u64().unwrap_or(0) as usize);
                sent.refused_examples.push(format!(
                    "{} {}: refused by the server: {}",
                    record.map(|r| r.medium.as_str()).unwrap_or("?"),
                    record.map(|r| r.address.as_str()).unwrap_or("?"),
                    r["reason"].as_str().unwrap_or("")
                ));
            }
        }
        done += chunk.len();
        if total > 0 {
            progress.show(&progress_line(done, total, &sent, progress.tty));
        }
        Ok(())
    };
    let mut chunk = Vec::with_capacity(batch);
    let mut bytes = 0;
    let mut queued = 0;
    let mut finished = false;
    for item in candidates.items().map_err(|e| e.to_string())? {
        if let Item::Binding(r) = item.map_err(|e| e.to_string())? {
            let size = r.medium.len() + r.address.len() + r.mxid.len() + RECORD_OVERHEAD;
            if !chunk.is_empty() && bytes + size > MAX_BATCH_BYTES {
                post(&chunk, false)?;
                chunk.clear();
                bytes = 0;
            }
            chunk.push(r);
            bytes += size;
            queued += 1;
            if chunk.len() == batch {
                finished = queued >= total;
                post(&chunk, finished)?;
                chunk.clear();
                bytes = 0;
            }
        }
    }
    // The last batch compacts the server's tables; one is sent even when there is nothing to
    // import: it checks the server.
    if !finished {
        post(&chunk, true)?;
    }
    progress.end();
    Ok(sent)
}

fn summary(args: &Args<'_>, tally: &Tally, sent: Option<&Sent>, seconds: f64) -> String {
    let mut out = format!("import from {} database {}\n", args.kind, args.file);
    let per_table: Vec<String> = tally.read.iter().map(|(t, n)| format!("{t} {n}")).collect();
    out += &format!(
        "read:     {} rows{}\n",
        tally.read.iter().map(|(_, n)| n).sum::<usize>(),
        if per_table.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_table.join(", "))
        }
    );
    let refused = sent.map_or(0, |s| s.refused);
    let imported = tally.bindings.saturating_sub(refused);
    match sent {
        Some(s) => {
            out += &format!(
                "imported: {imported} bindings ({} new or changed, {} already there, {} kept because the binding here is newer)\n",
                s.written, s.unchanged, s.kept_newer
            );
        }
        None => out += &format!("imported: 0 bindings ({imported} would be, --dry-run)\n"),
    }
    let by_kind: Vec<String> = SkipKind::ALL
        .iter()
        .map(|k| format!("{} {}", tally.count(*k), k.label()))
        .collect();
    out += &format!(
        "skipped:  {} rows ({}{})\n",
        tally.skipped_rows() + refused,
        by_kind.join(", "),
        if refused > 0 {
            format!(", {refused} refused by the server")
        } else {
            String::new()
        }
    );
    let reasons = tally
        .invalid
        .iter()
        .map(|s| format!("{} row {}: {}", s.table, s.rowid, s.reason))
        .chain(
            sent.into_iter()
                .flat_map(|s| s.refused_examples.iter().cloned()),
        );
    for r in reasons.take(SHOWN_REASONS) {
        out += &format!("  - {r}\n");
    }
    let all_reasons = tally.count(SkipKind::Invalid) + refused;
    if all_reasons > SHOWN_REASONS {
        out += &format!("  - ... and {} more\n", all_reasons - SHOWN_REASONS);
    }
    for note in &tally.notes {
        out += &format!("note:     {note}\n");
    }
    out += &format!("time:     {seconds:.1} s\n");
    out
}

/// Runs `oxisd admin import ARGS`; returns the exit code.
pub fn run(config: &Config, args: &AdminArgs) -> i32 {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("oxisd admin import: {e}\n{USAGE}");
            return 2;
        }
    };
    let started = Instant::now();
    let client = if args.dry_run {
        None
    } else {
        // Before reading a large file: is the server there?
        let checked =
            Client::new(config).and_then(|c| match c.call("GET", "/stats", &[], None)? {
                (200, _) => Ok(c),
                (status, body) => Err(format!("the admin listener answered {status}: {body}")),
            });
        match checked {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("oxisd admin import: {e}");
                return 1;
            }
        }
    };
    let mut progress = Progress::new();
    let (candidates, tally) = match scan(args.kind, Path::new(args.file), &mut progress) {
        Ok(c) => c,
        Err(e) => {
            progress.end();
            eprintln!("oxisd admin import: {}: {e}", args.file);
            return 1;
        }
    };
    let sent = match &client {
        Some(c) => match send(c, &candidates, tally.bindings, args.batch, &mut progress) {
            Ok(s) => Some(s),
            Err(e) => {
                progress.end();
                eprintln!("oxisd admin import: {e}");
                return 1;
            }
        },
        None => None,
    };
    print!(
        "{}",
        summary(
            &args,
            &tally,
            sent.as_ref(),
            started.elapsed().as_secs_f64()
        )
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> AdminArgs {
        let mut parser = lexopt::Parser::from_args(format!("import {s}").split_whitespace());
        crate::admin::client::parse_args(&mut parser).unwrap()
    }

    #[test]
    fn arguments() {
        let w = words("sydent /x/sydent.db --batch-size 10");
        let a = parse(&w).unwrap();
        assert_eq!(
            (a.kind, a.file, a.batch, a.dry_run),
            ("sydent", "/x/sydent.db", 10, false)
        );
        let w = words("--dry-run ma1sd f");
        assert!(parse(&w).unwrap().dry_run);
        for bad in [
            "",
            "sydent",
            "oracle f",
            "sydent f --batch-size 0",
            "sydent f --limit 3",
            "sydent f extra",
        ] {
            assert!(parse(&words(bad)).is_err(), "{bad}");
        }
        let w = words("--batch-size=7 mxisd f");
        assert_eq!(parse(&w).unwrap().batch, 7);
    }

    #[test]
    fn the_summary_counts_every_row() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sydent.db");
        let (_, mapped) = scan("sydent", &path, &mut Progress::quiet()).unwrap();
        let w = words("sydent f");
        let args = parse(&w).unwrap();
        let sent = Sent {
            written: 2005,
            ..Sent::default()
        };
        let text = summary(&args, &mapped, Some(&sent), 0.25);
        assert!(text.contains("read:     2013 rows (local_threepid_associations 2006, global_threepid_associations 7)"), "{text}");
        assert!(
            text.contains("imported: 2005 bindings (2005 new or changed, 0 already there"),
            "{text}"
        );
        assert!(
            text.contains("skipped:  8 rows (3 invalid, 1 expired, 3 superseded, 1 unbound)"),
            "{text}"
        );
        assert!(
            text.contains("time:     0.2 s") || text.contains("time:     0.3 s"),
            "{text}"
        );
    }
}
