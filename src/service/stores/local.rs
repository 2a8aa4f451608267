//! Stores whose bindings live in our own store: `builtin` (binds made here), and the sources
//! that other stores sync in (`static`, `synapse`). A lookup is one read of the binding
//! keyspace.

use super::IdentityStore;
use crate::error::Result;
use crate::store::Store;
use crate::store::bindings::BindingRecord;
use crate::threepid::Medium;

/// A source in the binding keyspace.
pub struct LocalSource {
    name: &'static str,
}

impl LocalSource {
    /// The source called `name`.
    pub fn new(name: &'static str) -> LocalSource {
        LocalSource { name }
    }
}

impl IdentityStore for LocalSource {
    fn name(&self) -> &'static str {
        self.name
    }

    fn is_local(&self) -> bool {
        true
    }

    fn lookup(
        &self,
        store: &Store,
        medium: Medium,
        address: &str,
    ) -> Result<Option<BindingRecord>> {
        store.binding(medium.as_str(), address, self.name)
    }
}
