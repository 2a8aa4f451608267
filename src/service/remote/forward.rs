//! Binds and unbinds made here, forwarded to the upstream a 3PID was published at: queued in
//! the store's outbox and made at once unless they must wait (the calls of one 3PID one at a
//! time, in order), and the bind of a 3PID published at the upstream only, made by the request
//! itself.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{RemoteSessions, lock, upstream_error};
use crate::error::{Error, ErrorKind, Result};
use crate::http::paths;
use crate::ids::UserId;
use crate::metrics::METRICS;
use crate::store::remote::{RemoteBinding, RemoteCall, RemoteOp};
use crate::store::sessions::{RemoteSession, SessionRecord};
use crate::threepid::Medium;

/// A 3PID's place among the busy ones, given back (and the courier woken) when dropped.
pub(super) struct Busy<'a> {
    remote: &'a RemoteSessions,
    key: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        lock(&self.remote.busy).remove(&self.key);
        self.remote.wake();
    }
}

impl RemoteSessions {
    /// The validated upstream session a bind of `session` is forwarded with; `None` (logged,
    /// at warn when the person started publishing but it cannot be used) when there is none.
    fn forwardable<'s>(&self, session: &'s SessionRecord) -> Option<&'s RemoteSession> {
        let upstream = self.upstream_for(session.medium, &session.address)?;
        let medium = session.medium;
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
    pub fn forward_bind(
        &self,
        session: &SessionRecord,
        mxid: &UserId,
        now_ms: u64,
    ) -> Result<bool> {
        let Some(remote) = self.forwardable(session) else {
            return Ok(false);
        };
        let call = RemoteCall {
            op: RemoteOp::Bind,
            server: remote.server.clone(),
            sid: remote.sid.clone(),
            client_secret: remote.client_secret.clone(),
            mxid: mxid.clone(),
            medium: session.medium,
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
        (medium, address, mxid): (Medium, &str, &UserId),
        session: Option<&SessionRecord>,
        now_ms: u64,
    ) -> Result<bool> {
        let credentials = match self.store.remote_binding(medium, address)? {
            Some(b) if b.mxid == *mxid => Some((b.server, b.sid, b.client_secret)),
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
            mxid: mxid.clone(),
            medium,
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
    pub fn bind_upstream_only(
        &self,
        session: &SessionRecord,
        mxid: &UserId,
    ) -> Result<Option<Value>> {
        let Some(remote) = self.forwardable(session) else {
            return Ok(None);
        };
        let Some(url) = self.servers.get(&remote.server) else {
            return Ok(None);
        };
        let (medium, address) = (session.medium, &session.address);
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
                mxid: mxid.clone(),
            },
        )?;
        METRICS.remote_binds.inc();
        Ok(Some(answer))
    }

    pub(super) fn take(&self, key: &str) -> Option<Busy<'_>> {
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
            self.deliver_locked(call.medium, &call.address, false)?;
        }
        Ok(())
    }
}
