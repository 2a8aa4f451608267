//! Remote 3PID sessions (`session.policy.validation.forLocal/forRemote.toRemote`): after a 3PID
//! was validated here, the same 3PID is validated at an upstream identity server that the
//! operator named, and a bind here is forwarded there, so the 3PID is discoverable beyond this
//! server. The person drives it from our pages: start (the upstream sends its own token), then
//! check (we ask the upstream whether that session is validated).
//!
//! Which 3PIDs are *local*: email addresses of our domains (`localDomains`, default
//! `matrix.domain`); phone numbers never are. Each scope says whether its 3PIDs are validated
//! and bound here (`toLocal`), at the upstream (`toRemote`), or both. Nothing is contacted
//! unless a scope names an upstream.
//!
//! Forwarding: a bind here of a 3PID whose upstream session is validated, and a later unbind
//! here (with a session or signed by the homeserver), are queued in the store's durable
//! outbox (`remote_outbox`, see [`crate::store::remote`]) with the upstream session's sid and
//! client secret, and made at once by the request; what fails is made again by the remote
//! courier (see [`crate::maintenance::spawn_remote_courier`]) with the backoff of onbind
//! deliveries (`invite.delivery.*`). The calls of one 3PID are made one at a time, in the
//! order they were queued: a call that must wait holds the later ones of its 3PID. Answers
//! mean what they mean for onbind ([`outbox::verdict`]): a 4xx (but 408 and 429) is final and
//! logged at warn, the rest is retried until `giveUpAfter` days. An upstream that does not
//! answer is left alone until the failed call's next attempt. A 3PID bound at the upstream
//! only (`toLocal: false`) is bound there by the request itself, after the 3PID's queued calls
//! (the upstream's answer is the association).
//!
//! A bind that would be forwarded but is not (the upstream session was started but is not
//! validated, or was started at another upstream) is logged at warn.
//!
//! Here: the policy (which 3PIDs are published where) and our pages' links; `session.rs`: the
//! upstream session (start, check); `forward.rs`: queueing forwarded binds and unbinds, and
//! binds at the upstream only; `courier.rs`: making the queued calls.

mod courier;
mod forward;
mod session;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::invites::outbox;
use super::rate_limit::RateLimiter;
use super::sessions::Sessions;
use crate::config::{Config, InviteDelivery, RateLimit, ScopePolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::{HomeserverClient, HsError};
use crate::http::paths;
use crate::ids::SessionId;
use crate::store::Store;
use crate::store::sessions::SessionRecord;
use crate::threepid::Medium;
use crate::threepid::params::url_encode;

/// The remote-session policy.
pub struct RemoteSessions {
    local_domains: Vec<String>,
    for_local: ScopePolicy,
    for_remote: ScopePolicy,
    servers: std::collections::BTreeMap<String, String>,
    public_url: String,
    /// Each start makes the upstream send a message: a few per session, then one every 5 min.
    starts: RateLimiter,
    /// Retry policy of forwarded calls (`invite.delivery.*`).
    delivery: InviteDelivery,
    /// 3PIDs (`medium 0x00 address`) whose calls a thread is making.
    busy: Mutex<HashSet<String>>,
    /// Upstreams that did not answer, and until when (ms since the epoch) they are left alone.
    resting: Mutex<HashMap<String, u64>>,
    /// Set when the outbox has new work; the remote courier waits on it.
    work: (Mutex<bool>, Condvar),
    store: Arc<Store>,
    sessions: Arc<Sessions>,
    client: Arc<HomeserverClient>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the pages show after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The upstream sent its token; the person should follow it, then check.
    Started {
        /// The upstream's name.
        server: String,
    },
    /// The upstream validated the 3PID: a bind will be forwarded there.
    Validated {
        /// The upstream's name.
        server: String,
    },
    /// Not validated at the upstream yet.
    Pending {
        /// The upstream's name.
        server: String,
    },
    /// Nothing was started at the upstream yet (the check page opened before the start page).
    NotStarted {
        /// The upstream's name.
        server: String,
    },
}

impl RemoteSessions {
    /// The policy as configured: sessions are read through `sessions`, the outbox kept in
    /// `store`, upstreams called through `client`.
    pub fn new(
        config: &Config,
        store: Arc<Store>,
        sessions: Arc<Sessions>,
        client: Arc<HomeserverClient>,
    ) -> RemoteSessions {
        let v = &config.session.policy.validation;
        let mut local_domains: Vec<String> = v
            .local_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if local_domains.is_empty() {
            local_domains.extend(config.matrix.domain.iter().map(|d| d.to_ascii_lowercase()));
        }
        RemoteSessions {
            local_domains,
            for_local: v.for_local.clone(),
            for_remote: v.for_remote.clone(),
            servers: config
                .matrix
                .identity
                .servers
                .keys()
                .filter_map(|name| {
                    Some((
                        name.clone(),
                        config.matrix.identity.url_of(name)?.to_string(),
                    ))
                })
                .collect(),
            public_url: config.server.public_url().trim_end_matches('/').to_string(),
            starts: RateLimiter::new(
                "messages from the other identity server for this session",
                RateLimit {
                    burst: 3,
                    refill: 300,
                },
            ),
            delivery: config.invite.delivery.clone(),
            busy: Mutex::new(HashSet::new()),
            resting: Mutex::new(HashMap::new()),
            work: (Mutex::new(false), Condvar::new()),
            store,
            sessions,
            client,
        }
    }

    /// The policy of a 3PID's scope.
    pub fn scope(&self, medium: Medium, address: &str) -> &ScopePolicy {
        let local = medium == Medium::Email
            && address.rsplit_once('@').is_some_and(|(_, d)| {
                self.local_domains
                    .iter()
                    .any(|l| *l == d.to_ascii_lowercase())
            });
        if local {
            &self.for_local
        } else {
            &self.for_remote
        }
    }

    /// 403 `M_FORBIDDEN` when sessions for this 3PID may not be started.
    pub fn check_request(&self, medium: Medium, address: &str) -> Result<()> {
        let scope = self.scope(medium, address);
        if scope.enabled && (scope.to_local || scope.to_remote.enabled) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Forbidden,
                "This identity server does not validate this kind of address",
            ))
        }
    }

    /// The upstream offered for this 3PID, if any.
    pub fn upstream_for(&self, medium: Medium, address: &str) -> Option<&str> {
        let scope = self.scope(medium, address);
        scope
            .to_remote
            .enabled
            .then_some(scope.to_remote.server.as_str())
    }

    /// Whether binds of this 3PID are stored here.
    pub fn binds_here(&self, medium: Medium, address: &str) -> bool {
        self.scope(medium, address).to_local
    }

    /// Our page that starts the upstream session of a validated session.
    pub fn start_link(&self, sid: &SessionId, client_secret: &str) -> String {
        format!(
            "{}{}?sid={}&client_secret={}",
            self.public_url,
            paths::REMOTE_START,
            url_encode(sid),
            url_encode(client_secret)
        )
    }

    /// Our page that checks the upstream session.
    pub fn check_link(&self, sid: &SessionId, client_secret: &str) -> String {
        format!(
            "{}{}?sid={}&client_secret={}",
            self.public_url,
            paths::REMOTE_CHECK,
            url_encode(sid),
            url_encode(client_secret)
        )
    }

    fn upstream(&self, session: &SessionRecord) -> Result<(String, String)> {
        let name = self
            .upstream_for(session.medium, &session.address)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Forbidden,
                    "This address is not published at another identity server",
                )
            })?;
        let url = self.servers.get(name).ok_or_else(|| {
            Error::internal(format_args!("matrix.identity.servers has no '{name}'"))
        })?;
        Ok((name.to_string(), url.clone()))
    }

    /// Tells the remote courier that the outbox has new work.
    pub fn wake(&self) {
        let (flag, cond) = &self.work;
        *lock(flag) = true;
        cond.notify_all();
    }

    /// Waits for new work or `timeout`, whichever comes first.
    pub fn wait_for_work(&self, timeout: Duration) {
        let (flag, cond) = &self.work;
        let mut pending = lock(flag);
        if !*pending {
            pending = cond
                .wait_timeout(pending, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *pending = false;
    }
}

fn upstream_error(name: &str, e: HsError) -> Error {
    let kind = match e {
        HsError::Timeout(_) => ErrorKind::GatewayTimeout,
        _ => ErrorKind::BadGateway,
    };
    Error::new(
        kind,
        format!("The identity server {name} could not be used"),
    )
    .with_detail(outbox::describe(&e))
}
