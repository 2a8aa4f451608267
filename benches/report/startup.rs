//! The startup part of the benchmark page: start-up to the first answer after floods of
//! requestTokens, stopped with SIGTERM and with SIGKILL.

use super::common::{self, env_num};
use super::{mib, part_dir, request_tokens, write_config_with};

/// Start-up to the first answer after a flood of requestTokens (8 clients, log-only notifier):
/// stopped with SIGTERM (memtables written out at shutdown), then after a second flood killed
/// with SIGKILL. fjall replays its whole active journal at every open and only rotates it past
/// 64 MB, so both include that replay.
pub fn startup_after_flood(notes: &mut Vec<String>) {
    let total = env_num("OXISD_BENCH_FLOOD", 50_000);
    eprintln!("startup: after floods of {total} requestTokens");
    let dir = part_dir("startup");
    let config = write_config_with(&dir, serde_json::json!({}));
    let data = dir.join("data");
    let server = common::start(&config);
    let took = common::flood(server.addr, 8, total, request_tokens("sigterm"));
    let flooded = common::disk_use(&data);
    drop(server);
    let server = common::start(&config);
    let after_term = server.started_in;
    let took_again = common::flood(server.addr, 8, total, request_tokens("sigkill"));
    let flooded_again = common::disk_use(&data);
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // Reaped already: no SIGTERM to a pid that may be reused.
    std::mem::forget(server);
    let server = common::start(&config);
    let after_kill = server.started_in;
    notes.push(format!(
        "start-up to the first answer after {total} requestTokens (8 clients, {:.1} s; journal {:.1} MiB of {:.1} MiB on disk) and SIGTERM: {:.0} ms; after {total} more ({:.1} s; journal {:.1} MiB of {:.1} MiB) and SIGKILL: {:.0} ms",
        took.as_secs_f64(),
        mib(flooded.1),
        mib(flooded.0),
        after_term.as_secs_f64() * 1000.0,
        took_again.as_secs_f64(),
        mib(flooded_again.1),
        mib(flooded_again.0),
        after_kill.as_secs_f64() * 1000.0
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
