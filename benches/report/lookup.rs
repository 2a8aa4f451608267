//! The lookup part of the benchmark page: a store of `OXISD_BENCH_BINDINGS` bindings
//! (ingested, then compacted), start-up and idle RSS with it, and v2 lookups of 1 000 hashes
//! under load; the per-address figures of the same store are `bulk.rs`'s.

use std::sync::Arc;
use std::time::Instant;

use oxisd::service::pepper::Peppers;
use oxisd::store::Store;
use oxisd::store::accounts::AccountRecord;
use oxisd::store::bindings::BindingRecord;

use super::common::{self, Server, rss_mib};
use super::{
    PeakSampler, Row, TOKEN, bulk, measure, note_start, part_dir, v2_lookup_bodies, v2_lookups,
    wanted, write_config,
};

/// Lookups against a store of `bindings` bindings: the v2 load (`lookup`), the CPU per address
/// of bulk and v2 lookups (`bulk`).
pub fn lookups(rows: &mut Vec<Row>, notes: &mut Vec<String>, seconds: u64, bindings: u64) {
    eprintln!("lookups against {bindings} bindings");
    let dir = part_dir("lookup");
    let config = write_config(&dir, None);
    // A server's first start makes the store and its signing key (a used store without its
    // key refuses to start), as on a real box before an import.
    drop(common::start(&config));
    let pepper = {
        let store = Store::open(&dir.join("data")).unwrap();
        let peppers = Peppers::load_or_create(&store).unwrap();
        let now = 1_795_000_000_000u64;
        let started = Instant::now();
        store
            .put_bindings(
                "builtin",
                (0..bindings).map(|i| BindingRecord {
                    medium: "email".into(),
                    address: format!("user{i}@bench.example.org"),
                    mxid: format!("@user{i}:bench.example.org"),
                    ts: now,
                    not_before: now,
                    not_after: now + 100 * 365 * 24 * 3600 * 1000,
                }),
                &peppers.for_writes().all(),
            )
            .unwrap();
        store.compact_bindings().unwrap();
        notes.push(format!(
            "import of {bindings} bindings (ingestion, then compaction): {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        store
            .put_token(
                TOKEN,
                &AccountRecord {
                    user_id: "@bench:bench.test".into(),
                    created_ms: now,
                },
            )
            .unwrap();
        store.durable().unwrap();
        let pepper = peppers.current().pepper;
        store.close().unwrap();
        Arc::new(pepper)
    };
    let server = common::start(&config);
    note_start(
        notes,
        &server,
        &format!("start-up to the first answer with {bindings} bindings"),
        &format!("idle RSS with {bindings} bindings"),
    );
    if wanted("lookup") {
        v2_load(rows, notes, &server, seconds, bindings, &pepper);
    }
    if wanted("bulk") {
        bulk::per_address(notes, &server, seconds, bindings, &pepper);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// v2 lookups of 1 000 hashes at 1 and 8 clients, and the peak RSS meanwhile.
fn v2_load(
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
    server: &Server,
    seconds: u64,
    bindings: u64,
    pepper: &Arc<String>,
) {
    let bodies = v2_lookup_bodies(pepper, bindings, |x| {
        ("email", format!("user{x}@bench.example.org"))
    });
    let pid = server.child.id();
    let sampler = PeakSampler::start(move || (rss_mib(pid) * 10.0) as u64);
    measure(
        rows,
        server,
        &format!("v2 lookup, 1 000 hashes, {bindings} bindings"),
        seconds,
        Some(TOKEN),
        v2_lookups(bodies),
    );
    notes.push(format!(
        "peak RSS under the lookup load: {:.1} MiB",
        sampler.stop() as f64 / 10.0
    ));
}
