//! The sweep part of the benchmark page: the data directory's size before a flood of
//! sessions, after it, and once they expired and were swept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common;
use super::{V1, mib, part_dir, write_config_with};

/// The data directory's size before a flood of 5 000 sessions, after it, and once they
/// expired (`session.ttl: 2`, removed two lifetimes after creation) and the sweeper removed
/// them and compacted the session tables.
pub fn size_after_sweep(notes: &mut Vec<String>) {
    const FLOOD: u64 = 5_000;
    eprintln!("sweep: store size around a flood of {FLOOD} sessions");
    let dir = part_dir("sweep");
    let config = write_config_with(
        &dir,
        serde_json::json!({"session": {"ttl": 2}, "logging": {"level": "info"}}),
    );
    let data = dir.join("data");
    let server = common::start(&config);
    let show = |(all, journal): (u64, u64)| {
        format!(
            "{:.2} MiB ({:.2} MiB without the journal)",
            mib(all),
            mib(all - journal)
        )
    };
    let before = common::disk_use(&data);
    // A long next_link makes each record about 1.5 kB, so the flood outgrows a memtable.
    let took = common::flood(
        server.addr,
        8,
        FLOOD,
        Arc::new(|c, n| {
            (
                "POST",
                format!("{V1}/validate/email/requestToken"),
                format!(
                    r#"{{"client_secret":"sweep{c}x{n}","email":"sweep{c}x{n}@bench.test","send_attempt":1,"next_link":"https://app.bench.test/done?{}"}}"#,
                    "x".repeat(1200)
                ),
            )
        }),
    );
    let flooded = common::disk_use(&data);
    // Expired 4 s after creation, swept on the next 1 s tick, then compacted: wait until the
    // size without the journal stops falling (at most 30 s).
    let started = Instant::now();
    let mut last = flooded;
    let mut steady = 0;
    while started.elapsed() < Duration::from_secs(30) && steady < 8 {
        std::thread::sleep(Duration::from_millis(500));
        let now = common::disk_use(&data);
        if now.0 - now.1 < last.0 - last.1 || started.elapsed() < Duration::from_secs(6) {
            steady = 0;
        } else {
            steady += 1;
        }
        last = now;
    }
    notes.push(format!(
        "data directory around a flood of {FLOOD} sessions of 1.5 kB ({:.1} s, session.ttl 2 s): {} before, {} after the flood, {} once they expired and were swept ({:.0} s later)",
        took.as_secs_f64(),
        show(before),
        show(flooded),
        show(last),
        started.elapsed().as_secs_f64()
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
