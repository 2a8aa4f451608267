//! What bulk writes (imports) need of fjall beyond ordinary writes: the options of the keyspaces
//! they fill, and getting rid of the tables their compactions replace (issue 17). Only the
//! store's own modules call these.

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use super::{OpenError, Store, describe_open_error};

/// Memtable size of the binding keyspaces, which imports fill in bulk: 2 MiB, with which the
/// import figures of docs/PERFORMANCE.md were measured.
const BULK_MEMTABLE_BYTES: u64 = 2 * 1024 * 1024;

/// Table size that compactions of the bulk keyspaces aim at (fjall's default: 64 MiB).
const BULK_TABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Opens a keyspace that bulk imports fill ([`Store::put_bindings`]), with two options that keep
/// an import's disk use and memory near those of the store it leaves (issue 17: 641 MiB on disk
/// during an import that ends at 100 MiB):
/// - tables are compressed (LZ4) at every level: fjall's default compresses from level 2 only,
///   but an import's tables land in levels 0 and 1, and uncompressed they took about four
///   times the room of the same bindings once compacted;
/// - compactions aim at 8 MiB tables, and so a first level of 32 MiB. Each import batch adds a
///   run of hash entries spread over the whole key space; with fjall's 64 MiB tables the first
///   level holds 256 MiB, so millions of bindings sat in one level that every fourth batch
///   rewrote whole. Importing 3 000 000 sydent rows took 115 - 147 s of server CPU, 58 - 67
///   MiB of memory and 1.9 - 2.1 times the final store on disk; with 8 MiB tables, 101 s,
///   30 MiB and 1.6 times.
///
/// fjall records a keyspace's options when it creates it: stores created by earlier builds
/// keep its defaults.
pub(super) fn open_bulk_keyspace(
    db: &Database,
    name: &str,
) -> std::result::Result<Keyspace, OpenError> {
    use fjall::CompressionType::Lz4;
    let leveled = fjall::compaction::Leveled::default().with_table_target_size(BULK_TABLE_BYTES);
    db.keyspace(name, || {
        KeyspaceCreateOptions::default()
            .max_memtable_size(BULK_MEMTABLE_BYTES)
            .data_block_compression_policy(fjall::config::CompressionPolicy::all(Lz4))
            .compaction_strategy(std::sync::Arc::new(leveled))
    })
    .map_err(|e| OpenError(describe_open_error(&format!("keyspace {name}"), &e)))
}

impl Store {
    /// Waits until no background compaction runs (seen twice 50 ms apart, as a worker may be
    /// about to start one), or at most `limit`.
    pub(super) fn wait_for_compactions(&self, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut idle = 0;
        while idle < 2 && std::time::Instant::now() < deadline {
            idle = if self.db.active_compactions() == 0 {
                idle + 1
            } else {
                0
            };
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
