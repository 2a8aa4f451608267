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

use crate::error::Result;
use crate::store::Store;
use crate::store::bindings::BindingRecord;
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
