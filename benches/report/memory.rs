//! The memory part of the benchmark page: RSS during an 8-client requestToken load and 15,
//! 30 and 60 s after it.

use std::time::{Duration, Instant};

use super::common::{self, rss_mib};
use super::{PeakSampler, part_dir, request_tokens, write_config_with};

/// Peak RSS during 8 clients of requestToken (log-only notifier) for `seconds`, sampled every
/// 100 ms and as VmHWM; then RSS 15, 30 and 60 s after the load stopped (the maintenance task
/// writes idle memtables out and hands freed memory back on its ~10 s tick).
pub fn memory_after_load(notes: &mut Vec<String>, seconds: u64) {
    eprintln!("memory: RSS during and after an 8-client requestToken load");
    let dir = part_dir("memory");
    let config = write_config_with(&dir, serde_json::json!({}));
    let server = common::start(&config);
    let pid = server.child.id();
    let idle = rss_mib(pid);
    let sampler = PeakSampler::start(move || (rss_mib(pid) * 10.0) as u64);
    let load = common::load(server.addr, 8, seconds * 2, None, request_tokens("mem"));
    let peak = sampler.stop();
    let stopped = Instant::now();
    let mut after = Vec::new();
    for at in [15, 30, 60] {
        std::thread::sleep(Duration::from_secs(at).saturating_sub(stopped.elapsed()));
        after.push(format!("{:.1} MiB at {at} s", rss_mib(pid)));
    }
    notes.push(format!(
        "RSS with 8 clients of requestToken ({} sessions in {} s): {idle:.1} MiB idle before, peak {:.1} MiB sampled ({:.1} MiB VmHWM); after the load: {}",
        load.done,
        seconds * 2,
        peak as f64 / 10.0,
        common::peak_rss_mib(pid),
        after.join(", ")
    ));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
