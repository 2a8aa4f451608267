//! Binds and unbinds: publishing a validated 3PID -> user association (signed with our key and
//! stored so lookups find it), and removing it on proof of ownership or on the word of the
//! user's homeserver. Any other unbind attempt is refused and, by policy, reported to the owner.

use std::sync::Arc;

use serde_json::Value;

use super::invites::Invites;
use super::lookup::signed_association;
use super::pepper::Peppers;
use super::rate_limit::RateLimiter;
use super::remote::RemoteSessions;
use super::sessions::Sessions;
use super::xmatrix::{SignedRequest, Verifier, XMatrix, XMatrixError};
use crate::config::{Config, RateLimit};
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::HomeserverClient;
use crate::ids::{SessionId, UserId};
use crate::keys::KeyRing;
use crate::notify::Notifier;
use crate::store::Store;
use crate::store::bindings::BindingRecord;
use crate::threepid::{Medium, email};

/// Bindings made here are stored under this source.
pub const BUILTIN: &str = "builtin";
/// How long a binding is declared valid (sydent: 100 years).
pub const VALIDITY_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// The bind and unbind service.
pub struct Bindings {
    deps: Deps,
    store_bindings: bool,
    allowed_servers: Vec<String>,
    server_name: String,
    destinations: Vec<String>,
    send_warning: bool,
    notify_unbinds: bool,
    warnings: RateLimiter,
    verifier: Verifier,
}

/// What binds and unbinds work with, shared with the other services.
pub struct Deps {
    /// The store.
    pub store: Arc<Store>,
    /// Validation sessions.
    pub sessions: Arc<Sessions>,
    /// Lookup peppers.
    pub peppers: Arc<Peppers>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Outbound client, for homeserver keys.
    pub homeserver: Arc<HomeserverClient>,
    /// Notifications.
    pub notifier: Arc<Notifier>,
    /// Pending invites, delivered when their 3PID is bound.
    pub invites: Arc<Invites>,
    /// Upstream identity servers that binds are forwarded to.
    pub remote: Arc<RemoteSessions>,
}

/// Checks a Matrix user id (see [`crate::ids::check_user_id`]).
pub use crate::ids::check_user_id;

/// Normalises a 3PID named in a request: 400 `M_INVALID_PARAM` for an unknown medium or an
/// address that cannot be one.
pub fn normalise_threepid(medium: &str, address: &str) -> Result<(Medium, String)> {
    let medium = Medium::of_request(medium)?;
    Ok((medium, normalise_address(medium, address)?))
}

/// Normalises the address of a 3PID of `medium` named in a request: 400 `M_INVALID_PARAM` for
/// an address that cannot be one.
pub fn normalise_address(medium: Medium, address: &str) -> Result<String> {
    match medium {
        Medium::Email => email::normalise(address)
            .map_err(|e| Error::new(ErrorKind::InvalidParam, e.message().to_string())),
        Medium::Msisdn
            if !address.is_empty()
                && address.len() <= 15
                && address.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(address.to_string())
        }
        Medium::Msisdn => Err(Error::new(
            ErrorKind::InvalidParam,
            "An msisdn is the E.164 digits, without '+'",
        )),
    }
}

/// An unbind request.
pub struct Unbind<'a> {
    /// The user the 3PID is unbound from.
    pub mxid: &'a UserId,
    /// The 3PID's medium.
    pub medium: Medium,
    /// The 3PID's address.
    pub address: &'a str,
    /// Proof of ownership: a validated session.
    pub session: Option<(&'a str, &'a str)>,
    /// Proof from the homeserver: the X-Matrix authorization, with the request line and body.
    pub signed: Option<(XMatrix, &'a str, &'a str, &'a Value)>,
}

impl Bindings {
    /// The service, from the configuration.
    pub fn new(config: &Config, deps: Deps) -> Bindings {
        Bindings {
            deps,
            store_bindings: config.bind.store,
            allowed_servers: config.bind.allowed_servers.clone(),
            server_name: config.server.name.clone(),
            destinations: config.server.destinations(),
            send_warning: config.session.policy.unbind.fraudulent.send_warning,
            notify_unbinds: config.session.policy.unbind.notifications,
            warnings: RateLimiter::new(
                "unbind warnings",
                RateLimit {
                    burst: 1,
                    refill: 24 * 3600,
                },
            ),
            verifier: Verifier::default(),
        }
    }

    /// `bind`: the validated session's 3PID is bound to `mxid` (replacing an earlier binding)
    /// and the signed association is returned.
    ///
    /// Errors: as getValidated3pid (404 `M_NO_VALID_SESSION`, 400 `M_SESSION_EXPIRED`,
    /// `M_SESSION_NOT_VALIDATED`); 400 `M_INVALID_PARAM` (mxid); 403 `M_UNAUTHORIZED` (another
    /// user's mxid on v2, as sydent answers); 403 `M_FORBIDDEN` (a homeserver not allowed by
    /// `bind.allowedServers`).
    pub fn bind(
        &self,
        sid: &SessionId,
        client_secret: &str,
        mxid: &UserId,
        requester: Option<&UserId>,
        now_ms: u64,
    ) -> Result<Value> {
        let server = mxid.server_name();
        if requester.is_some_and(|user| user != mxid) {
            return Err(Error::new(
                ErrorKind::NotOwnUser,
                "You can only bind 3PIDs to your own user id",
            ));
        }
        if !self.allowed_servers.is_empty()
            && !self
                .allowed_servers
                .iter()
                .any(|s| s.eq_ignore_ascii_case(server))
        {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!(
                    "Only user ids of {} can be bound here",
                    self.allowed_servers.join(", ")
                ),
            ));
        }
        let cx = &self.deps;
        let session = cx.sessions.validated(sid, client_secret, now_ms)?;
        if !cx.remote.binds_here(session.medium, &session.address) {
            // Published upstream only: the upstream's answer is the association.
            return match cx.remote.bind_upstream_only(&session, mxid)? {
                Some(answer) => {
                    log::info!("forwarded a {} bind to the upstream only", session.medium);
                    Ok(answer)
                }
                None => Err(Error::new(
                    ErrorKind::SessionNotValidated,
                    "This address is published at another identity server: finish its validation there first",
                )),
            };
        }
        let record = BindingRecord {
            medium: session.medium.as_str().to_string(),
            address: session.address.clone(),
            mxid: mxid.to_string(),
            ts: now_ms,
            not_before: now_ms,
            not_after: now_ms.saturating_add(VALIDITY_MS),
        };
        if self.store_bindings {
            let peppers = cx.peppers.for_writes();
            cx.store.put_binding(BUILTIN, &record, &peppers.all())?;
            cx.store.durable()?;
        }
        log::info!("bound a {} to {mxid}", record.medium);
        // A validated upstream session: bind there too, through the outbox (retried when the
        // upstream fails). Its failure does not undo ours.
        if let Err(e) = cx.remote.forward_bind(&session, mxid, now_ms) {
            log::error!(
                "queueing the bind of a {} upstream failed: {e}",
                record.medium
            );
        }
        // The bind stands either way; invites left pending are claimed by the next resolution.
        if let Err(e) = cx
            .invites
            .claim(session.medium, &record.address, mxid, now_ms)
        {
            log::error!("queueing the invites of a newly bound 3PID failed: {e}");
        }
        signed_association(&record, &self.server_name, &cx.keys.signing())
    }

    /// `unbind`: removes the binding when the request proves ownership of the 3PID or comes
    /// signed from the user's homeserver. Anything else is refused with 403 `M_FORBIDDEN` and
    /// reported to the 3PID's owner (once a day at most, and only if it is bound).
    pub fn unbind(&self, req: &Unbind<'_>, now_ms: u64) -> Result<()> {
        let cx = &self.deps;
        let server = req.mxid.server_name();
        let medium = req.medium;
        let address = normalise_address(medium, req.address)?;
        let mut proof = None;
        let refused = match (&req.session, &req.signed) {
            (Some((sid, secret)), _) => match SessionId::parse(sid)
                .and_then(|sid| cx.sessions.validated(&sid, secret, now_ms))
            {
                Ok(s) if s.medium == medium && s.address == address => {
                    proof = Some(s);
                    None
                }
                Ok(_) => Some("the session is for another 3PID".to_string()),
                Err(e) => Some(format!("no valid session: {}", e.message())),
            },
            (None, Some((auth, method, uri, content))) => {
                if !auth.origin.eq_ignore_ascii_case(server) {
                    Some(format!("signed by {} for a user of {server}", auth.origin))
                } else {
                    let request = SignedRequest {
                        auth,
                        method,
                        uri,
                        content,
                    };
                    match self
                        .verifier
                        .verify(&cx.homeserver, &request, &self.destinations, now_ms)
                    {
                        Ok(_) => None,
                        Err(XMatrixError::KeyUnavailable(why)) => {
                            return Err(Error::new(
                                ErrorKind::BadGateway,
                                "The homeserver's signing key could not be fetched",
                            )
                            .with_detail(why));
                        }
                        Err(e) => Some(e.to_string()),
                    }
                }
            }
            (None, None) => Some("no proof of ownership and no homeserver signature".to_string()),
        };
        if let Some(why) = refused {
            log::warn!("refused an unbind of a {medium} from {}: {why}", req.mxid);
            self.warn_owner(medium, &address, now_ms);
            return Err(Error::new(
                ErrorKind::Forbidden,
                "Unbinding needs a validated session for this 3PID or a signature of the user's homeserver",
            ));
        }
        let bound = cx.store.binding(medium.as_str(), &address, BUILTIN)?;
        if bound.as_ref().is_some_and(|b| *req.mxid == b.mxid) {
            let peppers = cx.peppers.for_writes();
            cx.store
                .delete_binding(BUILTIN, medium.as_str(), &address, &peppers.all())?;
            cx.store.durable()?;
            log::info!("unbound a {medium} from {}", req.mxid);
            if self.notify_unbinds
                && let Err(e) = cx.notifier.send_unbind(false, medium, &address)
            {
                log::warn!("could not tell the owner about an unbind: {e}");
            }
        }
        // Bound upstream through us: unbind there too (queued, retried when it fails), so
        // that the address does not stay discoverable there.
        if let Err(e) =
            cx.remote
                .forward_unbind((medium, &address, req.mxid), proof.as_ref(), now_ms)
        {
            log::error!("queueing the unbind of a {medium} upstream failed: {e}");
        }
        Ok(())
    }

    fn warn_owner(&self, medium: Medium, address: &str, now_ms: u64) {
        if !self.send_warning {
            return;
        }
        let cx = &self.deps;
        match cx.store.binding(medium.as_str(), address, BUILTIN) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                log::warn!("cannot check a binding: {e}");
                return;
            }
        }
        // At most one warning a day per 3PID, counted when tried: a failed send is not retried
        // sooner, so a stranger cannot make us hammer the mail server or SMS provider.
        let key = format!("{medium}:{address}");
        let Ok(_counted) = self.warnings.take(&key, now_ms) else {
            return;
        };
        if let Err(e) = cx.notifier.send_unbind(true, medium, address) {
            log::warn!("could not warn the owner about a refused unbind: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threepids_are_normalised() {
        assert_eq!(
            normalise_threepid("email", "Alice@Example.ORG").unwrap(),
            (Medium::Email, "alice@example.org".into())
        );
        assert_eq!(
            normalise_threepid("msisdn", "447911123456").unwrap(),
            (Medium::Msisdn, "447911123456".into())
        );
        assert!(normalise_threepid("msisdn", "+447911123456").is_err());
        assert!(normalise_threepid("fax", "1").is_err());
    }
}
