//! The `static` store: fixed 3PID -> user mappings from `stores.static.mappings` (mxisd's memory
//! store). They are written into the binding keyspace under the source `static` at start, and
//! mappings removed from the config are removed from the store, so hashed lookups find exactly
//! what the config says.

use crate::config::StaticMapping;
use crate::error::Result;
use crate::service::bindings::{check_user_id, normalise_threepid};
use crate::store::Store;
use crate::store::bindings::{BindingRecord, Pepper};

/// The source name of the static store.
pub const SOURCE: &str = "static";

/// Makes the `static` source hold exactly `mappings`. Invalid mappings are skipped with a
/// warning. Returns how many mappings are in effect.
pub fn sync(
    store: &Store,
    peppers: &[Pepper],
    mappings: &[StaticMapping],
    now_ms: u64,
) -> Result<usize> {
    let mut wanted = Vec::with_capacity(mappings.len());
    for m in mappings {
        match (
            normalise_threepid(&m.medium, &m.address),
            check_user_id(&m.mxid),
        ) {
            (Ok((medium, address)), Ok(_)) => {
                wanted.push((medium.as_str().to_string(), address, m.mxid.clone()))
            }
            _ => log::warn!(
                "stores.static.mappings: skipping {} {} -> {}: not a valid 3PID and user id",
                m.medium,
                m.address,
                m.mxid
            ),
        }
    }
    for (medium, address) in store.threepids_of_source(SOURCE)? {
        if !wanted.iter().any(|(m, a, _)| *m == medium && *a == address) {
            store.delete_binding(SOURCE, &medium, &address, peppers)?;
        }
    }
    for (medium, address, mxid) in &wanted {
        let current = store.binding(medium, address, SOURCE)?;
        if current.as_ref().is_some_and(|b| &b.mxid == mxid) {
            continue;
        }
        let record = BindingRecord {
            medium: medium.clone(),
            address: address.clone(),
            mxid: mxid.clone(),
            ts: now_ms,
            not_before: 0,
            not_after: now_ms.saturating_add(crate::service::bindings::VALIDITY_MS),
        };
        store.put_binding(SOURCE, &record, peppers)?;
    }
    store.durable()?;
    Ok(wanted.len())
}
