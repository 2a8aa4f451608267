//! 3PID room invites: store-invite (a pending invite, its ephemeral key and the invite email),
//! sign-ed25519, ephemeral key validity, and turning pending invites into `onbind` deliveries
//! once their 3PID is bound here or becomes known to an identity store.
//!
//! Each invite is delivered by its own `onbind` call: a homeserver that refuses one invite
//! (Synapse answers the whole call with the last invite's error) never makes us send another
//! again, which would take a user who joined back from `join` to `invite`. For the same reason
//! an invite signed through sign-ed25519 (the invitee's client joins with that signature) is
//! never delivered.

mod message;
pub mod outbox;
pub mod redact;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::lookup::Lookups;
use super::rate_limit::{self, RateLimiter, Taken};
use crate::config::{Config, InviteDelivery, InviteDisplayName};
use crate::crypto::base64;
use crate::crypto::random;
use crate::crypto::signing::{KeyPair, sign_json};
use crate::error::{Error, ErrorKind, Result};
use crate::http::paths;
use crate::ids::{RoomId, UserId};
use crate::keys::KeyRing;
use crate::notify::Notifier;
use crate::store::Store;
use crate::store::invites::{InviteRecord, OutboxEntry};
use crate::threepid::{Medium, email};
use message::Invitation;

/// Characters of an invite token (`[a-zA-Z0-9]`, about 190 bits).
const TOKEN_CHARS: usize = 32;
/// Longest room id or sender accepted.
const MAX_ID: usize = 255;

/// A store-invite request.
#[derive(Debug, serde::Deserialize)]
pub struct NewInvite {
    /// Only `email`.
    pub medium: String,
    /// The invitee's address.
    pub address: String,
    /// The room.
    pub room_id: RoomId,
    /// The inviting user.
    pub sender: UserId,
    /// Optional details shown in the email.
    pub room_alias: Option<String>,
    /// The room avatar (mxc URL).
    pub room_avatar_url: Option<String>,
    /// The room's join rules.
    pub room_join_rules: Option<String>,
    /// The room name.
    pub room_name: Option<String>,
    /// The room type (`m.space`).
    pub room_type: Option<String>,
    /// The inviter's display name.
    pub sender_display_name: Option<String>,
    /// The inviter's avatar (mxc URL).
    pub sender_avatar_url: Option<String>,
    /// The web client the inviter uses (Synapse sends it), for the room link in the email.
    #[serde(rename = "org.matrix.web_client_location")]
    pub web_client_location: Option<String>,
}

/// A stored invite, as the homeserver learns it: what goes into the room's
/// `m.room.third_party_invite` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInvite {
    /// The invite token.
    pub token: String,
    /// Our long-term public key (the one the delivery will be signed with), then the invite's
    /// ephemeral one.
    pub public_keys: [InviteKey; 2],
    /// The invitee's address, redacted (`invite.displayName`).
    pub display_name: String,
}

/// A public key of an invite and where its validity is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteKey {
    /// Unpadded base64.
    pub public_key: String,
    /// Our `isvalid` endpoint for that kind of key.
    pub key_validity_url: String,
}

/// The invite service.
pub struct Invites {
    enabled: bool,
    lifetime_ms: Option<u64>,
    register_url: String,
    web_client: String,
    public_url: String,
    server_name: String,
    display_name: InviteDisplayName,
    per_sender: RateLimiter,
    per_server: RateLimiter,
    per_recipient: RateLimiter,
    per_client: RateLimiter,
    blocked_rooms: Vec<String>,
    blocked_servers: Vec<String>,
    /// Retry policy of `onbind` calls.
    pub delivery: InviteDelivery,
    /// How often pending invites are checked against the identity stores.
    pub resolve_every: Option<Duration>,
    /// Set when the outbox has new work; the courier waits on it.
    work: (Mutex<bool>, Condvar),
    store: Arc<Store>,
    keys: Arc<KeyRing>,
    notifier: Arc<Notifier>,
    /// Whether an address is bound already, and pending invites' 3PIDs in the identity stores.
    lookups: Arc<Lookups>,
}

impl Invites {
    /// The service as configured: invites are kept in `store`, answered with the keys of
    /// `keys`, mailed through `notifier`; `lookups` tells whether an address is bound.
    pub fn new(
        config: &Config,
        store: Arc<Store>,
        keys: Arc<KeyRing>,
        notifier: Arc<Notifier>,
        lookups: Arc<Lookups>,
    ) -> Invites {
        let c = &config.invite;
        Invites {
            enabled: c.enabled,
            lifetime_ms: c.expiration.lifetime_ms(),
            register_url: c.register_url.clone(),
            web_client: c.web_client.trim_end_matches('/').to_string(),
            public_url: config.server.public_url().trim_end_matches('/').to_string(),
            server_name: config.server.name.clone(),
            display_name: c.display_name.clone(),
            per_sender: RateLimiter::new("invites from this user", c.rate_limit.per_sender),
            per_server: RateLimiter::new("invites from this homeserver", c.rate_limit.per_server),
            per_recipient: RateLimiter::new("invites to this address", c.rate_limit.per_recipient),
            per_client: RateLimiter::new("invites from this client", c.rate_limit.per_client),
            blocked_rooms: c.blocked.rooms.clone(),
            blocked_servers: c
                .blocked
                .servers
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            delivery: c.delivery.clone(),
            resolve_every: (c.resolution.timer > 0)
                .then(|| Duration::from_secs(c.resolution.timer * 60)),
            work: (Mutex::new(false), Condvar::new()),
            store,
            keys,
            notifier,
            lookups,
        }
    }

    fn check_enabled(&self) -> Result<()> {
        if self.enabled {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Forbidden,
                "3PID invites are disabled on this server",
            ))
        }
    }

    /// store-invite: checks the request, stores the invite with a fresh ephemeral key, emails
    /// the invitee and answers what the room's invite event needs.
    /// `requester` is the token's user on v2; `client` the caller's address (a rate-limit key:
    /// whatever sender a caller names, its invites count against its own address).
    pub fn store_invite(
        &self,
        req: &NewInvite,
        requester: Option<&UserId>,
        client: &str,
        now_ms: u64,
    ) -> Result<StoredInvite> {
        let (sender_server, address) = self.check_new(req, requester, now_ms)?;
        // Taken now, all together; given back below if the invite cannot be stored or mailed.
        let taken = rate_limit::take(
            &[
                (&self.per_sender, req.sender.as_str()),
                (&self.per_server, sender_server.as_str()),
                (&self.per_recipient, address.as_str()),
                (&self.per_client, client),
            ],
            now_ms,
        )?;
        let (record, ephemeral) = match self.keep(req, &address, now_ms) {
            Ok(kept) => kept,
            Err(e) => {
                taken.give_back();
                return Err(e);
            }
        };
        self.mail(req, &record, &ephemeral, &sender_server, taken)?;
        crate::metrics::METRICS.invites_stored.inc();
        log::info!("stored an invite to {} from {}", req.room_id, req.sender);
        Ok(self.stored(&record, &ephemeral))
    }

    /// The checks of a store-invite request, before anything is counted: the sender's server
    /// name and the normalised address when it may be invited.
    fn check_new(
        &self,
        req: &NewInvite,
        requester: Option<&UserId>,
        now_ms: u64,
    ) -> Result<(String, String)> {
        self.check_enabled()?;
        let sender_server = req.sender.server_name().to_ascii_lowercase();
        if requester.is_some_and(|user| *user != req.sender) {
            return Err(Error::new(
                ErrorKind::NotOwnUser,
                "'sender' must be the user of the access token",
            ));
        }
        if self.blocked_rooms.iter().any(|r| req.room_id == *r)
            || self.blocked_servers.contains(&sender_server)
        {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "Invites from this room or homeserver are not accepted here",
            ));
        }
        if Medium::parse(&req.medium) != Some(Medium::Email) {
            return Err(Error::new(
                ErrorKind::UnsupportedValue,
                format!("Invites by '{}' are not supported: only email", req.medium),
            ));
        }
        let address = email::normalise(&req.address)?;
        if let Some(bound) = self.lookups.find(Medium::Email, &address, now_ms)? {
            return Err(Error::new(
                ErrorKind::ThreepidInUse,
                "This address is bound to a Matrix user: invite that user",
            )
            .with_extra("mxid", bound.mxid));
        }
        Ok((sender_server, address))
    }

    /// Stores the invite of `req` to `address` with a new token and ephemeral key; durable
    /// when this returns.
    fn keep(&self, req: &NewInvite, address: &str, now_ms: u64) -> Result<(InviteRecord, KeyPair)> {
        let token = random::alphanumeric(TOKEN_CHARS)?;
        let ephemeral = KeyPair::generate("ed25519:0")
            .map_err(|e| Error::internal(format_args!("no randomness: {e}")))?;
        let record = InviteRecord {
            token,
            medium: Medium::Email,
            address: address.to_string(),
            room_id: req.room_id.clone(),
            sender: req.sender.clone(),
            ephemeral_key: ephemeral.public_key(),
            key_id: self.keys.signing().id().to_string(),
            signed_for: None,
            created_ms: now_ms,
            expires_ms: self
                .lifetime_ms
                .map_or(u64::MAX, |l| now_ms.saturating_add(l)),
        };
        self.store.put_invite(&record)?;
        self.store.durable()?;
        Ok((record, ephemeral))
    }

    /// Emails the stored invite. No email, no invite: the room would wait for an answer
    /// nobody was asked for, so a failure removes it again and gives the rate limits back.
    fn mail(
        &self,
        req: &NewInvite,
        record: &InviteRecord,
        ephemeral: &KeyPair,
        sender_server: &str,
        taken: Taken<'_>,
    ) -> Result<()> {
        let private_key = base64::encode_url(&ephemeral.seed());
        let sign_url = format!(
            "{}{}{}?token={}&private_key={private_key}",
            self.public_url,
            paths::V1,
            paths::SIGN_ED25519,
            record.token,
        );
        let invitation = Invitation {
            address: &record.address,
            token: &record.token,
            private_key: &private_key,
            sign_url: &sign_url,
            register_url: &self.register_url,
            web_client: &self.web_client,
        };
        if let Err(e) = message::send(&self.notifier, req, &invitation) {
            taken.give_back();
            self.store.delete_invite(record)?;
            log::warn!("invite email to an address of {sender_server}'s user not sent: {e}");
            return Err(Error::new(
                ErrorKind::EmailSendError,
                "The invite email could not be sent",
            ));
        }
        Ok(())
    }

    /// What the homeserver learns of a stored invite.
    fn stored(&self, record: &InviteRecord, ephemeral: &KeyPair) -> StoredInvite {
        let long_term = self
            .keys
            .get(&record.key_id)
            .unwrap_or_else(|| self.keys.signing())
            .public_key_base64();
        let url = |path: &str| format!("{}{}{path}", self.public_url, paths::V2);
        StoredInvite {
            token: record.token.clone(),
            public_keys: [
                InviteKey {
                    public_key: long_term,
                    key_validity_url: url(paths::PUBKEY_ISVALID),
                },
                InviteKey {
                    public_key: base64::encode_url(&ephemeral.public_key()),
                    key_validity_url: url(paths::EPHEMERAL_PUBKEY_ISVALID),
                },
            ],
            display_name: redact::redact_address(
                &record.address,
                self.display_name.local_part,
                self.display_name.domain,
            ),
        }
    }

    /// sign-ed25519: `{mxid, sender, token}` signed with the invite's ephemeral key, which the
    /// caller proves to hold by sending its private half. 404 `M_UNRECOGNIZED` for an unknown
    /// token or a key that is not the invite's.
    ///
    /// The invitee's client joins the room with this signature, so the first signature makes
    /// the invite redeemed: no later bind queues it and a queued delivery of it is dropped (see
    /// [`InviteRecord::signed_for`]). The invite stays until it expires, and a repeated request
    /// is answered as the first.
    pub fn sign(&self, mxid: &UserId, token: &str, private_key: &str) -> Result<Value> {
        self.check_enabled()?;
        let unknown = || Error::new(ErrorKind::Unrecognized, "Didn't recognize token");
        if token.len() > MAX_ID {
            return Err(unknown());
        }
        let invite = self.store.invite(token)?.ok_or_else(unknown)?;
        let seed: [u8; 32] = base64::decode(private_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(unknown)?;
        let key = KeyPair::from_seed("ed25519:0", &seed);
        if !random::constant_time_eq(&key.public_key(), &invite.ephemeral_key) {
            return Err(unknown());
        }
        let mut signed = json!({ "mxid": mxid, "sender": invite.sender, "token": invite.token });
        sign_json(&mut signed, &self.server_name, &key).map_err(Error::internal)?;
        if invite.signed_for.is_none() && self.store.mark_invite_signed(&invite.token, mxid)? {
            log::info!(
                "signed an invite to {} for {mxid} (sign-ed25519): it is redeemed by joining, not delivered by onbind",
                invite.room_id
            );
        }
        Ok(signed)
    }

    /// Whether `public_key` (either base64 alphabet) is the ephemeral key of a live invite.
    pub fn is_valid_ephemeral_key(&self, public_key: &str) -> Result<bool> {
        let Some(raw) = base64::decode(public_key).and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Ok(false);
        };
        Ok(self.store.invite_of_ephemeral_key(&raw)?.is_some())
    }

    /// Queues the `onbind` delivery of the pending invites of (medium, address), now bound to
    /// `mxid`, one call per invite; returns how many invites were queued. Invites signed
    /// through sign-ed25519 are redeemed already and left out. Durable when this returns.
    pub fn claim(
        &self,
        medium: Medium,
        address: &str,
        mxid: &UserId,
        now_ms: u64,
    ) -> Result<usize> {
        let invites: Vec<InviteRecord> = self
            .store
            .pending_invites(medium, address)?
            .into_iter()
            .filter(|i| i.expires_ms > now_ms && i.signed_for.is_none())
            .collect();
        if invites.is_empty() {
            return Ok(0);
        }
        let server = mxid.server_name().to_string();
        let mut entries = Vec::with_capacity(invites.len());
        for invite in &invites {
            let mut signed = json!({ "mxid": mxid, "token": invite.token });
            // The key the invite was stored with: the room's invite event names its public key.
            let key = self
                .keys
                .get(&invite.key_id)
                .unwrap_or_else(|| self.keys.signing());
            sign_json(&mut signed, &self.server_name, &key).map_err(Error::internal)?;
            entries.push(OutboxEntry {
                server: server.clone(),
                body: json!({
                    "medium": medium,
                    "address": address,
                    "mxid": mxid,
                    "invites": [{
                        "medium": invite.medium,
                        "address": invite.address,
                        "mxid": mxid,
                        "room_id": invite.room_id,
                        "sender": invite.sender,
                        "signed": signed,
                    }],
                }),
                tokens: vec![invite.token.clone()],
                attempts: 0,
                next_attempt_ms: now_ms,
                created_ms: now_ms,
            });
        }
        self.store.queue_onbinds(&entries, &invites)?;
        log::info!(
            "queued {} invite(s) for delivery to {}",
            invites.len(),
            server
        );
        self.wake();
        Ok(invites.len())
    }

    /// Claims the pending invites whose 3PID some identity store now knows; returns how many.
    pub fn resolve_pending(&self, now_ms: u64) -> Result<usize> {
        let mut claimed = 0;
        for (medium, address) in self.store.pending_invite_threepids()? {
            let Some(medium) = Medium::parse(&medium) else {
                continue;
            };
            if let Some(b) = self.lookups.find(medium, &address, now_ms)? {
                let mxid = UserId::try_from(b.mxid)?;
                claimed += self.claim(medium, &address, &mxid, now_ms)?;
            }
        }
        Ok(claimed)
    }

    /// Tells the courier that the outbox has new work.
    pub fn wake(&self) {
        let (lock, cond) = &self.work;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cond.notify_all();
    }

    /// Waits for new work or `timeout`, whichever comes first.
    pub fn wait_for_work(&self, timeout: Duration) {
        let (lock, cond) = &self.work;
        let mut pending = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !*pending {
            pending = cond
                .wait_timeout(pending, timeout)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *pending = false;
    }
}
