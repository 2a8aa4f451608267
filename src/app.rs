//! The application: configuration, store and keys, built once at start and passed to every
//! handler as `&App`.

use std::time::Instant;

use crate::config::Config;
use crate::keys::KeyRing;
use crate::store::Store;

/// Everything a handler may use.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// The long-term signing keys.
    pub keys: KeyRing,
    /// When the server started.
    pub started: Instant,
}

impl App {
    /// Opens the store and loads (or creates) the signing key.
    pub fn build(config: Config) -> Result<App, String> {
        let store = Store::open(config.data_dir()).map_err(|e| e.to_string())?;
        let key_path = config.key_path();
        let (keys, created) = KeyRing::load_or_generate(&key_path, &config.key.id)?;
        if created {
            log::info!(
                "generated a new signing key {} in {}",
                keys.signing().id(),
                key_path.display()
            );
        }
        Ok(App {
            config,
            store,
            keys,
            started: Instant::now(),
        })
    }
}
