//! What bulk imports leave on disk (issue 17): their tables are compressed from the start, and
//! compacting them gives the old tables' room back at once, not at the next start.

use std::path::Path;

use super::Store;
use super::bindings::{BindingRecord, Pepper};

/// Bytes of the store's files, the journal aside (fjall allocates it whole).
fn table_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += table_bytes(&path);
        } else if path.extension().is_none_or(|e| e != "jnl") {
            total += meta.len();
        }
    }
    total
}

fn batch(first: u64, n: u64) -> Vec<BindingRecord> {
    (first..first + n)
        .map(|i| BindingRecord {
            medium: "email".into(),
            address: format!("user{i}@bulk.example.org"),
            mxid: format!("@user{i}:bulk.example.org"),
            ts: 1_700_000_000_000 + i,
            not_before: 1_700_000_000_000 + i,
            not_after: 4_800_000_000_000 + i,
        })
        .collect()
}

#[test]
fn bulk_imports_are_compressed_and_compaction_frees_the_tables_it_replaced() {
    let dir = std::env::temp_dir().join(format!("oxisd-store-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pepper = Pepper {
        generation: 1,
        pepper: "pepper".into(),
    };
    let store = Store::open(&dir).unwrap();
    let empty = table_bytes(store.path());
    // The JSON of the records alone: uncompressed, the binding keyspace holds that much (and
    // the keys), the hash and source keyspaces as much again; compressed, all three hold less.
    let mut json = 0;
    for b in 0..10 {
        let records = batch(b * 2_000, 2_000);
        json += records
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap().len() as u64)
            .sum::<u64>();
        store
            .put_bindings("builtin", records, std::slice::from_ref(&pepper))
            .unwrap();
    }
    // Measured once compacted: before, what is on disk depends on how far the background
    // flushes and compactions got (a compaction holds its input and output tables at once).
    store.compact_bindings().unwrap();
    let compacted = table_bytes(store.path());
    let imported = compacted - empty;
    assert!(
        imported < json,
        "{imported} bytes on disk for {json} bytes of records"
    );
    store.close().unwrap();
    drop(store);
    let store = Store::open(&dir).unwrap();
    let reopened = table_bytes(store.path());
    assert!(
        compacted < reopened + reopened / 10,
        "{compacted} bytes after the compaction, {reopened} after a restart"
    );
    assert_eq!(
        store
            .binding("email", "user19999@bulk.example.org", "builtin")
            .unwrap()
            .map(|r| r.mxid),
        Some("@user19999:bulk.example.org".to_string())
    );
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}
