//! 3PID room invites: store-invite (a pending invite, its ephemeral key and the invite email),
//! sign-ed25519, ephemeral key validity, and turning pending invites into `onbind` deliveries
//! once their 3PID is bound here or becomes known to an identity store.
//!
//! Each invite is delivered by its own `onbind` call: a homeserver that refuses one invite
//! (Synapse answers the whole call with the last invite's error) never makes us send another
//! again, which would take a user who joined back from `join` to `invite`. For the same reason
//! an invite signed through sign-ed25519 (the invitee's client joins with that signature) is
//! never delivered.

pub mod outbox;
pub mod redact;

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::bindings::check_user_id;
use super::lookup::Lookups;
use super::rate_limit::{self, RateLimiter};
use crate::config::{Config, InviteDelivery, InviteDisplayName};
use crate::crypto::base64;
use crate::crypto::random;
use crate::crypto::signing::{KeyPair, sign_json};
use crate::error::{Error, ErrorKind, Result};
use crate::http::paths;
use crate::keys::KeyRing;
use crate::notify::{InviteMessage, Notifier};
use crate::store::Store;
use crate::store::invites::{InviteRecord, OutboxEntry};
use crate::threepid::{Medium, email};

/// Characters of an invite token (`[a-zA-Z0-9]`, about 190 bits).
const TOKEN_CHARS: usize = 32;
/// Longest room id or sender accepted.
const MAX_ID: usize = 255;
/// Values shown in the invite email are cut to these many characters.
const MAX_NAME: usize = 60;
const MAX_OTHER: usize = 255;

/// A store-invite request.
#[derive(Debug, Default, serde::Deserialize)]
pub struct NewInvite {
    /// Only `email`.
    pub medium: String,
    /// The invitee's address.
    pub address: String,
    /// The room.
    pub room_id: String,
    /// The inviting user.
    pub sender: String,
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

/// Longest room link in the invite email (a mail line holds at most 998 characters).
const MAX_LINK: usize = 900;

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
}

/// What store-invite needs besides the request.
pub struct InviteContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// Our keys.
    pub keys: &'a KeyRing,
    /// The invite email.
    pub notifier: &'a Notifier,
    /// Whether the address is bound already.
    pub lookups: &'a Lookups,
}

impl Invites {
    /// The service as configured.
    pub fn new(config: &Config) -> Invites {
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
    /// the invitee and answers `{token, public_keys, public_key, display_name}`.
    /// `requester` is the token's user on v2; `client` the caller's address (a rate-limit key:
    /// whatever sender a caller names, its invites count against its own address).
    pub fn store_invite(
        &self,
        cx: &InviteContext<'_>,
        req: &NewInvite,
        requester: Option<&str>,
        client: &str,
        now_ms: u64,
    ) -> Result<Value> {
        self.check_enabled()?;
        let sender_server = check_user_id(&req.sender)?.to_ascii_lowercase();
        if requester.is_some_and(|user| user != req.sender) {
            return Err(Error::new(
                ErrorKind::NotOwnUser,
                "'sender' must be the user of the access token",
            ));
        }
        check_room_id(&req.room_id)?;
        if self.blocked_rooms.contains(&req.room_id)
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
        if let Some(bound) = cx.lookups.find(cx.store, "email", &address, now_ms)? {
            return Err(Error::new(
                ErrorKind::ThreepidInUse,
                "This address is bound to a Matrix user: invite that user",
            )
            .with_extra("mxid", bound.mxid));
        }
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

        let token = random::alphanumeric(TOKEN_CHARS)?;
        let ephemeral = KeyPair::generate("ed25519:0")
            .map_err(|e| Error::internal(format_args!("no randomness: {e}")))?;
        let record = InviteRecord {
            token: token.clone(),
            medium: "email".into(),
            address: address.clone(),
            room_id: req.room_id.clone(),
            sender: req.sender.clone(),
            ephemeral_key: ephemeral.public_key(),
            key_id: cx.keys.signing().id().to_string(),
            signed_for: None,
            created_ms: now_ms,
            expires_ms: self
                .lifetime_ms
                .map_or(u64::MAX, |l| now_ms.saturating_add(l)),
        };
        if let Err(e) = cx
            .store
            .put_invite(&record)
            .and_then(|()| cx.store.durable())
        {
            taken.give_back();
            return Err(e);
        }

        let private_key = base64::encode_url(&ephemeral.seed());
        let sign_url = format!(
            "{}{}{}?token={token}&private_key={private_key}",
            self.public_url,
            paths::V1,
            paths::SIGN_ED25519,
        );
        let text = |v: &Option<String>, max: usize| cut(v.as_deref().unwrap_or(""), max);
        let (sender_name, room_name) = (
            text(&req.sender_display_name, MAX_NAME),
            text(&req.room_name, MAX_NAME),
        );
        let (room_alias, room_avatar_url, room_join_rules, room_type, sender_avatar_url) = (
            text(&req.room_alias, MAX_OTHER),
            text(&req.room_avatar_url, MAX_OTHER),
            text(&req.room_join_rules, MAX_OTHER),
            text(&req.room_type, MAX_OTHER),
            text(&req.sender_avatar_url, MAX_OTHER),
        );
        let room_link = self.room_link(
            req,
            &address,
            &sign_url,
            (&room_name, &room_avatar_url, &sender_name, &room_type),
        );
        let message = InviteMessage {
            address: &address,
            sender: &req.sender,
            sender_name: &sender_name,
            sender_avatar_url: &sender_avatar_url,
            room_id: &req.room_id,
            room_name: &room_name,
            room_alias: &room_alias,
            room_avatar_url: &room_avatar_url,
            room_join_rules: &room_join_rules,
            room_type: &room_type,
            token: &token,
            ephemeral_private_key: &private_key,
            sign_url: &sign_url,
            room_link: &room_link,
            register_url: &self.register_url,
        };
        if let Err(e) = cx.notifier.send_invite(&message) {
            // No email, no invite: the room would wait for an answer nobody was asked for.
            taken.give_back();
            cx.store.delete_invite(&record)?;
            log::warn!("invite email to an address of {sender_server}'s user not sent: {e}");
            return Err(Error::new(
                ErrorKind::EmailSendError,
                "The invite email could not be sent",
            ));
        }
        crate::metrics::METRICS.invites_stored.inc();
        drop(taken);
        log::info!("stored an invite to {} from {}", req.room_id, req.sender);

        let long_term = cx
            .keys
            .get(&record.key_id)
            .unwrap_or_else(|| cx.keys.signing())
            .public_key_base64();
        Ok(json!({
            "token": token,
            "public_keys": [
                {
                    "public_key": long_term,
                    "key_validity_url": format!("{}{}{}", self.public_url, paths::V2, paths::PUBKEY_ISVALID),
                },
                {
                    "public_key": base64::encode_url(&ephemeral.public_key()),
                    "key_validity_url": format!("{}{}{}", self.public_url, paths::V2, paths::EPHEMERAL_PUBKEY_ISVALID),
                },
            ],
            "public_key": long_term,
            "display_name": redact::redact_address(
                &address,
                self.display_name.local_part,
                self.display_name.domain,
            ),
        }))
    }

    /// The link a person opens from the invite email: the web client's room link, as sydent's
    /// stock template builds it, carrying what the client needs to join through the invite
    /// (the invited address, our sign URL with the token and ephemeral key, and what to show:
    /// room name and avatar, inviter, room type). The client posts its user id to the sign URL
    /// and joins with the signature. The web client is the one the homeserver names, when it
    /// is an http(s) URL, else `invite.webClient`.
    fn room_link(
        &self,
        req: &NewInvite,
        address: &str,
        sign_url: &str,
        (room_name, room_avatar_url, inviter_name, room_type): (&str, &str, &str, &str),
    ) -> String {
        let named = req
            .web_client_location
            .as_deref()
            .map(|w| w.trim().trim_end_matches('/'))
            .filter(|w| {
                (w.starts_with("https://") || w.starts_with("http://"))
                    && w.len() <= MAX_OTHER
                    && !w.contains(|c: char| {
                        c.is_whitespace() || c.is_control() || c == '#' || c == '?'
                    })
            });
        let web = named.unwrap_or(&self.web_client);
        let enc = crate::threepid::params::url_encode;
        let mut link = format!(
            "{web}/#/room/{}?email={}&signurl={}",
            enc(&req.room_id),
            enc(address),
            enc(sign_url),
        );
        // What the client shows while joining, most useful first, as long as the link stays
        // on one line of a mail (RFC 5322 allows 998 characters).
        for (name, value) in [
            ("room_name", room_name),
            ("inviter_name", inviter_name),
            ("room_type", room_type),
            ("room_avatar_url", room_avatar_url),
        ] {
            let param = format!("&{name}={}", enc(value));
            if link.len() + param.len() <= MAX_LINK {
                link.push_str(&param);
            }
        }
        link
    }

    /// sign-ed25519: `{mxid, sender, token}` signed with the invite's ephemeral key, which the
    /// caller proves to hold by sending its private half. 404 `M_UNRECOGNIZED` for an unknown
    /// token or a key that is not the invite's.
    ///
    /// The invitee's client joins the room with this signature, so the first signature makes
    /// the invite redeemed: no later bind queues it and a queued delivery of it is dropped (see
    /// [`InviteRecord::signed_for`]). The invite stays until it expires, and a repeated request
    /// is answered as the first.
    pub fn sign(&self, store: &Store, mxid: &str, token: &str, private_key: &str) -> Result<Value> {
        self.check_enabled()?;
        check_user_id(mxid)?;
        let unknown = || Error::new(ErrorKind::Unrecognized, "Didn't recognize token");
        if token.len() > MAX_ID {
            return Err(unknown());
        }
        let invite = store.invite(token)?.ok_or_else(unknown)?;
        let seed: [u8; 32] = base64::decode(private_key)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(unknown)?;
        let key = KeyPair::from_seed("ed25519:0", &seed);
        if !random::constant_time_eq(&key.public_key(), &invite.ephemeral_key) {
            return Err(unknown());
        }
        let mut signed = json!({ "mxid": mxid, "sender": invite.sender, "token": invite.token });
        sign_json(&mut signed, &self.server_name, &key).map_err(Error::internal)?;
        if invite.signed_for.is_none() && store.mark_invite_signed(&invite.token, mxid)? {
            log::info!(
                "signed an invite to {} for {mxid} (sign-ed25519): it is redeemed by joining, not delivered by onbind",
                invite.room_id
            );
        }
        Ok(signed)
    }

    /// Whether `public_key` (either base64 alphabet) is the ephemeral key of a live invite.
    pub fn is_valid_ephemeral_key(&self, store: &Store, public_key: &str) -> Result<bool> {
        let Some(raw) = base64::decode(public_key).and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Ok(false);
        };
        Ok(store.invite_of_ephemeral_key(&raw)?.is_some())
    }

    /// Queues the `onbind` delivery of the pending invites of (medium, address), now bound to
    /// `mxid`, one call per invite; returns how many invites were queued. Invites signed
    /// through sign-ed25519 are redeemed already and left out. Durable when this returns.
    pub fn claim(
        &self,
        store: &Store,
        keys: &KeyRing,
        medium: &str,
        address: &str,
        mxid: &str,
        now_ms: u64,
    ) -> Result<usize> {
        let invites: Vec<InviteRecord> = store
            .pending_invites(medium, address)?
            .into_iter()
            .filter(|i| i.expires_ms > now_ms && i.signed_for.is_none())
            .collect();
        if invites.is_empty() {
            return Ok(0);
        }
        let server = check_user_id(mxid)?.to_string();
        let mut entries = Vec::with_capacity(invites.len());
        for invite in &invites {
            let mut signed = json!({ "mxid": mxid, "token": invite.token });
            // The key the invite was stored with: the room's invite event names its public key.
            let key = keys.get(&invite.key_id).unwrap_or_else(|| keys.signing());
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
        store.queue_onbinds(&entries, &invites)?;
        log::info!(
            "queued {} invite(s) for delivery to {}",
            invites.len(),
            server
        );
        self.wake();
        Ok(invites.len())
    }

    /// Claims the pending invites whose 3PID some identity store now knows; returns how many.
    pub fn resolve_pending(
        &self,
        store: &Store,
        keys: &KeyRing,
        lookups: &Lookups,
        now_ms: u64,
    ) -> Result<usize> {
        let mut claimed = 0;
        for (medium, address) in store.pending_invite_threepids()? {
            if let Some(b) = lookups.find(store, &medium, &address, now_ms)? {
                claimed += self.claim(store, keys, &medium, &address, &b.mxid, now_ms)?;
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

/// A room id: `!opaque:server`, or from room version 12 on just `!opaque` (Synapse 1.163
/// creates those by default); at most 255 bytes, no whitespace or control characters.
fn check_room_id(room_id: &str) -> Result<()> {
    let ok = room_id.len() <= MAX_ID
        && room_id.strip_prefix('!').is_some_and(|rest| {
            let opaque = rest.split_once(':').map_or(rest, |(id, _)| id);
            let server_ok = rest
                .split_once(':')
                .is_none_or(|(_, server)| !server.is_empty());
            !opaque.is_empty() && server_ok
        })
        && !room_id.chars().any(|c| c.is_control() || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidParam,
            format!("'{}' is not a room id", cut(room_id, 80)),
        ))
    }
}

/// `s` cut to `max` characters, with an ellipsis when something was cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(cut("ééééé", 3), "éé…");
    }

    #[test]
    fn pending_invites_are_claimed_when_an_identity_store_knows_their_3pid() {
        use crate::service::stores::local::LocalSource;
        use crate::store::bindings::{BindingRecord, Pepper};

        let dir = std::env::temp_dir().join(format!("oxisd-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("db")).unwrap();
        let (keys, _) = KeyRing::load_or_generate(&dir.join("key"), "ed25519:0").unwrap();
        let config = Config::default().validated().unwrap();
        let invites = Invites::new(&config);
        let lookups = Lookups::new(vec![Box::new(LocalSource::new("synapse"))], 10, true);
        let invite = |token: &str, address: &str| InviteRecord {
            token: token.into(),
            medium: "email".into(),
            address: address.into(),
            room_id: "!room:example.org".into(),
            sender: "@bob:example.org".into(),
            ephemeral_key: [token.as_bytes()[0]; 32],
            key_id: String::new(),
            signed_for: None,
            created_ms: 1,
            expires_ms: u64::MAX,
        };
        store
            .put_invite(&invite("aaa", "alice@example.com"))
            .unwrap();
        store
            .put_invite(&invite("ccc", "carol@example.com"))
            .unwrap();
        assert_eq!(
            invites
                .resolve_pending(&store, &keys, &lookups, 10)
                .unwrap(),
            0
        );

        // The synapse store learns alice's address (a sync, not a bind here).
        let pepper = Pepper {
            generation: 1,
            pepper: "p".into(),
        };
        let record = BindingRecord {
            medium: "email".into(),
            address: "alice@example.com".into(),
            mxid: "@alice:example.org".into(),
            ts: 1,
            not_before: 1,
            not_after: u64::MAX,
        };
        store.put_binding("synapse", &record, &[pepper]).unwrap();
        assert_eq!(
            invites
                .resolve_pending(&store, &keys, &lookups, 10)
                .unwrap(),
            1
        );
        let queued = store.outbox().unwrap();
        assert_eq!(queued.len(), 1);
        let entry = &queued[0].1;
        assert_eq!(entry.server, "example.org");
        assert_eq!(entry.tokens, ["aaa"]);
        assert_eq!(entry.body["mxid"], "@alice:example.org");
        assert_eq!(entry.body["invites"][0]["signed"]["token"], "aaa");
        // Claimed once: the next round finds nothing new, carol still waits.
        assert_eq!(
            invites
                .resolve_pending(&store, &keys, &lookups, 20)
                .unwrap(),
            0
        );
        assert_eq!(
            store.pending_invite_threepids().unwrap(),
            [("email".to_string(), "carol@example.com".to_string())]
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_claim_queues_one_call_per_invite_and_leaves_signed_invites_out() {
        let dir = std::env::temp_dir().join(format!("oxisd-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir.join("db")).unwrap();
        let (keys, _) = KeyRing::load_or_generate(&dir.join("key"), "ed25519:0").unwrap();
        let config = Config::default().validated().unwrap();
        let invites = Invites::new(&config);
        for (token, room) in [
            ("aaa", "!a:x.org"),
            ("bbb", "!b:x.org"),
            ("ccc", "!c:x.org"),
        ] {
            let ephemeral = KeyPair::from_seed("ed25519:0", &[token.as_bytes()[0]; 32]);
            store
                .put_invite(&InviteRecord {
                    token: token.into(),
                    medium: "email".into(),
                    address: "dora@example.com".into(),
                    room_id: room.into(),
                    sender: "@bob:x.org".into(),
                    ephemeral_key: ephemeral.public_key(),
                    key_id: String::new(),
                    signed_for: None,
                    created_ms: 1,
                    expires_ms: u64::MAX,
                })
                .unwrap();
        }
        // The invitee's client signs "bbb" (twice: the same answer, one record).
        let seed = base64::encode_url(&[b'b'; 32]);
        let first = invites
            .sign(&store, "@dora:example.org", "bbb", &seed)
            .unwrap();
        let again = invites
            .sign(&store, "@dora:example.org", "bbb", &seed)
            .unwrap();
        assert_eq!(first, again);
        assert_eq!(
            store.invite("bbb").unwrap().unwrap().signed_for.as_deref(),
            Some("@dora:example.org")
        );

        let n = invites
            .claim(
                &store,
                &keys,
                "email",
                "dora@example.com",
                "@dora:example.org",
                5,
            )
            .unwrap();
        assert_eq!(n, 2);
        let queued = store.outbox().unwrap();
        let calls: Vec<(Vec<String>, Vec<String>)> = queued
            .iter()
            .map(|(_, e)| {
                let tokens = e.body["invites"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["signed"]["token"].as_str().unwrap().to_string())
                    .collect();
                (e.tokens.clone(), tokens)
            })
            .collect();
        assert_eq!(
            calls,
            [
                (vec!["aaa".to_string()], vec!["aaa".to_string()]),
                (vec!["ccc".to_string()], vec!["ccc".to_string()]),
            ]
        );
        assert_eq!(queued[0].1.body["mxid"], "@dora:example.org");
        assert_eq!(queued[0].1.body["invites"][0]["room_id"], "!a:x.org");
        // The signed invite stays for sign-ed25519, outside the pending index.
        assert!(store.pending_invite_threepids().unwrap().is_empty());
        assert!(
            invites
                .sign(&store, "@dora:example.org", "bbb", &seed)
                .is_ok()
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn room_ids_are_checked() {
        assert!(check_room_id("!abc:example.org").is_ok());
        // Room version 12: no server part.
        assert!(check_room_id("!9vJdusWrSbN5Jp3YeqvXZxZ87KAsT-sRv276qFiRN54").is_ok());
        for bad in [
            "abc:example.org",
            "!",
            "!a b",
            "!:example.org",
            "!abc:",
            "#alias:example.org",
        ] {
            assert!(check_room_id(bad).is_err(), "{bad}");
        }
    }
}
