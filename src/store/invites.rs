//! Pending 3PID room invites and the outbox of `onbind` deliveries.
//!
//! Keyspaces:
//! - `token_invite`: invite token -> [`InviteRecord`] as JSON.
//! - `threepid_invite`: `medium 0x00 address 0x00 token` -> empty; the invites still waiting for
//!   their 3PID to be bound. An invite leaves this index when it is queued for delivery, or
//!   when sign-ed25519 signs it (the invitee redeems it by joining, see
//!   [`InviteRecord::signed_for`]).
//! - `ephemeral_invite`: the 32 raw bytes of an invite's ephemeral public key -> token.
//! - `expiry_invite`: `expires_ms (u64 big-endian) token` -> empty; the sweeper reads it from
//!   its start up to "now".
//! - `onbind_outbox`: `created_ms (u64 BE) random (8 bytes)` -> [`OutboxEntry`] as JSON: an
//!   `onbind` call to make, complete with its signed body, until the homeserver accepts or
//!   refuses it. Entries queued together share their first 14 bytes and end with their
//!   position (u16 BE), so they sort in the order they were queued. Since one invite is
//!   delivered per call, an entry carries one invite; entries written by earlier versions may
//!   carry several and are delivered as they are.
//!
//! Changes of an invite record that read it first (sign-ed25519 marking it, delivery removing
//! it) are serialised by one lock, so neither undoes the other.

use std::sync::{Mutex, MutexGuard};

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_keyspace};
use crate::error::{Error, Result};
use crate::ids::{RoomId, UserId};
use crate::threepid::Medium;

/// An invite stored by store-invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The random token (the `state_key` of the room's `m.room.third_party_invite`).
    pub token: String,
    /// `email`.
    pub medium: Medium,
    /// The normalised address.
    pub address: String,
    /// The room.
    pub room_id: RoomId,
    /// The inviting user.
    pub sender: UserId,
    /// The raw ephemeral public key.
    pub ephemeral_key: [u8; 32],
    /// The long-term key named in the answer (and so in the room): it signs the delivery.
    #[serde(default)]
    pub key_id: String,
    /// The first user sign-ed25519 signed this invite for. The invitee's client joins the room
    /// with that signature (`third_party_signed`), so the invite is never delivered by
    /// `onbind`: a 3PID invite event would take the joined user back to `invite`. The record
    /// stays until it expires, so that a repeated sign-ed25519 is answered and the ephemeral
    /// key stays valid for the homeserver's check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_for: Option<UserId>,
    /// When it was stored, ms since the epoch.
    pub created_ms: u64,
    /// When it is removed unless claimed (`u64::MAX`: never).
    pub expires_ms: u64,
}

/// An `onbind` call waiting to be made: one invite (several in entries of earlier versions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The homeserver (server name of the bound user).
    pub server: String,
    /// The request body, signed.
    pub body: serde_json::Value,
    /// The invite tokens it delivers (removed once delivered), in the order of
    /// `body.invites`.
    pub tokens: Vec<String>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time, ms since the epoch.
    pub next_attempt_ms: u64,
    /// When it was queued.
    pub created_ms: u64,
}

/// The invite keyspaces.
pub(super) struct Keyspaces {
    by_token: Keyspace,
    by_threepid: Keyspace,
    by_ephemeral: Keyspace,
    by_expiry: Keyspace,
    outbox: Keyspace,
    /// Held by the read-modify-writes of invite records.
    records: Mutex<()>,
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_token: open_keyspace(db, "token_invite")?,
            by_threepid: open_keyspace(db, "threepid_invite")?,
            by_ephemeral: open_keyspace(db, "ephemeral_invite")?,
            by_expiry: open_keyspace(db, "expiry_invite")?,
            outbox: open_keyspace(db, "onbind_outbox")?,
            records: Mutex::new(()),
        })
    }

    pub(super) fn all(&self) -> [&Keyspace; 5] {
        [
            &self.by_token,
            &self.by_threepid,
            &self.by_ephemeral,
            &self.by_expiry,
            &self.outbox,
        ]
    }
}

fn threepid_key(medium: Medium, address: &str, token: &str) -> Vec<u8> {
    [
        medium.as_str().as_bytes(),
        b"\0",
        address.as_bytes(),
        b"\0",
        token.as_bytes(),
    ]
    .concat()
}

fn expiry_key(expires_ms: u64, token: &str) -> Vec<u8> {
    [&expires_ms.to_be_bytes()[..], token.as_bytes()].concat()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format_args!("corrupt {what}: {e}")))
}

impl Keyspaces {
    fn lock_records(&self) -> MutexGuard<'_, ()> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    pub(super) fn invites_keyspace(&self) -> &Keyspace {
        &self.invites.by_token
    }

    /// Stores a new invite. Not yet durable.
    pub fn put_invite(&self, invite: &InviteRecord) -> Result<()> {
        let json = serde_json::to_vec(invite).map_err(Error::internal)?;
        let mut batch = self.db.batch();
        let i = &self.invites;
        batch.insert(&i.by_token, invite.token.as_bytes(), json);
        batch.insert(
            &i.by_threepid,
            threepid_key(invite.medium, &invite.address, &invite.token),
            b"".to_vec(),
        );
        batch.insert(
            &i.by_ephemeral,
            invite.ephemeral_key,
            invite.token.as_bytes(),
        );
        batch.insert(
            &i.by_expiry,
            expiry_key(invite.expires_ms, &invite.token),
            b"".to_vec(),
        );
        batch.commit()?;
        Ok(())
    }

    /// The invite of `token`.
    pub fn invite(&self, token: &str) -> Result<Option<InviteRecord>> {
        self.invites
            .by_token
            .get(token.as_bytes())?
            .map(|v| decode(&v, "invite record"))
            .transpose()
    }

    /// The invite whose ephemeral public key is `key`.
    pub fn invite_of_ephemeral_key(&self, key: &[u8; 32]) -> Result<Option<InviteRecord>> {
        let Some(token) = self.invites.by_ephemeral.get(key)? else {
            return Ok(None);
        };
        self.invite(&String::from_utf8_lossy(&token))
    }

    /// The invites still waiting for (medium, address) to be bound, oldest token order.
    pub fn pending_invites(&self, medium: Medium, address: &str) -> Result<Vec<InviteRecord>> {
        let prefix = threepid_key(medium, address, "");
        let mut out = Vec::new();
        for item in self.invites.by_threepid.prefix(&prefix) {
            let key = item.key()?;
            let token = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some(invite) = self.invite(&token)? {
                out.push(invite);
            }
        }
        Ok(out)
    }

    /// Every 3PID with pending invites, as (medium, address), each once.
    pub fn pending_invite_threepids(&self) -> Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = Vec::new();
        for item in self.invites.by_threepid.iter() {
            let key = item.key()?;
            let mut parts = key.splitn(3, |b| *b == 0);
            if let (Some(m), Some(a)) = (parts.next(), parts.next()) {
                let pair = (
                    String::from_utf8_lossy(m).into_owned(),
                    String::from_utf8_lossy(a).into_owned(),
                );
                if out.last() != Some(&pair) {
                    out.push(pair);
                }
            }
        }
        Ok(out)
    }

    /// Queues `entries` (in this order) and takes `invites` out of the pending index, in one
    /// write; durable when this returns.
    pub fn queue_onbinds(&self, entries: &[OutboxEntry], invites: &[InviteRecord]) -> Result<()> {
        let mut prefix = Vec::with_capacity(14);
        let created_ms = entries.first().map_or(0, |e| e.created_ms);
        prefix.extend_from_slice(&created_ms.to_be_bytes());
        prefix.extend_from_slice(&crate::crypto::random::bytes(6)?);
        let mut batch = self.db.batch();
        for (n, entry) in entries.iter().enumerate() {
            let position = u16::try_from(n)
                .map_err(|_| Error::internal("more than 65 536 onbind calls at once"))?;
            let id = [&prefix[..], &position.to_be_bytes()].concat();
            let json = serde_json::to_vec(entry).map_err(Error::internal)?;
            batch.insert(&self.invites.outbox, id, json);
        }
        for invite in invites {
            batch.remove(
                &self.invites.by_threepid,
                threepid_key(invite.medium, &invite.address, &invite.token),
            );
        }
        batch.commit()?;
        self.durable()
    }

    /// Every queued `onbind` call, as (id, entry), oldest first.
    pub fn outbox(&self) -> Result<Vec<(Vec<u8>, OutboxEntry)>> {
        let mut out = Vec::new();
        for item in self.invites.outbox.iter() {
            let (k, v) = item.into_inner()?;
            out.push((k.to_vec(), decode(&v, "outbox entry")?));
        }
        Ok(out)
    }

    /// The queued `onbind` call `id`, unless it left the outbox.
    pub fn outbox_entry(&self, id: &[u8]) -> Result<Option<OutboxEntry>> {
        self.invites
            .outbox
            .get(id)?
            .map(|v| decode(&v, "outbox entry"))
            .transpose()
    }

    /// Records a failed attempt (the new attempt count and time), or an entry with fewer
    /// invites; durable when this returns.
    pub fn update_outbox(&self, id: &[u8], entry: &OutboxEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(Error::internal)?;
        self.invites.outbox.insert(id, json)?;
        self.durable()
    }

    /// Removes a delivered (or refused, or abandoned) `onbind` call and the invites it carried;
    /// durable when this returns.
    pub fn finish_onbind(&self, id: &[u8], entry: &OutboxEntry) -> Result<()> {
        {
            let _records = self.invites.lock_records();
            let mut batch = self.db.batch();
            batch.remove(&self.invites.outbox, id.to_vec());
            for token in &entry.tokens {
                if let Some(invite) = self.invite(token)? {
                    self.remove_invite_into(&mut batch, &invite);
                }
            }
            batch.commit()?;
        }
        self.durable()
    }

    /// Removes the `onbind` call `id` and nothing else (its invites were redeemed otherwise);
    /// durable when this returns.
    pub fn drop_onbind(&self, id: &[u8]) -> Result<()> {
        self.invites.outbox.remove(id)?;
        self.durable()
    }

    /// Records that sign-ed25519 signed the invite `token` for `mxid` (the first time only) and
    /// takes it out of the pending index, so that no later bind queues it; durable when this
    /// returns. False when the invite is gone or was signed before.
    pub fn mark_invite_signed(&self, token: &str, mxid: &UserId) -> Result<bool> {
        let changed = {
            let _records = self.invites.lock_records();
            match self.invite(token)? {
                Some(mut invite) if invite.signed_for.is_none() => {
                    invite.signed_for = Some(mxid.clone());
                    let json = serde_json::to_vec(&invite).map_err(Error::internal)?;
                    let mut batch = self.db.batch();
                    batch.insert(&self.invites.by_token, invite.token.as_bytes(), json);
                    batch.remove(
                        &self.invites.by_threepid,
                        threepid_key(invite.medium, &invite.address, &invite.token),
                    );
                    batch.commit()?;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.durable()?;
        }
        Ok(changed)
    }

    /// Removes an invite (with its indexes); durable when this returns.
    pub fn delete_invite(&self, invite: &InviteRecord) -> Result<()> {
        {
            let _records = self.invites.lock_records();
            let mut batch = self.db.batch();
            self.remove_invite_into(&mut batch, invite);
            batch.commit()?;
        }
        self.durable()
    }

    fn remove_invite_into(&self, batch: &mut fjall::OwnedWriteBatch, invite: &InviteRecord) {
        let i = &self.invites;
        batch.remove(&i.by_token, invite.token.as_bytes().to_vec());
        batch.remove(
            &i.by_threepid,
            threepid_key(invite.medium, &invite.address, &invite.token),
        );
        batch.remove(&i.by_ephemeral, invite.ephemeral_key.to_vec());
        batch.remove(&i.by_expiry, expiry_key(invite.expires_ms, &invite.token));
    }

    /// Removes the invites that expired before `now_ms`; returns how many.
    pub fn sweep_invites(&self, now_ms: u64) -> Result<usize> {
        let mut expired = Vec::new();
        for item in self.invites.by_expiry.range(..expiry_key(now_ms, "")) {
            let key = item.key()?;
            expired.push(String::from_utf8_lossy(&key[8..]).into_owned());
            if expired.len() >= 1000 {
                break;
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        {
            let _records = self.invites.lock_records();
            let mut batch = self.db.batch();
            for token in &expired {
                if let Some(invite) = self.invite(token)? {
                    self.remove_invite_into(&mut batch, &invite);
                }
            }
            batch.commit()?;
        }
        self.durable()?;
        Ok(expired.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(token: &str, address: &str, expires_ms: u64) -> InviteRecord {
        InviteRecord {
            token: token.into(),
            medium: Medium::Email,
            address: address.into(),
            room_id: RoomId::parse("!room:example.org").unwrap(),
            sender: UserId::parse("@bob:example.org").unwrap(),
            ephemeral_key: [token.as_bytes()[0]; 32],
            key_id: String::new(),
            signed_for: None,
            created_ms: 1,
            expires_ms,
        }
    }

    #[test]
    fn invites_are_found_queued_delivered_and_expire() {
        let dir = std::env::temp_dir().join(format!("oxisd-invites-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let a = invite("aaa", "alice@example.com", 100);
        let b = invite("bbb", "alice@example.com", 100);
        let c = invite("ccc", "carol@example.com", 10);
        for i in [&a, &b, &c] {
            store.put_invite(i).unwrap();
        }
        assert_eq!(
            store
                .pending_invites(Medium::Email, "alice@example.com")
                .unwrap(),
            [a.clone(), b.clone()]
        );
        assert_eq!(store.pending_invite_threepids().unwrap().len(), 2);
        assert_eq!(
            store.invite_of_ephemeral_key(&[b'c'; 32]).unwrap(),
            Some(c.clone())
        );

        // Expiry removes c only, with its key.
        assert_eq!(store.sweep_invites(50).unwrap(), 1);
        assert_eq!(store.invite("ccc").unwrap(), None);
        assert_eq!(store.invite_of_ephemeral_key(&[b'c'; 32]).unwrap(), None);

        // Queued (an entry with two invites, as earlier versions wrote): no longer pending,
        // still valid until delivered.
        let entry = OutboxEntry {
            server: "example.org".into(),
            body: serde_json::json!({}),
            tokens: vec!["aaa".into(), "bbb".into()],
            attempts: 0,
            next_attempt_ms: 0,
            created_ms: 5,
        };
        store
            .queue_onbinds(std::slice::from_ref(&entry), &[a.clone(), b.clone()])
            .unwrap();
        assert!(
            store
                .pending_invites(Medium::Email, "alice@example.com")
                .unwrap()
                .is_empty()
        );
        assert!(store.invite("aaa").unwrap().is_some());
        let queued = store.outbox().unwrap();
        assert_eq!(queued.len(), 1);
        store.finish_onbind(&queued[0].0, &queued[0].1).unwrap();
        assert!(store.outbox().unwrap().is_empty());
        assert_eq!(store.invite("aaa").unwrap(), None);
        assert_eq!(store.invite_of_ephemeral_key(&[b'a'; 32]).unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn entries_queued_together_keep_their_order_and_signed_invites_stay_out() {
        let dir = std::env::temp_dir().join(format!("oxisd-onbinds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let invites: Vec<InviteRecord> = ["ttt", "uuu", "vvv", "www"]
            .iter()
            .map(|t| invite(t, "tina@example.com", u64::MAX))
            .collect();
        for i in &invites {
            store.put_invite(i).unwrap();
        }
        // sign-ed25519 takes "www" out of the pending index, once; the record stays.
        assert!(
            store
                .mark_invite_signed("www", &UserId::parse("@tina:example.org").unwrap())
                .unwrap()
        );
        assert!(
            !store
                .mark_invite_signed("www", &UserId::parse("@other:example.org").unwrap())
                .unwrap()
        );
        assert!(
            !store
                .mark_invite_signed("nosuch", &UserId::parse("@tina:example.org").unwrap())
                .unwrap()
        );
        let www = store.invite("www").unwrap().unwrap();
        assert_eq!(www.signed_for.as_deref(), Some("@tina:example.org"));
        assert_eq!(
            store.invite_of_ephemeral_key(&[b'w'; 32]).unwrap(),
            Some(www)
        );
        let pending = store
            .pending_invites(Medium::Email, "tina@example.com")
            .unwrap();
        assert_eq!(pending, invites[..3]);

        let entries: Vec<OutboxEntry> = pending
            .iter()
            .map(|i| OutboxEntry {
                server: "example.org".into(),
                body: serde_json::json!({}),
                tokens: vec![i.token.clone()],
                attempts: 0,
                next_attempt_ms: 0,
                created_ms: 7,
            })
            .collect();
        store.queue_onbinds(&entries, &pending).unwrap();
        let queued = store.outbox().unwrap();
        let tokens: Vec<&str> = queued.iter().map(|(_, e)| e.tokens[0].as_str()).collect();
        assert_eq!(tokens, ["ttt", "uuu", "vvv"]);
        assert_eq!(
            store.outbox_entry(&queued[1].0).unwrap().as_ref(),
            Some(&queued[1].1)
        );
        // Dropping an entry keeps its invite; finishing one removes it.
        store.drop_onbind(&queued[0].0).unwrap();
        assert!(store.invite("ttt").unwrap().is_some());
        store.finish_onbind(&queued[1].0, &queued[1].1).unwrap();
        assert_eq!(store.invite("uuu").unwrap(), None);
        assert_eq!(store.outbox().unwrap().len(), 1);
        assert_eq!(store.outbox_entry(&queued[0].0).unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn records_written_by_earlier_versions_read() {
        let record: InviteRecord = decode(
            br#"{"token":"abc","medium":"email","address":"a@example.com","room_id":"!r:example.org","sender":"@b:example.org","ephemeral_key":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"key_id":"ed25519:0","created_ms":1,"expires_ms":2}"#,
            "invite record",
        )
        .unwrap();
        assert_eq!(record.signed_for, None);
        // Unsigned records are written as before.
        let json = serde_json::to_value(&record).unwrap();
        assert!(json.get("signed_for").is_none(), "{json}");
        let entry: OutboxEntry = decode(
            br#"{"server":"example.org","body":{"invites":[{},{}]},"tokens":["a","b"],"attempts":3,"next_attempt_ms":9,"created_ms":5}"#,
            "outbox entry",
        )
        .unwrap();
        assert_eq!(entry.tokens, ["a", "b"]);
    }
}
