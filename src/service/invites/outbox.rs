//! Delivery of claimed invites: `onbind` calls to the invitee's homeserver, taken from the
//! store's outbox.
//!
//! What an answer means for an entry:
//! - 2xx: delivered; the entry leaves the outbox with its invites.
//! - 4xx other than 408 and 429, a destination the address guard refuses, an invalid server
//!   name: refused for good. The entry leaves the outbox with its invites at once, logged at
//!   warn with the homeserver's answer. (Synapse refuses an invite the user can no longer take,
//!   e.g. 403 "You are not invited to this room." once they joined; sending it again would
//!   only do harm.)
//! - 5xx, 408, 429, no answer in time, no connection, too many calls in progress
//!   ([`HsError::Busy`]): retried with exponential backoff, across restarts, and given up
//!   (logged as an error) `invite.delivery.giveUpAfter` days after it was queued.
//!
//! An entry whose invites were all signed through sign-ed25519 meanwhile is dropped when its
//! turn comes, without a call (the invitee joins with that signature); an older entry with
//! several invites is sent without the signed ones.
//!
//! The [`Courier`] works on destinations concurrently, each destination's entries one after
//! the other in the order they were queued, so a slow or dead homeserver holds up only its own
//! invites. It never makes more than one call to a destination at once (under
//! `outbound.maxPerDestination`), and when a destination does not answer (no connection, no
//! answer in time, 429, busy) the rest of its due entries wait with the failed one instead of
//! each waiting out its own timeout.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Scope;
use std::time::Duration;

use serde_json::Value;

use crate::config::InviteDelivery;
use crate::error::Result;
use crate::homeserver::{HomeserverClient, HsError};
use crate::store::Store;
use crate::store::invites::OutboxEntry;

/// Where homeservers take invites for a newly bound 3PID.
pub const ONBIND_PATH: &str = "/_matrix/federation/v1/3pid/onbind";

/// Destinations worked on at once, at most.
pub const MAX_WORKERS: usize = 8;

/// What to do with an entry after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused for good: drop the entry with its invites.
    Final,
    /// Try again later; `unanswered` when the destination itself did not answer (the rest of
    /// its entries wait too).
    Retry {
        /// No answer from the destination (or not tried).
        unanswered: bool,
    },
}

/// Whether a failed `onbind` call is tried again.
pub fn verdict(e: &HsError) -> Verdict {
    match e {
        HsError::InvalidServerName(_) | HsError::Refused(_) => Verdict::Final,
        HsError::Status { status: 408, .. } => Verdict::Retry { unanswered: false },
        HsError::Status { status: 429, .. } => Verdict::Retry { unanswered: true },
        HsError::Status { status, .. } if (400..500).contains(status) => Verdict::Final,
        HsError::Status { .. } | HsError::BadResponse(_) => Verdict::Retry { unanswered: false },
        HsError::Unreachable(_) | HsError::Timeout(_) | HsError::Busy(_) => {
            Verdict::Retry { unanswered: true }
        }
    }
}

/// Delivers the outbox: a dispatcher (the courier thread, calling [`Courier::dispatch`]) and
/// one worker thread per destination that has due entries, at most `max_workers` at once.
pub struct Courier<'a> {
    store: &'a Store,
    homeserver: &'a HomeserverClient,
    delivery: &'a InviteDelivery,
    max_workers: usize,
    /// The current time, ms since the epoch.
    now: &'a (dyn Fn() -> u64 + Sync),
    /// Called when a worker ends, so the dispatcher looks again.
    wake: &'a (dyn Fn() + Sync),
    stop: &'a AtomicBool,
    /// Destinations (lower case) a worker is on, and those left alone for a while.
    state: Mutex<Workers>,
}

/// What the workers are doing.
#[derive(Default)]
struct Workers {
    /// Destinations (lower case) a worker is on.
    busy: HashSet<String>,
    /// Destinations whose worker met a store error, and until when (ms since the epoch) they
    /// are left alone (their entries could not be updated, so they would be due at once).
    resting: HashMap<String, u64>,
}

/// How long a destination whose worker met a store error is left alone.
const REST_MS: u64 = 10_000;

/// A destination's place among the busy ones, given back (and the dispatcher woken) when its
/// worker ends, however it ends.
struct Busy<'c, 'a> {
    courier: &'c Courier<'a>,
    destination: String,
    /// Set when the worker failed: the destination rests until then.
    rest_until: Option<u64>,
}

impl Drop for Busy<'_, '_> {
    fn drop(&mut self) {
        let mut state = self.courier.lock_state();
        state.busy.remove(&self.destination);
        if let Some(until) = self.rest_until {
            state.resting.insert(self.destination.clone(), until);
        }
        drop(state);
        (self.courier.wake)();
    }
}

impl<'a> Courier<'a> {
    /// A courier with no worker running yet.
    pub fn new(
        store: &'a Store,
        homeserver: &'a HomeserverClient,
        delivery: &'a InviteDelivery,
        max_workers: usize,
        now: &'a (dyn Fn() -> u64 + Sync),
        wake: &'a (dyn Fn() + Sync),
        stop: &'a AtomicBool,
    ) -> Courier<'a> {
        Courier {
            store,
            homeserver,
            delivery,
            max_workers: max_workers.max(1),
            now,
            wake,
            stop,
            state: Mutex::new(Workers::default()),
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Workers> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a worker in `scope` for each destination with due entries that has none yet, up
    /// to the cap (oldest entries first); returns when the next entry of a destination without
    /// a worker is due (ms since the epoch), if any. A worker wakes the dispatcher as it ends.
    pub fn dispatch<'scope>(
        &'scope self,
        scope: &'scope Scope<'scope, '_>,
        now_ms: u64,
    ) -> Result<Option<u64>> {
        let outbox = self.store.outbox()?;
        let mut state = self.lock_state();
        state.resting.retain(|_, until| *until > now_ms);
        let Workers { busy, resting } = &mut *state;
        let mut next: Option<u64> = None;
        let mut order: Vec<String> = Vec::new();
        let mut due: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (id, entry) in outbox {
            let destination = entry.server.to_ascii_lowercase();
            if busy.contains(&destination) {
                continue;
            }
            let due_ms = entry
                .next_attempt_ms
                .max(resting.get(&destination).copied().unwrap_or(0));
            if due_ms > now_ms {
                next = Some(next.map_or(due_ms, |n| n.min(due_ms)));
                continue;
            }
            due.entry(destination.clone())
                .or_insert_with(|| {
                    order.push(destination);
                    Vec::new()
                })
                .push(id);
        }
        for destination in order {
            if busy.len() >= self.max_workers {
                // A worker ending wakes the dispatcher for the rest.
                break;
            }
            let ids = due.remove(&destination).unwrap_or_default();
            log::debug!("courier: {} due onbind call(s) to {destination}", ids.len());
            busy.insert(destination.clone());
            let name = format!("courier-{}", busy.len());
            let spawned = std::thread::Builder::new().name(name).spawn_scoped(scope, {
                let destination = destination.clone();
                move || {
                    let mut busy = Busy {
                        courier: self,
                        destination,
                        rest_until: None,
                    };
                    let worked =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.work(&ids)));
                    let failure = match worked {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => {
                            crate::metrics::METRICS.task_panics.inc();
                            Some("background task 'courier' panicked in its worker".to_string())
                        }
                    };
                    if let Some(e) = failure {
                        log::error!(
                            "delivering invites to {} failed, trying again in {} s: {e}",
                            busy.destination,
                            REST_MS / 1000
                        );
                        busy.rest_until = Some((self.now)() + REST_MS);
                    }
                }
            });
            if let Err(e) = spawned {
                busy.remove(&destination);
                log::error!("cannot start a courier worker, invites wait: {e}");
                next = Some(next.map_or(now_ms + 1000, |n| n.min(now_ms + 1000)));
                break;
            }
        }
        Ok(next)
    }

    /// Works through the entries `ids` of one destination, in order.
    fn work(&self, ids: &[Vec<u8>]) -> Result<()> {
        let mut held_until: Option<u64> = None;
        for id in ids {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Some(mut entry) = self.store.outbox_entry(id)? else {
                continue;
            };
            if let Some(until) = held_until {
                // The destination did not answer: this entry waits with the failed one,
                // without an attempt counted.
                if entry.next_attempt_ms < until {
                    entry.next_attempt_ms = until;
                    self.store.update_outbox(id, &entry)?;
                }
                continue;
            }
            held_until = deliver(
                self.store,
                self.homeserver,
                self.delivery,
                id,
                entry,
                (self.now)(),
            )?;
        }
        Ok(())
    }
}

/// Makes the call of the outbox entry `id` (or drops it if its invites were redeemed through
/// sign-ed25519) and records the outcome. Returns the time of the next attempt when the
/// destination did not answer.
fn deliver(
    store: &Store,
    homeserver: &HomeserverClient,
    delivery: &InviteDelivery,
    id: &[u8],
    entry: OutboxEntry,
    now_ms: u64,
) -> Result<Option<u64>> {
    let Some(mut entry) = without_signed(store, id, entry)? else {
        return Ok(None);
    };
    let e = match send(homeserver, &entry) {
        Ok(()) => {
            store.finish_onbind(id, &entry)?;
            crate::metrics::METRICS.onbind_delivered.inc();
            log::info!(
                "delivered {} invite(s) to {} (onbind)",
                entry.tokens.len(),
                entry.server
            );
            return Ok(None);
        }
        Err(e) => e,
    };
    let unanswered = match verdict(&e) {
        Verdict::Final => {
            crate::metrics::METRICS.onbind_refused.inc();
            log::warn!(
                "onbind to {} refused, not retried: dropped {} invite(s) for {} to {}: {}",
                entry.server,
                entry.tokens.len(),
                entry.body["mxid"].as_str().unwrap_or("?"),
                rooms_of(&entry),
                describe(&e)
            );
            store.finish_onbind(id, &entry)?;
            return Ok(None);
        }
        Verdict::Retry { unanswered } => unanswered,
    };
    crate::metrics::METRICS.onbind_failed.inc();
    let age = now_ms.saturating_sub(entry.created_ms);
    if age >= delivery.give_up_after.saturating_mul(24 * 3600 * 1000) {
        log::error!(
            "gave up delivering {} invite(s) to {} after {} attempts over {} days: {}",
            entry.tokens.len(),
            entry.server,
            entry.attempts + 1,
            delivery.give_up_after,
            describe(&e)
        );
        store.finish_onbind(id, &entry)?;
        return Ok(None);
    }
    entry.attempts += 1;
    let wait = backoff(delivery, entry.attempts);
    entry.next_attempt_ms = now_ms + wait.as_millis() as u64;
    log::warn!(
        "onbind to {} failed (attempt {}), retrying in {} s: {}",
        entry.server,
        entry.attempts,
        wait.as_secs(),
        describe(&e)
    );
    store.update_outbox(id, &entry)?;
    Ok(unanswered.then_some(entry.next_attempt_ms))
}

/// `entry` without the invites signed through sign-ed25519 (stored so), or None when none is
/// left (the entry is dropped, its invites kept for sign-ed25519 until they expire).
fn without_signed(store: &Store, id: &[u8], entry: OutboxEntry) -> Result<Option<OutboxEntry>> {
    let mut signed = Vec::new();
    for token in &entry.tokens {
        if let Some(invite) = store.invite(token)?
            && let Some(mxid) = invite.signed_for
        {
            signed.push((token.clone(), mxid));
        }
    }
    if signed.is_empty() {
        return Ok(Some(entry));
    }
    let who: Vec<&str> = signed.iter().map(|(_, m)| m.as_str()).collect();
    log::info!(
        "not delivering {} invite(s) to {}: signed through sign-ed25519 for {} (redeemed by joining)",
        signed.len(),
        entry.server,
        who.join(", ")
    );
    let tokens: Vec<&str> = signed.iter().map(|(t, _)| t.as_str()).collect();
    match remove_tokens(entry, &tokens) {
        None => {
            store.drop_onbind(id)?;
            Ok(None)
        }
        Some(rest) => {
            store.update_outbox(id, &rest)?;
            Ok(Some(rest))
        }
    }
}

/// `entry` without the invites of `tokens` (in `tokens` and in the body), or None when none
/// is left.
fn remove_tokens(mut entry: OutboxEntry, tokens: &[&str]) -> Option<OutboxEntry> {
    entry.tokens.retain(|t| !tokens.contains(&t.as_str()));
    if let Some(invites) = entry.body.get_mut("invites").and_then(Value::as_array_mut) {
        invites.retain(|i| {
            !i["signed"]["token"]
                .as_str()
                .is_some_and(|t| tokens.contains(&t))
        });
        if invites.is_empty() {
            return None;
        }
    }
    (!entry.tokens.is_empty()).then_some(entry)
}

/// The rooms of the invites in `entry`, for the log.
fn rooms_of(entry: &OutboxEntry) -> String {
    let rooms: Vec<&str> = entry.body["invites"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["room_id"].as_str()).collect())
        .unwrap_or_default();
    if rooms.is_empty() {
        "?".into()
    } else {
        rooms.join(", ")
    }
}

/// The error for the log: a homeserver's answer as its status, errcode and error.
pub(crate) fn describe(e: &HsError) -> String {
    match e {
        HsError::Status { status, body } => {
            let errcode = body["errcode"].as_str();
            let error = body["error"].as_str();
            match (errcode, error) {
                (None, None) if body.is_null() => format!("HTTP {status}"),
                (None, None) => format!("HTTP {status} {}", cut(&body.to_string(), 200)),
                _ => format!(
                    "HTTP {status} {}: {}",
                    errcode.unwrap_or("(no errcode)"),
                    cut(error.unwrap_or(""), 200)
                ),
            }
        }
        other => other.to_string(),
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// POSTs the call (what Synapse and Dendrite accept); the spec's PUT when the homeserver
/// answers 404 or 405 to the POST.
fn send(homeserver: &HomeserverClient, entry: &OutboxEntry) -> std::result::Result<(), HsError> {
    // A 2xx answer whose body is not JSON still means the homeserver took the invites.
    let accepted = |r: std::result::Result<serde_json::Value, HsError>| match r {
        Ok(_) | Err(HsError::BadResponse(_)) => Ok(()),
        Err(e) => Err(e),
    };
    match homeserver.send_json("POST", &entry.server, ONBIND_PATH, &entry.body) {
        Err(HsError::Status { status, .. }) if status == 404 || status == 405 => {
            accepted(homeserver.send_json("PUT", &entry.server, ONBIND_PATH, &entry.body))
        }
        other => accepted(other),
    }
}

/// The wait after `attempts` failures: the initial backoff, doubled each time, capped.
pub fn backoff(delivery: &InviteDelivery, attempts: u32) -> Duration {
    let factor = 1u64 << attempts.saturating_sub(1).min(30);
    Duration::from_secs(
        delivery
            .initial_backoff
            .saturating_mul(factor)
            .min(delivery.max_backoff),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let d = InviteDelivery {
            initial_backoff: 10,
            max_backoff: 3600,
            give_up_after: 7,
        };
        let secs: Vec<u64> = [1, 2, 3, 4, 9, 100]
            .iter()
            .map(|a| backoff(&d, *a).as_secs())
            .collect();
        assert_eq!(secs, [10, 20, 40, 80, 2560, 3600]);
    }

    #[test]
    fn client_errors_are_final_and_the_rest_is_retried() {
        let status = |status| HsError::Status {
            status,
            body: json!({"errcode": "M_FORBIDDEN", "error": "You are not invited to this room."}),
        };
        for s in [400, 401, 403, 404, 405, 410, 413, 499] {
            assert_eq!(verdict(&status(s)), Verdict::Final, "{s}");
        }
        for s in [408, 500, 502, 503, 504, 302] {
            assert_eq!(
                verdict(&status(s)),
                Verdict::Retry { unanswered: false },
                "{s}"
            );
        }
        assert_eq!(verdict(&status(429)), Verdict::Retry { unanswered: true });
        assert_eq!(
            verdict(&HsError::Refused("10.0.0.1".into())),
            Verdict::Final
        );
        assert_eq!(
            verdict(&HsError::InvalidServerName("-".into())),
            Verdict::Final
        );
        for e in [
            HsError::Unreachable("x".into()),
            HsError::Timeout("x".into()),
            HsError::Busy("x".into()),
        ] {
            assert_eq!(verdict(&e), Verdict::Retry { unanswered: true }, "{e}");
        }
        assert_eq!(
            describe(&status(403)),
            "HTTP 403 M_FORBIDDEN: You are not invited to this room."
        );
        assert_eq!(
            describe(&HsError::Status {
                status: 502,
                body: Value::Null
            }),
            "HTTP 502"
        );
    }

    #[test]
    fn signed_invites_are_taken_out_of_an_entry_with_several() {
        let invite = |token: &str| json!({"room_id": format!("!{token}:example.org"), "signed": {"token": token}});
        let entry = OutboxEntry {
            server: "example.org".into(),
            body: json!({"mxid": "@a:example.org", "invites": [invite("a"), invite("b"), invite("c")]}),
            tokens: vec!["a".into(), "b".into(), "c".into()],
            attempts: 2,
            next_attempt_ms: 9,
            created_ms: 1,
        };
        let rest = remove_tokens(entry.clone(), &["b"]).unwrap();
        assert_eq!(rest.tokens, ["a", "c"]);
        assert_eq!(
            rest.body["invites"],
            json!([invite("a"), invite("c")]),
            "{}",
            rest.body
        );
        assert_eq!(rooms_of(&rest), "!a:example.org, !c:example.org");
        assert_eq!(remove_tokens(rest, &["a", "c"]), None);
        assert_eq!(remove_tokens(entry, &["a", "b", "c"]), None);
    }
}
