//! Tests of the invite service: claims, resolution against the identity stores, sign-ed25519
//! and room ids.

use std::path::Path;

use super::*;

/// The invitee of the tests.
fn dora() -> UserId {
    UserId::parse("@dora:example.org").unwrap()
}
use crate::config::LookupConfig;
use crate::service::pepper::Peppers;
use crate::service::stores::IdentityStore;

/// The invite service over a new store in `dir`, with `stores` as its identity stores.
fn service(dir: &Path, stores: Vec<Box<dyn IdentityStore>>) -> (Arc<Store>, Invites) {
    let store = Arc::new(Store::open(&dir.join("db")).unwrap());
    let (keys, _) = KeyRing::load_or_generate(&dir.join("key"), "ed25519:0").unwrap();
    let keys = Arc::new(keys);
    let config = Config::default().validated().unwrap();
    let peppers = Arc::new(Peppers::load_or_create(&store).unwrap());
    let limits = LookupConfig {
        max_addresses: 10,
        allow_none: true,
        ..LookupConfig::default()
    };
    let lookups = Lookups::new(
        &limits,
        stores,
        store.clone(),
        peppers,
        keys.clone(),
        "localhost",
    );
    let notifier = Arc::new(Notifier::new(&config).unwrap());
    let invites = Invites::new(&config, store.clone(), keys, notifier, Arc::new(lookups));
    (store, invites)
}

#[test]
fn pending_invites_are_claimed_when_an_identity_store_knows_their_3pid() {
    use crate::service::stores::local::LocalSource;
    use crate::store::bindings::{BindingRecord, Pepper};

    let dir = std::env::temp_dir().join(format!("oxisd-resolve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (store, invites) = service(&dir, vec![Box::new(LocalSource::new("synapse"))]);
    let invite = |token: &str, address: &str| InviteRecord {
        token: token.into(),
        medium: Medium::Email,
        address: address.into(),
        room_id: RoomId::parse("!room:example.org").unwrap(),
        sender: UserId::parse("@bob:example.org").unwrap(),
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
    assert_eq!(invites.resolve_pending(10).unwrap(), 0);

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
    assert_eq!(invites.resolve_pending(10).unwrap(), 1);
    let queued = store.outbox().unwrap();
    assert_eq!(queued.len(), 1);
    let entry = &queued[0].1;
    assert_eq!(entry.server, "example.org");
    assert_eq!(entry.tokens, ["aaa"]);
    assert_eq!(entry.body["mxid"], "@alice:example.org");
    assert_eq!(entry.body["invites"][0]["signed"]["token"], "aaa");
    // Claimed once: the next round finds nothing new, carol still waits.
    assert_eq!(invites.resolve_pending(20).unwrap(), 0);
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
    let (store, invites) = service(&dir, Vec::new());
    for (token, room) in [
        ("aaa", "!a:x.org"),
        ("bbb", "!b:x.org"),
        ("ccc", "!c:x.org"),
    ] {
        let ephemeral = KeyPair::from_seed("ed25519:0", &[token.as_bytes()[0]; 32]);
        store
            .put_invite(&InviteRecord {
                token: token.into(),
                medium: Medium::Email,
                address: "dora@example.com".into(),
                room_id: RoomId::parse(room).unwrap(),
                sender: UserId::parse("@bob:x.org").unwrap(),
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
    let first = invites.sign(&dora(), "bbb", &seed).unwrap();
    let again = invites.sign(&dora(), "bbb", &seed).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        store.invite("bbb").unwrap().unwrap().signed_for.as_deref(),
        Some("@dora:example.org")
    );

    let n = invites
        .claim(Medium::Email, "dora@example.com", &dora(), 5)
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
    assert!(invites.sign(&dora(), "bbb", &seed).is_ok());
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}
