//! Making the queued calls: one 3PID's calls in order, each answer judged as onbind answers
//! are ([`outbox::verdict`]), failures retried with backoff until `giveUpAfter`, an upstream
//! that does not answer left alone until the failed call's next attempt; and the remote
//! courier's round over every 3PID with due calls.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::{RemoteSessions, lock};
use crate::error::Result;
use crate::http::paths;
use crate::metrics::METRICS;
use crate::service::invites::outbox::{self, Verdict};
use crate::store::remote::{RemoteCall, RemoteOp};
use crate::threepid::Medium;

impl RemoteOp {
    fn name(self) -> &'static str {
        match self {
            RemoteOp::Bind => "bind",
            RemoteOp::Unbind => "unbind",
        }
    }
}

impl RemoteSessions {
    /// Makes the due calls of one 3PID in order, unless another thread is making them (the
    /// courier is woken when that one ends). True when none is left.
    pub(super) fn deliver_threepid(&self, medium: Medium, address: &str) -> Result<bool> {
        let Some(_busy) = self.take(&format!("{medium}\0{address}")) else {
            return Ok(false);
        };
        self.deliver_locked(medium, address, false)
    }

    /// Makes the calls of one 3PID in order (due or not when `force`), stopping at the first
    /// that must wait. True when none is left.
    pub(super) fn deliver_locked(
        &self,
        medium: Medium,
        address: &str,
        force: bool,
    ) -> Result<bool> {
        let calls = self
            .store
            .remote_outbox()?
            .into_iter()
            .filter(|(_, c)| c.medium == medium && c.address == address);
        for (id, call) in calls {
            let now = crate::util::time::now_ms();
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
        let (op, medium, server) = (call.op.name(), call.medium, call.server.clone());
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
        let mut seen: HashSet<(Medium, String)> = HashSet::new();
        let mut next: Option<u64> = None;
        let mut due = Vec::new();
        for (_, call) in self.store.remote_outbox()? {
            if !seen.insert((call.medium, call.address.clone())) {
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
            self.deliver_threepid(medium, &address)?;
        }
        // Look again soon: what failed is due a backoff (at least 1 s) later, and a 3PID another
        // thread was on wakes us when it is done.
        let soon = now_ms + 1000;
        Ok(Some(next.map_or(soon, |n| n.min(soon))))
    }
}
