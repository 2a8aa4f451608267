//! Delivery of claimed invites: `onbind` calls to the invitee's homeserver, taken from the
//! store's outbox and retried with exponential backoff until the homeserver accepts them. An
//! entry leaves the outbox (with its invites) only after a 2xx answer, or when it is given up.

use std::time::Duration;

use crate::config::InviteDelivery;
use crate::error::Result;
use crate::homeserver::{HomeserverClient, HsError};
use crate::store::Store;
use crate::store::invites::OutboxEntry;

/// Where homeservers take invites for a newly bound 3PID.
pub const ONBIND_PATH: &str = "/_matrix/federation/v1/3pid/onbind";

/// Makes the calls that are due; returns when the next one is due (ms since the epoch), if
/// any remain.
pub fn deliver_due(
    store: &Store,
    homeserver: &HomeserverClient,
    delivery: &InviteDelivery,
    now_ms: u64,
) -> Result<Option<u64>> {
    let mut next: Option<u64> = None;
    for (id, mut entry) in store.outbox()? {
        if entry.next_attempt_ms > now_ms {
            next = Some(next.map_or(entry.next_attempt_ms, |n| n.min(entry.next_attempt_ms)));
            continue;
        }
        match send(homeserver, &entry) {
            Ok(()) => {
                store.finish_onbind(&id, &entry)?;
                crate::metrics::METRICS.onbind_delivered.inc();
                log::info!(
                    "delivered {} invite(s) to {} (onbind)",
                    entry.tokens.len(),
                    entry.server
                );
            }
            Err(e) => {
                crate::metrics::METRICS.onbind_failed.inc();
                let age = now_ms.saturating_sub(entry.created_ms);
                if age >= delivery.give_up_after.saturating_mul(24 * 3600 * 1000) {
                    log::error!(
                        "gave up delivering {} invite(s) to {} after {} attempts over {} days: {e}",
                        entry.tokens.len(),
                        entry.server,
                        entry.attempts + 1,
                        delivery.give_up_after
                    );
                    store.finish_onbind(&id, &entry)?;
                    continue;
                }
                entry.attempts += 1;
                let wait = backoff(delivery, entry.attempts);
                entry.next_attempt_ms = now_ms + wait.as_millis() as u64;
                log::warn!(
                    "onbind to {} failed (attempt {}), retrying in {} s: {e}",
                    entry.server,
                    entry.attempts,
                    wait.as_secs()
                );
                store.update_outbox(&id, &entry)?;
                next = Some(next.map_or(entry.next_attempt_ms, |n| n.min(entry.next_attempt_ms)));
            }
        }
    }
    Ok(next)
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
}
