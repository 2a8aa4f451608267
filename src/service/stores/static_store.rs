//! The `static` store: fixed 3PID -> user mappings from `stores.static.mappings` (mxisd's memory
//! store). They are written into the binding keyspace under the source `static` at start, and
//! mappings removed from the config are removed from the store, so hashed lookups find exactly
//! what the config says.

use crate::config::StaticMapping;
use crate::error::Result;
use crate::service::bindings::{check_user_id, normalise_threepid};
use crate::store::Store;
use crate::store::bindings::Pepper;

use super::{Wanted, replace_source};

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
    let mut wanted = Wanted::new();
    let mut valid = 0;
    for m in mappings {
        match (
            normalise_threepid(&m.medium, &m.address),
            check_user_id(&m.mxid),
        ) {
            (Ok((medium, address)), Ok(_)) => {
                // A 3PID mapped twice takes the later mapping.
                wanted.insert((medium.as_str().to_string(), address), m.mxid.clone());
                valid += 1;
            }
            _ => log::warn!(
                "stores.static.mappings: skipping {} {} -> {}: not a valid 3PID and user id",
                m.medium,
                m.address,
                m.mxid
            ),
        }
    }
    replace_source(store, peppers, SOURCE, &wanted, 0, now_ms)?;
    Ok(valid)
}
