//! The application: configuration, store, keys, notifier, services and views, built once at
//! start and passed to every handler as `&App`.

use std::time::Instant;

use crate::config::Config;
use crate::homeserver::HomeserverClient;
use crate::homeserver::srv::SrvResolver;
use crate::keys::KeyRing;
use crate::notify::Notifier;
use crate::service::bindings::{self, Bindings};
use crate::service::federation::Federation;
use crate::service::invites::{InviteContext, Invites};
use crate::service::lookup::Lookups;
use crate::service::pepper::Peppers;
use crate::service::remote::RemoteSessions;
use crate::service::sessions::Sessions;
use crate::service::stores::local::LocalSource;
use crate::service::stores::rest::RestStore;
use crate::service::stores::synapse::{self, SynapseSync};
use crate::service::stores::{IdentityStore, static_store};
use crate::service::terms::Terms;
use crate::store::Store;
use crate::util::time::now_ms;
use crate::views::Views;

/// What the operator allowed at this start (`oxisd serve` flags).
#[derive(Debug, Default, Clone, Copy)]
pub struct StartOptions {
    /// `--new-signing-key`: the key file is lost for good; make a new key with a new id.
    pub new_signing_key: bool,
    /// `--accept-data-loss`: start even though the store lost acknowledged writes.
    pub accept_data_loss: bool,
}

/// Loads the signing keys. A missing key file is replaced by a new key only for a store created
/// in this start, or with `--new-signing-key` (then under the next free id, and the keys the
/// store recorded stay valid as lost keys). The public keys are recorded in the store.
fn load_keys(config: &Config, store: &Store, new_signing_key: bool) -> Result<KeyRing, String> {
    let key_path = config.key_path();
    let recorded = store
        .recorded_public_keys()
        .map_err(|e| format!("cannot read the recorded public keys: {e}"))?;
    let mut lost_now: Vec<String> = Vec::new();
    let keys = match KeyRing::load(&key_path)? {
        Some(keys) => {
            if new_signing_key {
                log::warn!(
                    "--new-signing-key ignored: the key file {} exists (to add a signing key to it, use 'oxisd admin keys rotate')",
                    key_path.display()
                );
            }
            keys
        }
        None if store.created() => {
            let keys = KeyRing::generate(&key_path, &config.key.id)?;
            log::info!(
                "generated a new signing key {} in {}",
                keys.signing().id(),
                key_path.display()
            );
            keys
        }
        None => {
            let mut ids: Vec<&str> = recorded.iter().map(|r| r.id.as_str()).collect();
            ids.push(&config.key.id);
            let next = crate::keys::next_key_id(ids.iter().copied());
            let known = if recorded.is_empty() {
                "the store recorded no public key (it was written by an older oxisd), so the lost key will not answer /pubkey or isvalid and what it signed no longer verifies".to_string()
            } else {
                format!(
                    "the store recorded the public keys of {}, which keep answering /pubkey and isvalid (so what they signed still verifies) but sign nothing more",
                    recorded
                        .iter()
                        .map(|r| r.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            if !new_signing_key {
                return Err(format!(
                    "the signing key file {} is missing, but the store at {} is not new: homeservers hold bindings and invites signed with that key. \
                     Restore the key file from a backup ('oxisd admin backup' copies it as signing.key into the backup directory) and start again. \
                     Only if the key is lost for good, start once with 'oxisd serve --new-signing-key': a new key {next} then signs, and {known}",
                    key_path.display(),
                    store.path().display()
                ));
            }
            let keys = KeyRing::generate(&key_path, &next)?;
            lost_now = recorded.iter().map(|r| r.id.clone()).collect();
            log::warn!(
                "--new-signing-key: the key file {} was missing; generated a new signing key {next}; {known}",
                key_path.display()
            );
            keys
        }
    };
    store
        .record_public_keys(&keys.public_keys(), &lost_now)
        .map_err(|e| format!("cannot record the public keys in the store: {e}"))?;
    let lost: Vec<(String, String)> = store
        .recorded_public_keys()
        .map_err(|e| format!("cannot read the recorded public keys: {e}"))?
        .into_iter()
        .filter(|r| r.lost)
        .map(|r| (r.id, r.public_key))
        .collect();
    if !lost.is_empty() {
        log::info!(
            "lost signing keys still answering isvalid: {}",
            lost.iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    keys.add_lost(lost);
    Ok(keys)
}

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
    /// The lookup pepper.
    pub peppers: Peppers,
    /// Lookups through the identity stores.
    pub lookups: Lookups,
    /// Binds and unbinds.
    pub bindings: Bindings,
    /// 3PID room invites and their delivery.
    pub invites: Invites,
    /// Remote 3PID sessions at an upstream identity server.
    pub remote: RemoteSessions,
    /// Lookups at the identity servers of other email domains, when enabled.
    pub federation: Option<Federation>,
    /// Copies a Synapse's 3PIDs into the store, when `stores.synapse` is enabled.
    pub synapse_sync: Option<SynapseSync>,
    /// The background tasks and when each last completed an iteration (read by `/health`).
    pub tasks: crate::tasks::Tasks,
    /// When the server started.
    pub started: Instant,
}

/// The identity stores of `stores.order` that are enabled.
fn identity_stores(config: &Config) -> Result<Vec<Box<dyn IdentityStore>>, String> {
    let stores = &config.stores;
    let mut out: Vec<Box<dyn IdentityStore>> = Vec::new();
    for name in &stores.order {
        match name.as_str() {
            "builtin" => out.push(Box::new(LocalSource::new(bindings::BUILTIN))),
            "static" if !stores.static_store.mappings.is_empty() => {
                out.push(Box::new(LocalSource::new(static_store::SOURCE)))
            }
            "synapse" if stores.synapse.enabled => {
                out.push(Box::new(LocalSource::new(synapse::SOURCE)))
            }
            "rest" if stores.rest.enabled => {
                let domain = config
                    .matrix
                    .domain
                    .as_deref()
                    .unwrap_or(&config.server.name);
                out.push(Box::new(
                    RestStore::new(&stores.rest, domain)
                        .map_err(|e| format!("stores.rest: {e}"))?,
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

impl App {
    /// Opens the store, loads (or creates) the signing key and the pepper, loads templates and
    /// views, syncs the static store. Errors say what to fix, naming the config key where
    /// there is one.
    pub fn build(config: Config) -> Result<App, String> {
        App::build_with(config, StartOptions::default())
    }

    /// [`App::build`] with the operator's decisions of `oxisd serve`'s flags.
    pub fn build_with(config: Config, options: StartOptions) -> Result<App, String> {
        let notifier = Notifier::new(&config)?;
        let brand_name = config.matrix.domain.clone().unwrap_or_default();
        let views = Views::load(&config.view, &brand_name, config.server.public_url())?;
        let store = Store::open_with_options(
            config.data_dir(),
            config.storage.cache_size,
            options.accept_data_loss,
        )
        .map_err(|e| e.to_string())?;
        let keys = load_keys(&config, &store, options.new_signing_key)?;
        let sessions = Sessions::new(&config);
        let homeserver = HomeserverClient::new(&config.outbound)?;
        if config.outbound.insecure_skip_tls_verify {
            log::warn!(
                "outbound.insecureSkipTlsVerify is on: TLS certificates of homeservers are NOT checked; use this for tests only"
            );
        }
        let terms = Terms::new(&config.policy.policies);
        let peppers = Peppers::load_or_create(&store)
            .map_err(|e| format!("cannot set up the lookup pepper: {e}"))?;
        let statics = static_store::sync(
            &store,
            &peppers.for_writes().all(),
            &config.stores.static_store.mappings,
            now_ms(),
        )
        .map_err(|e| format!("stores.static: {e}"))?;
        if statics > 0 {
            log::info!("static store: {statics} mappings");
        }
        let lookups = Lookups::new(
            identity_stores(&config)?,
            config.lookup.max_addresses,
            config.lookup.allow_none,
        )
        .with_budget(config.lookup.rate_limit.per_client);
        let bindings = Bindings::new(&config);
        let invites = Invites::new(&config);
        let remote = RemoteSessions::new(&config);
        let synapse_sync = if config.stores.synapse.enabled {
            Some(
                SynapseSync::new(&config.stores.synapse)
                    .map_err(|e| format!("stores.synapse: {e}"))?,
            )
        } else {
            None
        };
        let federation = config.lookup.federation.enabled.then(|| {
            let srv = SrvResolver::from_outbound(&config.outbound);
            let mut ours = vec![config.server.name.to_ascii_lowercase()];
            ours.extend(config.matrix.domain.iter().map(|d| d.to_ascii_lowercase()));
            Federation::new(&config.lookup.federation, srv, ours)
        });
        Ok(App {
            config,
            store,
            keys,
            notifier,
            sessions,
            views,
            homeserver,
            terms,
            peppers,
            lookups,
            bindings,
            invites,
            remote,
            federation,
            synapse_sync,
            tasks: crate::tasks::Tasks::new(),
            started: Instant::now(),
        })
    }

    /// The current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        now_ms()
    }

    /// What store-invite needs.
    pub fn invite_context(&self) -> InviteContext<'_> {
        InviteContext {
            store: &self.store,
            keys: &self.keys,
            notifier: &self.notifier,
            lookups: &self.lookups,
        }
    }

    /// What binds and unbinds need.
    pub fn binding_context(&self) -> bindings::Context<'_> {
        bindings::Context {
            store: &self.store,
            sessions: &self.sessions,
            peppers: &self.peppers,
            keys: &self.keys,
            homeserver: &self.homeserver,
            notifier: &self.notifier,
            invites: &self.invites,
            remote: &self.remote,
        }
    }
}
