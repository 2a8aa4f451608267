//! A stand-in remote identity server for federated lookups: a [`FakeHomeserver`] over HTTPS
//! (the shared self-signed certificate) on 127.0.0.1 port 0 with an ed25519 key, serving
//! `GET /_matrix/identity/api/v1/pubkey/ed25519:0` and a canned answer to
//! `GET /_matrix/identity/api/v1/lookup` (`{}` until [`RemoteIs::answer`] sets another).

#![allow(dead_code)]

use serde_json::{Value, json};

use oxisd::crypto::signing::{KeyPair, sign_json};

use super::homeserver::{FakeHomeserver, RecordedRequest};

/// The v1 lookup path.
pub const LOOKUP_PATH: &str = "/_matrix/identity/api/v1/lookup";
/// The v1 public key path, without the key id.
pub const PUBKEY_PATH: &str = "/_matrix/identity/api/v1/pubkey/";

/// A running stand-in identity server; stops when dropped.
pub struct RemoteIs {
    /// The HTTPS server underneath.
    pub server: FakeHomeserver,
    /// Its signing key (`ed25519:0`).
    pub key: KeyPair,
    /// The name it signs as.
    pub name: String,
}

impl RemoteIs {
    /// Starts a server signing as `name`, publishing its key and answering `{}` to lookups.
    pub fn start(name: &str) -> RemoteIs {
        let key = KeyPair::generate("ed25519:0").expect("generate a key");
        let server = FakeHomeserver::start();
        server.respond(
            "GET",
            &format!("{PUBKEY_PATH}{}", key.id()),
            200,
            json!({"public_key": key.public_key_base64()}),
        );
        server.respond("GET", LOOKUP_PATH, 200, json!({}));
        RemoteIs {
            server,
            key,
            name: name.to_string(),
        }
    }

    /// The HTTPS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// An association of `address` with `mxid`, valid in [not_before, not_after], signed by
    /// this server.
    pub fn association(&self, address: &str, mxid: &str, not_before: u64, not_after: u64) -> Value {
        let mut value = json!({
            "medium": "email",
            "address": address,
            "mxid": mxid,
            "not_before": not_before,
            "not_after": not_after,
            "ts": not_before,
        });
        self.sign(&mut value);
        value
    }

    /// Signs `value` in place with this server's key.
    pub fn sign(&self, value: &mut Value) {
        sign_json(value, &self.name, &self.key).expect("sign");
    }

    /// Makes every lookup answer 200 `body`.
    pub fn answer(&self, body: Value) {
        self.server.respond("GET", LOOKUP_PATH, 200, body);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The lookup requests so far.
    pub fn lookups(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path_only() == LOOKUP_PATH)
            .collect()
    }
}
