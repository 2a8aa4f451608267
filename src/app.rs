//! The application: configuration, store, keys, notifier, services and views, built once at
//! start and passed to every handler as `&App`. Each service gets the handles it works with
//! when it is built, so handlers call services with request data only.

use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::error::StartError;
use crate::homeserver::HomeserverClient;
use crate::homeserver::srv::SrvResolver;
use crate::http::tls::Certs;
use crate::keys::KeyRing;
use crate::notify::Notifier;
use crate::service::accounts::Accounts;
use crate::service::admin::Admin;
use crate::service::bindings::{self, Bindings};
use crate::service::directory::{self, DirectoryServices};
use crate::service::federation::Federation;
use crate::service::health::Health;
use crate::service::invites::Invites;
use crate::service::lookup::Lookups;
use crate::service::pepper::Peppers;
use crate::service::remote::RemoteSessions;
use crate::service::sessions::Sessions;
use crate::service::stores::local::LocalSource;
use crate::service::stores::rest::RestStore;
use crate::service::stores::synapse::{self, SynapseSync};
use crate::service::stores::{IdentityStore, static_store};
use crate::service::terms::Terms;
use crate::store::{RecordedKey, Store};
use crate::tasks::Tasks;
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
fn load_keys(config: &Config, store: &Store, new_signing_key: bool) -> Result<KeyRing, StartError> {
    let key_path = config.key_path();
    let recorded = store
        .recorded_public_keys()
        .map_err(|e| StartError::other(format!("cannot read the recorded public keys: {e}")))?;
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
            let keys = replace_lost_key(config, store, &recorded, new_signing_key)?;
            lost_now = recorded.iter().map(|r| r.id.clone()).collect();
            keys
        }
    };
    record_keys(store, &keys, &lost_now)?;
    Ok(keys)
}

/// The key file of a store that is not new is missing: refused, unless the operator says the
/// key is lost for good (`--new-signing-key`); then a new key signs, under the next free id.
fn replace_lost_key(
    config: &Config,
    store: &Store,
    recorded: &[RecordedKey],
    new_signing_key: bool,
) -> Result<KeyRing, StartError> {
    let key_path = config.key_path();
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
        return Err(StartError::other(format!(
            "the signing key file {} is missing, but the store at {} is not new: homeservers hold bindings and invites signed with that key. \
             Restore the key file from a backup ('oxisd admin backup' copies it as signing.key into the backup directory) and start again. \
             Only if the key is lost for good, start once with 'oxisd serve --new-signing-key': a new key {next} then signs, and {known}",
            key_path.display(),
            store.path().display()
        )));
    }
    let keys = KeyRing::generate(&key_path, &next)?;
    log::warn!(
        "--new-signing-key: the key file {} was missing; generated a new signing key {next}; {known}",
        key_path.display()
    );
    Ok(keys)
}

/// Records the public keys of `keys` in the store (`lost_now`: recorded keys whose private
/// half is gone from now on), and lets the lost ones answer isvalid.
fn record_keys(store: &Store, keys: &KeyRing, lost_now: &[String]) -> Result<(), StartError> {
    store
        .record_public_keys(&keys.public_keys(), lost_now)
        .map_err(|e| {
            StartError::other(format!("cannot record the public keys in the store: {e}"))
        })?;
    let lost: Vec<(String, String)> = store
        .recorded_public_keys()
        .map_err(|e| StartError::other(format!("cannot read the recorded public keys: {e}")))?
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
    Ok(())
}

/// Everything a handler may use: the configuration, the shared handles (store, keys,
/// notifier, outbound client) and the services built on them, each built once in
/// [`App::build`] with what it needs.
pub struct App {
    /// The validated configuration.
    pub config: Config,
    /// The store (for the background tasks and the shutdown; handlers go through services).
    pub store: Arc<Store>,
    /// The long-term signing keys.
    pub keys: Arc<KeyRing>,
    /// Renders and delivers notifications.
    pub notifier: Arc<Notifier>,
    /// Outbound requests to homeservers.
    pub homeserver: Arc<HomeserverClient>,
    /// The lookup pepper.
    pub peppers: Arc<Peppers>,
    /// The web pages.
    pub views: Views,
    /// Accounts: registration, access tokens.
    pub accounts: Accounts,
    /// 3PID validation sessions.
    pub sessions: Arc<Sessions>,
    /// Terms of service.
    pub terms: Terms,
    /// Lookups through the identity stores (and at other domains' identity servers).
    pub lookups: Arc<Lookups>,
    /// Binds and unbinds.
    pub bindings: Bindings,
    /// 3PID room invites and their delivery.
    pub invites: Arc<Invites>,
    /// Remote 3PID sessions at an upstream identity server.
    pub remote: Arc<RemoteSessions>,
    /// What the admin API does.
    pub admin: Admin,
    /// The health check of `/health`.
    pub health: Health,
    /// Copies a Synapse's 3PIDs into the store, when `stores.synapse` is enabled.
    pub synapse_sync: Option<SynapseSync>,
    /// The organisation's directory (`stores.ldap`): its sync and the password checks.
    pub directory: Option<DirectoryServices>,
    /// The background tasks and when each last completed an iteration (read by `/health`).
    pub tasks: Arc<Tasks>,
    /// The HTTPS listener's certificate and key (`server.tls`), loaded before anything was
    /// written; reloaded on SIGHUP.
    pub tls: Option<Arc<Certs>>,
}

/// The identity stores of `stores.order` that are enabled.
fn identity_stores(config: &Config) -> Result<Vec<Box<dyn IdentityStore>>, StartError> {
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
            "ldap" if stores.ldap.enabled => {
                out.push(Box::new(LocalSource::new(directory::SOURCE)))
            }
            "rest" if stores.rest.enabled => {
                let domain = config
                    .matrix
                    .domain
                    .as_deref()
                    .unwrap_or(&config.server.name);
                out.push(Box::new(
                    RestStore::new(&stores.rest, domain)
                        .map_err(|e| StartError::setting("stores.rest", e))?,
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The federated lookups of `lookup.federation`, when enabled.
fn federation(config: &Config) -> Option<Federation> {
    if !config.lookup.federation.enabled {
        return None;
    }
    let srv = SrvResolver::from_outbound(&config.outbound);
    let mut ours = vec![config.server.name.to_ascii_lowercase()];
    ours.extend(config.matrix.domain.iter().map(|d| d.to_ascii_lowercase()));
    Some(Federation::new(&config.lookup.federation, srv, ours))
}

/// The lookup pepper, and the static store synced into the store with it.
fn peppers(config: &Config, store: &Store) -> Result<Peppers, StartError> {
    let peppers = Peppers::load_or_create(store)
        .map_err(|e| StartError::other(format!("cannot set up the lookup pepper: {e}")))?;
    let statics = static_store::sync(
        store,
        &peppers.for_writes().all(),
        &config.stores.static_store.mappings,
        now_ms(),
    )
    .map_err(|e| StartError::setting("stores.static", e))?;
    if statics > 0 {
        log::info!("static store: {statics} mappings");
    }
    Ok(peppers)
}

/// What every service shares: opened, loaded and connected once.
struct Handles {
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    notifier: Arc<Notifier>,
    homeserver: Arc<HomeserverClient>,
    peppers: Arc<Peppers>,
}

/// Everything `serve` loads from the config before it writes anything: templates, pages,
/// connectors, identity stores, the outbound client, and (checked, then dropped) the TLS
/// material. `oxisd check-config` loads the same, so it fails exactly where `serve` would,
/// without creating a data directory or a key.
pub struct Preflight {
    notifier: Notifier,
    views: Views,
    stores: Vec<Box<dyn IdentityStore>>,
    synapse_sync: Option<SynapseSync>,
    directory: Option<DirectoryServices>,
    homeserver: HomeserverClient,
    tls: Option<Arc<Certs>>,
}

impl Preflight {
    /// Loads and checks what `config` names; writes nothing.
    pub fn load(config: &Config) -> Result<Preflight, StartError> {
        let notifier = Notifier::new(config)?;
        let brand_name = config.matrix.domain.clone().unwrap_or_default();
        let views = Views::load(&config.view, &brand_name, config.server.public_url())?;
        let tls = if config.server.tls.enabled {
            Some(Certs::open(&config.server.tls)?)
        } else {
            None
        };
        let stores = identity_stores(config)?;
        let synapse_sync = if config.stores.synapse.enabled {
            Some(
                SynapseSync::new(&config.stores.synapse)
                    .map_err(|e| StartError::setting("stores.synapse", e))?,
            )
        } else {
            None
        };
        let directory = DirectoryServices::from_config(config)?;
        let homeserver = HomeserverClient::new(&config.outbound)?;
        Ok(Preflight {
            notifier,
            views,
            stores,
            synapse_sync,
            directory,
            homeserver,
            tls,
        })
    }
}

impl Handles {
    /// Opens the store, loads (or creates) the signing keys and the pepper; the first writes
    /// of a start, after [`Preflight::load`].
    fn open(
        config: &Config,
        options: StartOptions,
        notifier: Notifier,
        homeserver: HomeserverClient,
    ) -> Result<Handles, StartError> {
        let store = Store::open_with_options(
            config.data_dir(),
            config.storage.cache_size,
            options.accept_data_loss,
        )
        .map_err(StartError::other)?;
        let keys = load_keys(config, &store, options.new_signing_key)?;
        if config.outbound.insecure_skip_tls_verify {
            log::warn!(
                "outbound.insecureSkipTlsVerify is on: TLS certificates of homeservers are NOT checked; use this for tests only"
            );
        }
        let peppers = peppers(config, &store)?;
        Ok(Handles {
            store: Arc::new(store),
            keys: Arc::new(keys),
            notifier: Arc::new(notifier),
            homeserver: Arc::new(homeserver),
            peppers: Arc::new(peppers),
        })
    }
}

impl App {
    /// Opens the store, loads (or creates) the signing key and the pepper, loads templates and
    /// views, syncs the static store, and builds the services. Errors say what to fix, naming
    /// the config key where there is one.
    pub fn build(config: Config) -> Result<App, StartError> {
        App::build_with(config, StartOptions::default())
    }

    /// [`App::build`] with the operator's decisions of `oxisd serve`'s flags.
    pub fn build_with(config: Config, options: StartOptions) -> Result<App, StartError> {
        let Preflight {
            notifier,
            views,
            stores,
            synapse_sync,
            directory,
            homeserver,
            tls,
        } = Preflight::load(&config)?;
        let h = Handles::open(&config, options, notifier, homeserver)?;
        let mut lookups = Lookups::new(
            &config.lookup,
            stores,
            h.store.clone(),
            h.peppers.clone(),
            h.keys.clone(),
            &config.server.name,
        );
        if let Some(federation) = federation(&config) {
            lookups = lookups.with_federation(
                federation,
                h.homeserver.clone(),
                config.lookup.federation.bulk,
            );
        }
        Ok(App::assemble(
            config,
            h,
            views,
            Arc::new(lookups),
            synapse_sync,
            directory,
            tls,
        ))
    }

    /// The services, on the shared handles.
    fn assemble(
        config: Config,
        h: Handles,
        views: Views,
        lookups: Arc<Lookups>,
        synapse_sync: Option<SynapseSync>,
        directory: Option<DirectoryServices>,
        tls: Option<Arc<Certs>>,
    ) -> App {
        let started = Instant::now();
        let tasks = Arc::new(Tasks::new());
        let sessions = Arc::new(Sessions::new(&config, h.store.clone(), h.notifier.clone()));
        let invites = Arc::new(Invites::new(
            &config,
            h.store.clone(),
            h.keys.clone(),
            h.notifier.clone(),
            lookups.clone(),
        ));
        let remote = Arc::new(RemoteSessions::new(
            &config,
            h.store.clone(),
            sessions.clone(),
            h.homeserver.clone(),
        ));
        let bindings = Bindings::new(
            &config,
            bindings::Deps {
                store: h.store.clone(),
                sessions: sessions.clone(),
                peppers: h.peppers.clone(),
                keys: h.keys.clone(),
                homeserver: h.homeserver.clone(),
                notifier: h.notifier.clone(),
                invites: invites.clone(),
                remote: remote.clone(),
            },
        );
        App {
            accounts: Accounts::new(&config.account, h.store.clone(), h.homeserver.clone()),
            terms: Terms::new(&config.policy.policies, h.store.clone()),
            admin: Admin::new(
                h.store.clone(),
                h.peppers.clone(),
                h.keys.clone(),
                remote.clone(),
                config.key_path(),
                started,
            ),
            health: Health::new(h.store.clone(), tasks.clone(), started),
            config,
            store: h.store,
            keys: h.keys,
            notifier: h.notifier,
            homeserver: h.homeserver,
            peppers: h.peppers,
            views,
            sessions,
            lookups,
            bindings,
            invites,
            remote,
            synapse_sync,
            directory,
            tasks,
            tls,
        }
    }

    /// The current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        now_ms()
    }
}
