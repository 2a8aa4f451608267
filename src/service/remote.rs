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

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::invites::outbox::{self, Verdict};
use super::rate_limit::RateLimiter;
use super::sessions::Sessions;
use crate::config::{Config, InviteDelivery, RateLimit, ScopePolicy};
use crate::crypto::random;
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::{HomeserverClient, HsError};
use crate::http::paths;
use crate::metrics::METRICS;
use crate::store::Store;
use crate::store::remote::{RemoteBinding, RemoteCall, RemoteOp};
use crate::store::sessions::{RemoteSession, SessionRecord};
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

/// A 3PID's place among the busy ones, given back (and the courier woken) when dropped.
struct Busy<'a> {
    remote: &'a RemoteSessions,
    key: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(&self.remote.busy).remove(&self.key);
        self.remote.wake();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RemoteOp {
    fn name(self) -> &'static str {
        match self {
            RemoteOp::Bind => "bind",
            RemoteOp::Unbind => "unbind",
        }
    }
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
    pub fn scope(&self, medium: &str, address: &str) -> &ScopePolicy {
        let local = medium == "email"
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
    pub fn check_request(&self, medium: &str, address: &str) -> Result<()> {
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
    pub fn upstream_for(&self, medium: &str, address: &str) -> Option<&str> {
        let scope = self.scope(medium, address);
        scope
            .to_remote
            .enabled
            .then_some(scope.to_remote.server.as_str())
    }

    /// Whether binds of this 3PID are stored here.
    pub fn binds_here(&self, medium: &str, address: &str) -> bool {
        self.scope(medium, address).to_local
    }

    /// Our page that starts the upstream session of a validated session.
    pub fn start_link(&self, sid: &str, client_secret: &str) -> String {
        format!(
            "{}{}?sid={}&client_secret={}",
            self.public_url,
            paths::REMOTE_START,
            url_encode(sid),
            url_encode(client_secret)
        )
    }

    /// Our page that checks the upstream session.
    pub fn check_link(&self, sid: &str, client_secret: &str) -> String {
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
            .upstream_for(&session.medium, &session.address)
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

    /// Starts (or restarts, with a new token) the upstream session of a validated session:
    /// the upstream sends the person its own message.
    pub fn start(&self, sid: &str, client_secret: &str, now_ms: u64) -> Result<Step> {
        let session = self.sessions.validated(sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        // Counted when tried, even if the upstream then fails: it may have sent its message.
        let _counted = self.starts.take(&session.sid, now_ms)?;
        let previous = session.remote.clone().filter(|r| r.server == name);
        let remote_secret = match &previous {
            Some(r) => r.client_secret.clone(),
            None => random::alphanumeric(32)?,
        };
        let send_attempt = previous.as_ref().map_or(1, |r| r.send_attempt + 1);
        let body = match session.medium.as_str() {
            "msisdn" => {
                let (country, number) = msisdn_parts(&session.address)?;
                json!({"client_secret": remote_secret, "country": country, "phone_number": number, "send_attempt": send_attempt})
            }
            _ => {
                json!({"client_secret": remote_secret, "email": session.address, "send_attempt": send_attempt})
            }
        };
        let medium = Medium::parse(&session.medium).unwrap_or(Medium::Email);
        let endpoint = format!("{url}{}{}", paths::V1, paths::request_token(medium));
        let answer = self
            .client
            .post_url_json(&endpoint, &body)
            .map_err(|e| upstream_error(&name, e))?;
        let remote_sid = answer["sid"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::BadGateway,
                    format!("{name} answered without a sid"),
                )
            })?
            .to_string();
        // The upstream answers a repeated request (same secret) with the same session: one it
        // validated stays validated, and binds are still forwarded.
        let validated = previous
            .as_ref()
            .is_some_and(|r| r.validated && r.sid == remote_sid);
        self.sessions.set_remote(
            sid,
            client_secret,
            RemoteSession {
                server: name.clone(),
                sid: remote_sid,
                client_secret: remote_secret,
                send_attempt,
                validated,
            },
            now_ms,
        )?;
        if validated {
            log::info!(
                "started a {} session at {name} again: the same session, still validated",
                session.medium
            );
        } else {
            log::info!("started a {} session at {name}", session.medium);
        }
        Ok(Step::Started { server: name })
    }

    /// Asks the upstream whether its session is validated, and remembers it when it is.
    pub fn check(&self, sid: &str, client_secret: &str, now_ms: u64) -> Result<Step> {
        let session = self.sessions.validated(sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        let Some(mut remote) = session.remote.clone().filter(|r| r.server == name) else {
            return Ok(Step::NotStarted { server: name });
        };
        if remote.validated {
            return Ok(Step::Validated { server: name });
        }
        let endpoint = format!(
            "{url}{}{}?sid={}&client_secret={}",
            paths::V1,
            paths::GET_VALIDATED_3PID,
            url_encode(&remote.sid),
            url_encode(&remote.client_secret)
        );
        match self.client.get_url_json(&endpoint, Some(64 * 1024)) {
            Ok(v) => {
                if v["medium"] != session.medium.as_str()
                    || v["address"] != session.address.as_str()
                {
                    return Err(Error::new(
                        ErrorKind::BadGateway,
                        format!("{name} validated another address"),
                    ));
                }
                remote.validated = true;
                self.sessions
                    .set_remote(sid, client_secret, remote, now_ms)?;
                log::info!("a {} session was validated at {name}", session.medium);
                Ok(Step::Validated { server: name })
            }
            Err(HsError::Status { status: 400, body })
                if body["errcode"] == "M_SESSION_NOT_VALIDATED" =>
            {
                Ok(Step::Pending { server: name })
            }
            Err(e) => Err(upstream_error(&name, e)),
        }
    }

    /// The validated upstream session a bind of `session` is forwarded with; `None` (logged,
    /// at warn when the person started publishing but it cannot be used) when there is none.
    fn forwardable<'s>(&self, session: &'s SessionRecord) -> Option<&'s RemoteSession> {
        let upstream = self.upstream_for(&session.medium, &session.address)?;
        let medium = &session.medium;
        match &session.remote {
            None => {
                log::info!(
                    "a {medium} bind is not published at {upstream}: nothing was started there"
                );
                None
            }
            Some(r) if r.server != upstream => {
                log::warn!(
                    "a {medium} bind was not forwarded to {upstream}: its upstream session was started at {}",
                    r.server
                );
                None
            }
            Some(r) if !r.validated => {
                log::warn!(
                    "a {medium} bind was not forwarded to {upstream}: not verified at {upstream} (the person started there but did not finish)"
                );
                None
            }
            Some(r) => Some(r),
        }
    }

    /// Queues the forwarding of a bind here (of a session whose upstream session is validated)
    /// and makes it at once unless it must wait. False when there is nothing to forward.
    pub fn forward_bind(&self, session: &SessionRecord, mxid: &str, now_ms: u64) -> Result<bool> {
        let Some(remote) = self.forwardable(session) else {
            return Ok(false);
        };
        let call = RemoteCall {
            op: RemoteOp::Bind,
            server: remote.server.clone(),
            sid: remote.sid.clone(),
            client_secret: remote.client_secret.clone(),
            mxid: mxid.to_string(),
            medium: session.medium.clone(),
            address: session.address.clone(),
            attempts: 0,
            next_attempt_ms: now_ms,
            created_ms: now_ms,
        };
        self.queue_and_deliver(&call)?;
        Ok(true)
    }

    /// Queues the forwarding of an unbind here (proven by `session`, or signed by the
    /// homeserver) and makes it at once unless it must wait: with the upstream session the
    /// binding was forwarded with, else with the validated upstream session of `session`.
    /// False when the 3PID was not bound upstream through us.
    pub fn forward_unbind(
        &self,
        (medium, address, mxid): (&str, &str, &str),
        session: Option<&SessionRecord>,
        now_ms: u64,
    ) -> Result<bool> {
        let credentials = match self.store.remote_binding(medium, address)? {
            Some(b) if b.mxid == mxid => Some((b.server, b.sid, b.client_secret)),
            Some(_) => None,
            // Bound before bindings were recorded: the session's upstream session, if any.
            None => session
                .and_then(|s| s.remote.as_ref())
                .filter(|r| r.validated)
                .map(|r| (r.server.clone(), r.sid.clone(), r.client_secret.clone())),
        };
        let Some((server, sid, client_secret)) = credentials else {
            return Ok(false);
        };
        let call = RemoteCall {
            op: RemoteOp::Unbind,
            server,
            sid,
            client_secret,
            mxid: mxid.to_string(),
            medium: medium.to_string(),
            address: address.to_string(),
            attempts: 0,
            next_attempt_ms: now_ms,
            created_ms: now_ms,
        };
        self.queue_and_deliver(&call)?;
        Ok(true)
    }

    /// Binds a 3PID published at the upstream only: after the 3PID's queued calls (all of
    /// them made now, or the bind is refused), the bind is made there, and its answer (the
    /// upstream's association) returned. `Ok(None)` when there is nothing to forward.
    pub fn bind_upstream_only(&self, session: &SessionRecord, mxid: &str) -> Result<Option<Value>> {
        let Some(remote) = self.forwardable(session) else {
            return Ok(None);
        };
        let Some(url) = self.servers.get(&remote.server) else {
            return Ok(None);
        };
        let (medium, address) = (&session.medium, &session.address);
        let key = format!("{medium}\0{address}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let _busy = loop {
            if let Some(busy) = self.take(&key) {
                break busy;
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    ErrorKind::GatewayTimeout,
                    format!(
                        "The identity server {} is busy with this address: try again later",
                        remote.server
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !self.deliver_locked(medium, address, true)? {
            return Err(Error::new(
                ErrorKind::BadGateway,
                format!(
                    "The identity server {} is not answering: try again later",
                    remote.server
                ),
            ));
        }
        let answer = self
            .client
            .post_url_json(
                &format!("{url}{}{}", paths::V1, paths::BIND),
                &json!({"sid": remote.sid, "client_secret": remote.client_secret, "mxid": mxid}),
            )
            .map_err(|e| upstream_error(&remote.server, e))?;
        self.store.put_remote_binding(
            medium,
            address,
            &RemoteBinding {
                server: remote.server.clone(),
                sid: remote.sid.clone(),
                client_secret: remote.client_secret.clone(),
                mxid: mxid.to_string(),
            },
        )?;
        METRICS.remote_binds.inc();
        Ok(Some(answer))
    }

    fn take(&self, key: &str) -> Option<Busy<'_>> {
        lock(&self.busy).insert(key.to_string()).then(|| Busy {
            remote: self,
            key: key.to_string(),
        })
    }

    /// Queues `call` and makes its 3PID's due calls at once, unless another thread is making
    /// them (the courier is woken when that one ends, and makes this one). The 3PID is taken
    /// before the call is queued, so that the courier cannot take it in between.
    fn queue_and_deliver(&self, call: &RemoteCall) -> Result<()> {
        let busy = self.take(&format!("{}\0{}", call.medium, call.address));
        self.store.queue_remote(call)?;
        if busy.is_some() {
            self.deliver_locked(&call.medium, &call.address, false)?;
        }
        Ok(())
    }

    /// Makes the due calls of one 3PID in order, unless another thread is making them (the
    /// courier is woken when that one ends). True when none is left.
    fn deliver_threepid(&self, medium: &str, address: &str) -> Result<bool> {
        let Some(_busy) = self.take(&format!("{medium}\0{address}")) else {
            return Ok(false);
        };
        self.deliver_locked(medium, address, false)
    }

    /// Makes the calls of one 3PID in order (due or not when `force`), stopping at the first
    /// that must wait. True when none is left.
    fn deliver_locked(&self, medium: &str, address: &str, force: bool) -> Result<bool> {
        let calls = self
            .store
            .remote_outbox()?
            .into_iter()
            .filter(|(_, c)| c.medium == medium && c.address == address);
        for (id, call) in calls {
            let now = crate::app::now_ms();
            if !force && self.due_at(&call) > now {
                return Ok(false);
            }
            if !self.attempt(&id, call, now)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// When a call may be made: its next attempt, or later while its upstream rests.
    fn due_at(&self, call: &RemoteCall) -> u64 {
        let resting = lock(&self.resting).get(&call.server).copied().unwrap_or(0);
        call.next_attempt_ms.max(resting)
    }

    /// Makes one queued call and records the outcome. True when it left the outbox (made,
    /// refused for good, given up), false when it waits for its next attempt.
    fn attempt(&self, id: &[u8], mut call: RemoteCall, now_ms: u64) -> Result<bool> {
        let (store, client) = (&*self.store, &*self.client);
        let (op, medium, server) = (call.op.name(), call.medium.clone(), call.server.clone());
        let Some(url) = self.servers.get(&server) else {
            log::warn!(
                "dropped a queued {op} of a {medium} for {}: {server} is no longer in matrix.identity.servers",
                call.mxid
            );
            store.finish_remote(id)?;
            return Ok(true);
        };
        let result = match call.op {
            RemoteOp::Bind => client.post_url_json(
                &format!("{url}{}{}", paths::V1, paths::BIND),
                &json!({"sid": call.sid, "client_secret": call.client_secret, "mxid": call.mxid}),
            ),
            RemoteOp::Unbind => client.post_url_json(
                &format!("{url}{}{}", paths::V1, paths::UNBIND),
                &json!({
                    "sid": call.sid,
                    "client_secret": call.client_secret,
                    "mxid": call.mxid,
                    "threepid": {"medium": call.medium, "address": call.address},
                }),
            ),
        };
        let (delivered, failed) = match call.op {
            RemoteOp::Bind => (&METRICS.remote_binds, &METRICS.remote_bind_failures),
            RemoteOp::Unbind => (&METRICS.remote_unbinds, &METRICS.remote_unbind_failures),
        };
        let e = match result {
            Ok(_) => {
                store.finish_remote(id)?;
                delivered.inc();
                lock(&self.resting).remove(&server);
                log::info!("forwarded the {op} of a {medium} to {server}");
                return Ok(true);
            }
            Err(e) => e,
        };
        failed.inc();
        let unanswered = match outbox::verdict(&e) {
            Verdict::Final => {
                METRICS.remote_dropped.inc();
                log::warn!(
                    "{server} refused the {op} of a {medium} for {}, not retried: {}",
                    call.mxid,
                    outbox::describe(&e)
                );
                store.finish_remote(id)?;
                return Ok(true);
            }
            Verdict::Retry { unanswered } => unanswered,
        };
        let age = now_ms.saturating_sub(call.created_ms);
        if age >= self.delivery.give_up_after.saturating_mul(24 * 3600 * 1000) {
            METRICS.remote_dropped.inc();
            log::error!(
                "gave up forwarding the {op} of a {medium} for {} to {server} after {} attempts over {} days: {}",
                call.mxid,
                call.attempts + 1,
                self.delivery.give_up_after,
                outbox::describe(&e)
            );
            store.finish_remote(id)?;
            return Ok(true);
        }
        call.attempts += 1;
        let wait = outbox::backoff(&self.delivery, call.attempts);
        call.next_attempt_ms = now_ms + wait.as_millis() as u64;
        log::warn!(
            "forwarding the {op} of a {medium} to {server} failed (attempt {}), retrying in {} s: {}",
            call.attempts,
            wait.as_secs(),
            outbox::describe(&e)
        );
        store.update_remote(id, &call)?;
        if unanswered {
            // Its other calls wait with this one, without an attempt counted.
            lock(&self.resting).insert(server, call.next_attempt_ms);
        }
        Ok(false)
    }

    /// The remote courier's round: makes the due calls of every 3PID whose first call is due
    /// (3PIDs one after the other) until `stop`; returns when to look again (ms since the
    /// epoch), if anything is queued.
    pub fn deliver_due(&self, stop: &AtomicBool, now_ms: u64) -> Result<Option<u64>> {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut next: Option<u64> = None;
        let mut due = Vec::new();
        for (_, call) in self.store.remote_outbox()? {
            if !seen.insert((call.medium.clone(), call.address.clone())) {
                continue;
            }
            let at = self.due_at(&call);
            if at > now_ms {
                next = Some(next.map_or(at, |n| n.min(at)));
            } else {
                due.push((call.medium, call.address));
            }
        }
        if due.is_empty() {
            return Ok(next);
        }
        for (medium, address) in due {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            self.deliver_threepid(&medium, &address)?;
        }
        // Look again soon: what failed is due a backoff (at least 1 s) later, and a 3PID another
        // thread was on wakes us when it is done.
        let soon = now_ms + 1000;
        Ok(Some(next.map_or(soon, |n| n.min(soon))))
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

/// A phone number as (ISO region, `+digits`) for an upstream's v1 requestToken.
fn msisdn_parts(digits: &str) -> Result<(String, String)> {
    let e164 = format!("+{digits}");
    let number = phonenumber::parse(None, &e164)
        .map_err(|e| Error::internal(format_args!("stored msisdn does not parse: {e}")))?;
    let region = number
        .country()
        .id()
        .map(|id| format!("{id:?}"))
        .ok_or_else(|| Error::internal("no region for the stored msisdn"))?;
    Ok((region, e164))
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
