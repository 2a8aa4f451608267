//! Binds and unbinds forwarded to upstream identity servers (remote sessions): the outbox of
//! calls still to make, and the upstream credentials of each forwarded binding, so that a
//! later unbind (also one the homeserver signed, without a session) can be forwarded too.
//!
//! Keyspaces (both new in this version; a store without them opens unchanged, empty):
//! - `remote_outbox`: `id` (u128 big-endian: ms since the epoch in the high 64 bits, a counter
//!   below) -> [`RemoteCall`] as JSON. Ids only grow (also within a millisecond, and when the
//!   clock steps back), so the keyspace is in the order the calls were queued; a bind and a
//!   later unbind of the same 3PID are made in that order.
//! - `remote_binding`: `medium 0x00 address` -> [`RemoteBinding`] as JSON: the upstream
//!   session a binding of this 3PID was forwarded with. Written with the bind's call, removed
//!   with the unbind's.

use std::sync::Mutex;

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};

use super::{OpenError, Store, open_keyspace};
use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::threepid::Medium;

/// What a queued call does at the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteOp {
    /// `POST /_matrix/identity/api/v1/3pid/bind`.
    Bind,
    /// `POST /_matrix/identity/api/v1/3pid/unbind` with the session's credentials.
    Unbind,
}

/// A bind or unbind waiting to be made at an upstream identity server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCall {
    /// Bind or unbind.
    pub op: RemoteOp,
    /// The upstream's name (`matrix.identity.servers`).
    pub server: String,
    /// The upstream session.
    pub sid: String,
    /// Its client secret.
    pub client_secret: String,
    /// The user.
    pub mxid: UserId,
    /// The 3PID's medium.
    pub medium: Medium,
    /// The 3PID's normalised address.
    pub address: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time, ms since the epoch.
    pub next_attempt_ms: u64,
    /// When it was queued.
    pub created_ms: u64,
}

/// The upstream session a binding was forwarded with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteBinding {
    /// The upstream's name.
    pub server: String,
    /// The upstream session.
    pub sid: String,
    /// Its client secret.
    pub client_secret: String,
    /// The user it was bound to.
    pub mxid: UserId,
}

/// The remote keyspaces.
pub(super) struct Keyspaces {
    outbox: Keyspace,
    bindings: Keyspace,
    /// The last id given out.
    last_id: Mutex<u128>,
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        let outbox = open_keyspace(db, "remote_outbox")?;
        let bindings = open_keyspace(db, "remote_binding")?;
        let last_id = match outbox.last_key_value() {
            Some(item) => {
                let key = item
                    .key()
                    .map_err(|e| OpenError(format!("cannot read remote_outbox: {e}")))?;
                <[u8; 16]>::try_from(&*key)
                    .map(u128::from_be_bytes)
                    .unwrap_or(0)
            }
            None => 0,
        };
        Ok(Keyspaces {
            outbox,
            bindings,
            last_id: Mutex::new(last_id),
        })
    }

    pub(super) fn all(&self) -> [&Keyspace; 2] {
        [&self.outbox, &self.bindings]
    }
}

fn binding_key(medium: Medium, address: &str) -> Vec<u8> {
    [medium.as_str().as_bytes(), b"\0", address.as_bytes()].concat()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format_args!("corrupt {what}: {e}")))
}

impl Store {
    /// Queues `call` after every call queued before, and records (bind) or forgets (unbind)
    /// the upstream session of its 3PID, in one write; durable when this returns. Returns
    /// the call's id.
    pub fn queue_remote(&self, call: &RemoteCall) -> Result<Vec<u8>> {
        let r = &self.remote;
        let json = serde_json::to_vec(call).map_err(Error::internal)?;
        let key = binding_key(call.medium, &call.address);
        let mut batch = self.db.batch();
        // A new id, above every earlier one, taken and written under one lock: the keyspace
        // holds the calls in the order they were queued.
        let mut last = r.last_id.lock().unwrap_or_else(|p| p.into_inner());
        *last = (u128::from(call.created_ms) << 64).max(*last + 1);
        let id = last.to_be_bytes();
        batch.insert(&r.outbox, id, json);
        match call.op {
            RemoteOp::Bind => {
                let binding = RemoteBinding {
                    server: call.server.clone(),
                    sid: call.sid.clone(),
                    client_secret: call.client_secret.clone(),
                    mxid: call.mxid.clone(),
                };
                let json = serde_json::to_vec(&binding).map_err(Error::internal)?;
                batch.insert(&r.bindings, key, json);
            }
            RemoteOp::Unbind => batch.remove(&r.bindings, key),
        }
        batch.commit()?;
        drop(last);
        self.durable()?;
        Ok(id.to_vec())
    }

    /// Records the upstream session a binding was made with at the upstream directly (a 3PID
    /// bound there only); durable when this returns.
    pub fn put_remote_binding(
        &self,
        medium: Medium,
        address: &str,
        binding: &RemoteBinding,
    ) -> Result<()> {
        let json = serde_json::to_vec(binding).map_err(Error::internal)?;
        self.remote
            .bindings
            .insert(binding_key(medium, address), json)?;
        self.durable()
    }

    /// The upstream session the binding of (medium, address) was forwarded with, if any.
    pub fn remote_binding(&self, medium: Medium, address: &str) -> Result<Option<RemoteBinding>> {
        self.remote
            .bindings
            .get(binding_key(medium, address))?
            .map(|v| decode(&v, "remote binding"))
            .transpose()
    }

    /// The 3PIDs whose binding to `mxid` was forwarded upstream, as (medium, address,
    /// binding). Scans the keyspace.
    pub fn remote_bindings_of_user(
        &self,
        mxid: &str,
    ) -> Result<Vec<(String, String, RemoteBinding)>> {
        let mut out = Vec::new();
        for item in self.remote.bindings.iter() {
            let (k, v) = item.into_inner()?;
            let binding: RemoteBinding = decode(&v, "remote binding")?;
            if binding.mxid != mxid {
                continue;
            }
            if let Some(n) = k.iter().position(|b| *b == 0) {
                out.push((
                    String::from_utf8_lossy(&k[..n]).into_owned(),
                    String::from_utf8_lossy(&k[n + 1..]).into_owned(),
                    binding,
                ));
            }
        }
        Ok(out)
    }

    /// Every queued call, as (id, call), in the order they were queued.
    pub fn remote_outbox(&self) -> Result<Vec<(Vec<u8>, RemoteCall)>> {
        let mut out = Vec::new();
        for item in self.remote.outbox.iter() {
            let (k, v) = item.into_inner()?;
            out.push((k.to_vec(), decode(&v, "remote call")?));
        }
        Ok(out)
    }

    /// Records a failed attempt; durable when this returns.
    pub fn update_remote(&self, id: &[u8], call: &RemoteCall) -> Result<()> {
        let json = serde_json::to_vec(call).map_err(Error::internal)?;
        self.remote.outbox.insert(id, json)?;
        self.durable()
    }

    /// Removes a call that was made (or refused, or given up); durable when this returns.
    pub fn finish_remote(&self, id: &[u8]) -> Result<()> {
        self.remote.outbox.remove(id)?;
        self.durable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: RemoteOp, address: &str, created_ms: u64) -> RemoteCall {
        RemoteCall {
            op,
            server: "upstream".into(),
            sid: "sid".into(),
            client_secret: "secret".into(),
            mxid: UserId::parse("@a:example.org").unwrap(),
            medium: Medium::Email,
            address: address.into(),
            attempts: 0,
            next_attempt_ms: 0,
            created_ms,
        }
    }

    #[test]
    fn remote_calls_keep_their_order_and_bindings_follow_them() {
        let dir = std::env::temp_dir().join(format!("oxisd-remote-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        // The same millisecond, then a clock that stepped back: still in queue order.
        let bind = call(RemoteOp::Bind, "a@example.org", 50);
        let other = call(RemoteOp::Bind, "b@example.org", 50);
        let unbind = call(RemoteOp::Unbind, "a@example.org", 10);
        for c in [&bind, &other, &unbind] {
            store.queue_remote(c).unwrap();
        }
        let queued: Vec<RemoteCall> = store
            .remote_outbox()
            .unwrap()
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(queued, [bind.clone(), other.clone(), unbind.clone()]);
        assert_eq!(
            store
                .remote_binding(Medium::Email, "a@example.org")
                .unwrap(),
            None
        );
        let b = store
            .remote_binding(Medium::Email, "b@example.org")
            .unwrap()
            .unwrap();
        assert_eq!((b.sid.as_str(), b.mxid.as_str()), ("sid", "@a:example.org"));
        assert_eq!(
            store.remote_bindings_of_user("@a:example.org").unwrap(),
            [("email".to_string(), "b@example.org".to_string(), b)]
        );
        assert!(
            store
                .remote_bindings_of_user("@b:example.org")
                .unwrap()
                .is_empty()
        );

        let (id, mut first) = store.remote_outbox().unwrap().remove(0);
        first.attempts = 1;
        store.update_remote(&id, &first).unwrap();
        assert_eq!(store.remote_outbox().unwrap()[0].1.attempts, 1);
        store.finish_remote(&id).unwrap();
        assert_eq!(store.remote_outbox().unwrap().len(), 2);
        drop(store);

        // Opened again: new calls still come after the old ones.
        let store = Store::open(&dir).unwrap();
        store
            .queue_remote(&call(RemoteOp::Unbind, "b@example.org", 1))
            .unwrap();
        let ops: Vec<(RemoteOp, String)> = store
            .remote_outbox()
            .unwrap()
            .into_iter()
            .map(|(_, c)| (c.op, c.address))
            .collect();
        assert_eq!(
            ops,
            [
                (RemoteOp::Bind, "b@example.org".to_string()),
                (RemoteOp::Unbind, "a@example.org".to_string()),
                (RemoteOp::Unbind, "b@example.org".to_string()),
            ]
        );
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
