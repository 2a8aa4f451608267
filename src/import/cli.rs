//! `oxisd admin import sydent|mxisd FILE`: reads the database here, as the operator (the server
//! may run as another user and need not see the file), and sends the bindings to the running
//! server's admin API in batches, with a progress bar on stderr and a summary on stdout.
//! Importing again changes nothing: the server keeps a binding it already has for the same user.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::sqlite::Database;
use super::{Mapped, SkipKind, Skipped, mxisd_bindings, sydent_bindings};
use crate::admin::client::Client;
use crate::config::Config;

/// Bindings per request.
pub const DEFAULT_BATCH: usize = 5_000;
/// Skip reasons shown in the summary.
const SHOWN_REASONS: usize = 5;

/// Usage of the import command.
const USAGE: &str =
    "usage: oxisd admin [-c FILE] import sydent|mxisd FILE [--batch-size N] [--dry-run]
    sydent   a sydent database (sydent.db)
    mxisd    an mxisd or ma1sd database (storage.provider.sqlite.database; ma1sd also works)
    --batch-size N   bindings per request (default 5000, at most 20000)
    --dry-run        read and check the file, send nothing";

struct Args<'a> {
    kind: &'a str,
    file: &'a str,
    batch: usize,
    dry_run: bool,
}

fn parse(args: &[String]) -> Result<Args<'_>, String> {
    let mut positional = Vec::new();
    let mut batch = DEFAULT_BATCH;
    let mut dry_run = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dry-run" => dry_run = true,
            "--batch-size" => {
                batch = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=20_000).contains(n))
                    .ok_or("--batch-size needs a number from 1 to 20000")?;
            }
            a if a.starts_with("--") => return Err(format!("unknown option {a}")),
            a => positional.push(a),
        }
    }
    match positional.as_slice() {
        [kind @ ("sydent" | "mxisd" | "ma1sd"), file] => Ok(Args {
            kind,
            file,
            batch,
            dry_run,
        }),
        _ => Err("give the kind of database and its file".into()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads and maps the file.
fn read(kind: &str, file: &Path) -> Result<Mapped, String> {
    let db = Database::open(file).map_err(|e| e.to_string())?;
    let mapped = if kind == "sydent" {
        sydent_bindings(&db, now_ms())
    } else {
        // ma1sd rewrites its hashes at each pepper rotation: the file's last write is when
        // its rows were last true.
        let made = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or_else(now_ms);
        mxisd_bindings(&db, made)
    };
    mapped.map_err(|e| e.to_string())
}

/// What the server did with the batches.
#[derive(Default)]
struct Sent {
    written: u64,
    unchanged: u64,
    kept_newer: u64,
    refused: Vec<String>,
}

/// `\r[#####.....] 12000/30000 bindings` on a terminal, else a line per batch.
fn progress(done: usize, total: usize, tty: bool) {
    if tty {
        const WIDTH: usize = 30;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
        eprint!(
            "\r[{}{}] {done}/{total} bindings",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled)
        );
        if done == total {
            eprintln!();
        }
    } else {
        eprintln!("sent {done}/{total} bindings");
    }
}

fn send(client: &Client, mapped: &Mapped, batch: usize) -> Result<Sent, String> {
    let tty = std::io::stderr().is_terminal();
    let total = mapped.records.len();
    let mut sent = Sent::default();
    let chunks: Vec<_> = mapped.records.chunks(batch).collect();
    // One request even when there is nothing to send: it compacts, and checks the server.
    let count = chunks.len().max(1);
    let mut done = 0;
    for i in 0..count {
        let chunk = chunks.get(i).copied().unwrap_or(&[]);
        let body = json!({"bindings": chunk, "finish": i + 1 == count}).to_string();
        let (status, text) = client.call("POST", "/import/bindings", &[], Some(&body))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            return Err(format!(
                "the server refused batch {} of {count} ({status}): {}{}",
                i + 1,
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
            let index = r["index"].as_u64().unwrap_or(0) as usize;
            let record = chunk.get(index);
            sent.refused.push(format!(
                "{} {}: refused by the server: {}",
                record.map(|r| r.medium.as_str()).unwrap_or("?"),
                record.map(|r| r.address.as_str()).unwrap_or("?"),
                r["reason"].as_str().unwrap_or("")
            ));
        }
        done += chunk.len();
        if total > 0 {
            progress(done, total, tty);
        }
    }
    Ok(sent)
}

fn summary(args: &Args<'_>, mapped: &Mapped, sent: Option<&Sent>, seconds: f64) -> String {
    let mut out = format!("import from {} database {}\n", args.kind, args.file);
    let per_table: Vec<String> = mapped
        .read
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    out += &format!(
        "read:     {} rows{}\n",
        mapped.rows_read(),
        if per_table.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_table.join(", "))
        }
    );
    let refused = sent.map_or(0, |s| s.refused.len());
    let imported = mapped.records.len() - refused;
    match sent {
        Some(s) => {
            out += &format!(
                "imported: {imported} bindings ({} new or changed, {} already there, {} kept because the binding here is newer)\n",
                s.written, s.unchanged, s.kept_newer
            );
        }
        None => out += &format!("imported: 0 bindings ({imported} would be, --dry-run)\n"),
    }
    let kinds = [
        SkipKind::Invalid,
        SkipKind::Expired,
        SkipKind::Superseded,
        SkipKind::Unbound,
    ];
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|k| {
            let n = mapped.skipped.iter().filter(|s| s.kind == *k).count();
            format!("{n} {}", k.label())
        })
        .collect();
    out += &format!(
        "skipped:  {} rows ({}{})\n",
        mapped.skipped.len() + refused,
        by_kind.join(", "),
        if refused > 0 {
            format!(", {refused} refused by the server")
        } else {
            String::new()
        }
    );
    let invalid: Vec<&Skipped> = mapped
        .skipped
        .iter()
        .filter(|s| s.kind == SkipKind::Invalid)
        .collect();
    let mut reasons: Vec<String> = invalid
        .iter()
        .map(|s| format!("{} row {}: {}", s.table, s.rowid, s.reason))
        .collect();
    reasons.extend(sent.into_iter().flat_map(|s| s.refused.iter().cloned()));
    for r in reasons.iter().take(SHOWN_REASONS) {
        out += &format!("  - {r}\n");
    }
    if reasons.len() > SHOWN_REASONS {
        out += &format!("  - ... and {} more\n", reasons.len() - SHOWN_REASONS);
    }
    for note in &mapped.notes {
        out += &format!("note:     {note}\n");
    }
    out += &format!("time:     {seconds:.1} s\n");
    out
}

/// Runs `oxisd admin import ARGS`; returns the exit code.
pub fn run(config: &Config, args: &[String]) -> i32 {
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
    let mapped = match read(args.kind, Path::new(args.file)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("oxisd admin import: {}: {e}", args.file);
            return 1;
        }
    };
    let sent = match &client {
        Some(c) => match send(c, &mapped, args.batch) {
            Ok(s) => Some(s),
            Err(e) => {
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
            &mapped,
            sent.as_ref(),
            started.elapsed().as_secs_f64()
        )
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
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
            "sydent f --frob",
        ] {
            assert!(parse(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_summary_counts_every_row() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sydent.db");
        let mapped = read("sydent", &path).unwrap();
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
