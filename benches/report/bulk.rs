//! The bulk part of the benchmark page: server CPU per address of v1 bulk lookups and v2
//! lookups at 500 to 10 000 addresses per request, one client, on the lookup part's store.

use std::sync::Arc;

use oxisd::crypto::lookup_hash::sha256_lookup_hash;

use super::TOKEN;
use super::common::{self, Server, cpu_seconds};

/// Batch sizes of the per-address CPU figures.
const BATCHES: [u64; 4] = [500, 1_000, 5_000, 10_000];

/// Microseconds of server CPU per address, one keep-alive client sending `bodies` (each of
/// `batch` addresses) in turn for `seconds`.
fn cpu_per_address(
    server: &Server,
    seconds: u64,
    path: &'static str,
    token: Option<&'static str>,
    batch: u64,
    bodies: Vec<String>,
) -> f64 {
    let bodies = Arc::new(bodies);
    let before = cpu_seconds(server.child.id());
    let load = common::load(
        server.addr,
        1,
        seconds,
        token,
        Arc::new(move |_, n| {
            let body = bodies[n as usize % bodies.len()].clone();
            ("POST", path.to_string(), body)
        }),
    );
    let cpu = cpu_seconds(server.child.id()) - before;
    cpu * 1e6 / (load.done * batch) as f64
}

/// Server CPU per address of v1 bulk lookups and v2 sha256 lookups at each size of
/// [`BATCHES`], one client; half of the addresses are bound.
pub fn per_address(
    notes: &mut Vec<String>,
    server: &Server,
    seconds: u64,
    bindings: u64,
    pepper: &Arc<String>,
) {
    let address = |batch: u64, i: u64, k: u64| {
        let x = (i * batch + k).wrapping_mul(2_654_435_761) % (2 * bindings);
        format!("user{x}@bench.example.org")
    };
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for batch in BATCHES {
        eprintln!("  server CPU per address, {batch} addresses per request");
        let bodies = (0..8)
            .map(|i| {
                let pairs: Vec<[String; 2]> = (0..batch)
                    .map(|k| ["email".to_string(), address(batch, i, k)])
                    .collect();
                serde_json::json!({ "threepids": pairs }).to_string()
            })
            .collect();
        v1.push(cpu_per_address(
            server,
            seconds,
            "/_matrix/identity/api/v1/bulk_lookup",
            None,
            batch,
            bodies,
        ));
        let bodies = (0..8)
            .map(|i| {
                let hashes: Vec<String> = (0..batch)
                    .map(|k| sha256_lookup_hash(&address(batch, i, k), "email", pepper))
                    .collect();
                serde_json::json!({"algorithm": "sha256", "pepper": **pepper, "addresses": hashes})
                    .to_string()
            })
            .collect();
        v2.push(cpu_per_address(
            server,
            seconds,
            "/_matrix/identity/v2/lookup",
            Some(TOKEN),
            batch,
            bodies,
        ));
    }
    let figures = |f: &[f64]| {
        f.iter()
            .map(|us| format!("{us:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let sizes = BATCHES.map(|b| b.to_string()).join(" / ");
    notes.push(format!(
        "server CPU per address, 1 client, {bindings} bindings, at {sizes} addresses per request: v1 bulk_lookup {} µs, v2 lookup (sha256) {} µs",
        figures(&v1),
        figures(&v2)
    ));
}
