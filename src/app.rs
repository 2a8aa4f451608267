//! The application: configuration, store, keys, notifier, services and views, built once at
//! start and passed to every handler as `&App`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::homeserver::HomeserverClient;
use crate::keys::KeyRing;
use crate::notify::Notifier;
use crate::service::sessions::Sessions;
use crate::service::terms::Terms;
use crate::store::Store;
use crate::views::Views;

/// Everything a handler may use.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The store.
    pub store: Store,
    /// The long-term signing keys.
    pub keys: KeyRing,
    /// Renders and delivers notifications.
    pub notifier: Notifier,
    /// 3PID validation sessions.
    pub sessions: Sessions,
    /// The web pages.
    pub views: Views,
    /// Outbound requests to homeservers.
    pub homeserver: HomeserverClient,
    /// Terms of service.
    pub terms: Terms,
    /// When the server started.
    pub started: Instant,
}

impl App {
    /// Opens the store, loads (or creates) the signing key, loads templates and views.
    /// Errors say what to fix, naming the config key where there is one.
    pub fn build(config: Config) -> Result<App, String> {
        let notifier = Notifier::new(&config)?;
        let brand_name = config.matrix.domain.clone().unwrap_or_default();
        let views = Views::load(&config.view, &brand_name, config.server.public_url())?;
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
        let sessions = Sessions::new(&config);
        let homeserver = HomeserverClient::new(&config.outbound)?;
        if config.outbound.insecure_skip_tls_verify {
            log::warn!(
                "outbound.insecureSkipTlsVerify is on: TLS certificates of homeservers are NOT checked; use this for tests only"
            );
        }
        let terms = Terms::new(&config.policy.policies);
        Ok(App {
            config,
            store,
            keys,
            notifier,
            sessions,
            views,
            homeserver,
            terms,
            started: Instant::now(),
        })
    }

    /// The current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}
