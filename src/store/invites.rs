//! Pending 3PID room invites and the outbox of `onbind` deliveries.
//!
//! Keyspaces:
//! - `token_invite`: invite token -> [`InviteRecord`] as JSON.
//! - `threepid_invite`: `medium 0x00 address 0x00 token` -> empty; the invites still waiting for
//!   their 3PID to be bound. An invite leaves this index when it is queued for delivery.
//! - `ephemeral_invite`: the 32 raw bytes of an invite's ephemeral public key -> token.
//! - `expiry_invite`: `expires_ms (u64 big-endian) token` -> empty; the sweeper reads it from
//!   its start up to "now".
//! - `onbind_outbox`: `created_ms (u64 BE) random (8 bytes)` -> [`OutboxEntry`] as JSON: an
//!   `onbind` call to make, complete with its signed body, until the homeserver accepts it.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_keyspace};
use crate::error::{Error, Result};

/// An invite stored by store-invite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    /// The random token (the `state_key` of the room's `m.room.third_party_invite`).
    pub token: String,
    /// `email`.
    pub medium: String,
    /// The normalised address.
    pub address: String,
    /// The room.
    pub room_id: String,
    /// The inviting user.
    pub sender: String,
    /// The raw ephemeral public key.
    pub ephemeral_key: [u8; 32],
    /// The long-term key named in the answer (and so in the room): it signs the delivery.
    #[serde(default)]
    pub key_id: String,
    /// When it was stored, ms since the epoch.
    pub created_ms: u64,
    /// When it is removed unless claimed (`u64::MAX`: never).
    pub expires_ms: u64,
}

/// An `onbind` call waiting to be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The homeserver (server name of the bound user).
    pub server: String,
    /// The request body, signed.
    pub body: serde_json::Value,
    /// The invite tokens it delivers (removed once delivered).
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
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_token: open_keyspace(db, "token_invite")?,
            by_threepid: open_keyspace(db, "threepid_invite")?,
            by_ephemeral: open_keyspace(db, "ephemeral_invite")?,
            by_expiry: open_keyspace(db, "expiry_invite")?,
            outbox: open_keyspace(db, "onbind_outbox")?,
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

fn threepid_key(medium: &str, address: &str, token: &str) -> Vec<u8> {
    [
        medium.as_bytes(),
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
            threepid_key(&invite.medium, &invite.address, &invite.token),
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
    pub fn pending_invites(&self, medium: &str, address: &str) -> Result<Vec<InviteRecord>> {
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

    /// Queues `entry` and takes its invites out of the pending index, in one write; durable
    /// when this returns.
    pub fn queue_onbind(&self, entry: &OutboxEntry, invites: &[InviteRecord]) -> Result<()> {
        let mut id = entry.created_ms.to_be_bytes().to_vec();
        id.extend_from_slice(&crate::crypto::random::bytes(8)?);
        let json = serde_json::to_vec(entry).map_err(Error::internal)?;
        let mut batch = self.db.batch();
        batch.insert(&self.invites.outbox, id, json);
        for invite in invites {
            batch.remove(
                &self.invites.by_threepid,
                threepid_key(&invite.medium, &invite.address, &invite.token),
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

    /// Records a failed attempt (the new attempt count and time); durable when this returns.
    pub fn update_outbox(&self, id: &[u8], entry: &OutboxEntry) -> Result<()> {
        let json = serde_json::to_vec(entry).map_err(Error::internal)?;
        self.invites.outbox.insert(id, json)?;
        self.durable()
    }

    /// Removes a delivered (or abandoned) `onbind` call and the invites it carried; durable when
    /// this returns.
    pub fn finish_onbind(&self, id: &[u8], entry: &OutboxEntry) -> Result<()> {
        let mut batch = self.db.batch();
        batch.remove(&self.invites.outbox, id.to_vec());
        for token in &entry.tokens {
            if let Some(invite) = self.invite(token)? {
                self.remove_invite_into(&mut batch, &invite);
            }
        }
        batch.commit()?;
        self.durable()
    }

    /// Removes an invite (with its indexes); durable when this returns.
    pub fn delete_invite(&self, invite: &InviteRecord) -> Result<()> {
        let mut batch = self.db.batch();
        self.remove_invite_into(&mut batch, invite);
        batch.commit()?;
        self.durable()
    }

    fn remove_invite_into(&self, batch: &mut fjall::OwnedWriteBatch, invite: &InviteRecord) {
        let i = &self.invites;
        batch.remove(&i.by_token, invite.token.as_bytes().to_vec());
        batch.remove(
            &i.by_threepid,
            threepid_key(&invite.medium, &invite.address, &invite.token),
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
        let mut batch = self.db.batch();
        for token in &expired {
            if let Some(invite) = self.invite(token)? {
                self.remove_invite_into(&mut batch, &invite);
            }
        }
        batch.commit()?;
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
            medium: "email".into(),
            address: address.into(),
            room_id: "!room:example.org".into(),
            sender: "@bob:example.org".into(),
            ephemeral_key: [token.as_bytes()[0]; 32],
            key_id: String::new(),
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
            store.pending_invites("email", "alice@example.com").unwrap(),
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

        // Queued: no longer pending, still valid until delivered.
        let entry = OutboxEntry {
            server: "example.org".into(),
            body: serde_json::json!({}),
            tokens: vec!["aaa".into(), "bbb".into()],
            attempts: 0,
            next_attempt_ms: 0,
            created_ms: 5,
        };
        store.queue_onbind(&entry, &[a.clone(), b.clone()]).unwrap();
        assert!(
            store
                .pending_invites("email", "alice@example.com")
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
}
