//! Identity stores: where lookups find the Matrix user of a 3PID. Lookups ask the enabled
//! stores in the configured order (`stores.order`) and take the first valid answer.
//!
//! Stores that can list their 3PIDs (`builtin`, `static`, `synapse`) keep them in the store's
//! binding keyspace under their own source name, so hashed (v2) lookups find them through the
//! hash index. Stores that can only answer questions (`rest`) serve plain lookups (v1, and v2
//! with the `none` algorithm).

pub mod local;
pub mod rest;
pub mod static_store;
pub mod synapse;

use std::collections::BTreeMap;

use crate::error::Result;
use crate::service::bindings::VALIDITY_MS;
use crate::store::Store;
use crate::store::bindings::{BindingRecord, Pepper};

/// The bindings a listing store wants: (medium, address) in our normal form -> user id.
pub type Wanted = BTreeMap<(String, String), String>;

/// The 3PIDs a listing store's users claim: a 3PID two users claim is published for neither
/// (logged at warn, naming the store).
pub struct Claims {
    store: &'static str,
    /// `None`: claimed by more than one user.
    found: BTreeMap<(String, String), Option<String>>,
}

impl Claims {
    /// No claims yet, for the store named `store` (in logs).
    pub fn new(store: &'static str) -> Claims {
        Claims {
            store,
            found: BTreeMap::new(),
        }
    }

    /// `mxid` claims (medium, address).
    pub fn claim(&mut self, medium: &str, address: &str, mxid: &str) {
        use std::collections::btree_map::Entry;
        match self.found.entry((medium.to_string(), address.to_string())) {
            Entry::Vacant(slot) => {
                slot.insert(Some(mxid.to_string()));
            }
            Entry::Occupied(mut slot) => {
                if let Some(other) = slot.get()
                    && other != mxid
                {
                    log::warn!(
                        "{} sync: {medium} {address} is on both {other} and {mxid}; not publishing it",
                        self.store
                    );
                    slot.insert(None);
                }
            }
        }
    }

    /// The bindings to keep: each 3PID one user claims.
    pub fn into_wanted(self) -> Wanted {
        self.found
            .into_iter()
            .filter_map(|(k, v)| v.map(|mxid| (k, mxid)))
            .collect()
    }
}

/// What [`replace_source`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replaced {
    /// Bindings written: 3PIDs new to the source, or now bound to another user.
    pub added: usize,
    /// Bindings removed: 3PIDs the source had and no longer wants.
    pub removed: usize,
    /// Bindings that were already right and were left alone.
    pub unchanged: usize,
}

/// Makes the bindings kept under `source` exactly `wanted`, then makes the writes durable:
/// the 3PIDs it no longer wants are removed, and those new or bound to another user are
/// written, valid from `not_before` until [`VALIDITY_MS`] after `now_ms`.
pub fn replace_source(
    store: &Store,
    peppers: &[Pepper],
    source: &str,
    wanted: &Wanted,
    not_before: u64,
    now_ms: u64,
) -> Result<Replaced> {
    let mut replaced = Replaced::default();
    for (medium, address) in store.threepids_of_source(source)? {
        if !wanted.contains_key(&(medium.clone(), address.clone()))
            && store
                .delete_binding(source, &medium, &address, peppers)?
                .is_some()
        {
            replaced.removed += 1;
        }
    }
    for ((medium, address), mxid) in wanted {
        let current = store.binding(medium, address, source)?;
        if current.is_some_and(|b| &b.mxid == mxid) {
            replaced.unchanged += 1;
            continue;
        }
        let record = BindingRecord {
            medium: medium.clone(),
            address: address.clone(),
            mxid: mxid.clone(),
            ts: now_ms,
            not_before,
            not_after: now_ms.saturating_add(VALIDITY_MS),
        };
        store.put_binding(source, &record, peppers)?;
        replaced.added += 1;
    }
    store.durable()?;
    Ok(replaced)
}
use crate::threepid::Medium;

/// One identity store.
pub trait IdentityStore: Send + Sync {
    /// Its name in `stores.order` and in logs.
    fn name(&self) -> &'static str;

    /// True when its 3PIDs are in the binding keyspace (under [`IdentityStore::name`]) and so
    /// in the hash index.
    fn is_local(&self) -> bool;

    /// The binding of (medium, address), if this store has one.
    fn lookup(&self, store: &Store, medium: Medium, address: &str)
    -> Result<Option<BindingRecord>>;

    /// Bindings of many 3PIDs at once, in the same order (`None` where there is none).
    fn bulk_lookup(
        &self,
        store: &Store,
        threepids: &[(Medium, String)],
    ) -> Result<Vec<Option<BindingRecord>>> {
        threepids
            .iter()
            .map(|(m, a)| self.lookup(store, *m, a))
            .collect()
    }
}
