//! Tests of the binding keyspaces: records, hash entries and their generations, bulk
//! imports, and indexing while binds and unbinds go on.

use super::*;

fn record(address: &str, mxid: &str) -> BindingRecord {
    BindingRecord {
        medium: "email".into(),
        address: address.into(),
        mxid: mxid.into(),
        ts: 1,
        not_before: 1,
        not_after: 2,
    }
}

#[test]
fn bindings_hashes_and_generations() {
    let dir = std::env::temp_dir().join(format!("oxisd-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).unwrap();
    let p1 = Pepper {
        generation: 1,
        pepper: "matrixrocks".into(),
    };
    store
        .put_binding(
            "builtin",
            &record("alice@example.com", "@alice:example.org"),
            std::slice::from_ref(&p1),
        )
        .unwrap();
    store
        .put_binding(
            "static",
            &record("alice@example.com", "@other:example.org"),
            std::slice::from_ref(&p1),
        )
        .unwrap();
    // The spec's vector: "alice@example.com email matrixrocks".
    let digest =
        crate::crypto::base64::decode("4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc").unwrap();
    let digest: [u8; 32] = digest.try_into().unwrap();
    assert_eq!(
        lookup_digest("alice@example.com", "email", "matrixrocks"),
        digest
    );
    let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
    assert_eq!(
        (entry.medium.as_str(), entry.address.as_str()),
        ("email", "alice@example.com")
    );
    let mxids: Vec<(&str, &str)> = entry
        .bindings
        .iter()
        .map(|b| (b.source.as_str(), b.mxid.as_str()))
        .collect();
    assert_eq!(
        mxids,
        [
            ("builtin", "@alice:example.org"),
            ("static", "@other:example.org")
        ]
    );
    assert_eq!(
        store
            .bindings_of("email", "alice@example.com")
            .unwrap()
            .len(),
        2
    );
    // A rotation indexes everything under the next generation.
    let p2 = Pepper {
        generation: 2,
        pepper: "newpepper".into(),
    };
    assert_eq!(store.index_all(&p2).unwrap(), 1);
    let d2 = lookup_digest("alice@example.com", "email", "newpepper");
    assert_eq!(store.threepid_of_hash(2, &d2).unwrap(), Some(entry));
    assert_eq!(store.drop_generation(1).unwrap(), 1);
    assert!(store.threepid_of_hash(1, &digest).unwrap().is_none());
    // Deleting one source keeps the hash while another source binds the 3PID.
    store
        .delete_binding(
            "builtin",
            "email",
            "alice@example.com",
            std::slice::from_ref(&p2),
        )
        .unwrap();
    let left = store.threepid_of_hash(2, &d2).unwrap().unwrap();
    assert_eq!(left.bindings.len(), 1);
    assert_eq!(left.bindings[0].mxid, "@other:example.org");
    store
        .delete_binding(
            "static",
            "email",
            "alice@example.com",
            std::slice::from_ref(&p2),
        )
        .unwrap();
    assert!(store.threepid_of_hash(2, &d2).unwrap().is_none());
    assert_eq!(store.threepids_of_source("static").unwrap(), vec![]);
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_version_1_store_gets_bindings_in_its_hash_entries() {
    let dir = std::env::temp_dir().join(format!("oxisd-upgrade-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pepper = Pepper {
        generation: 1,
        pepper: "pepper".into(),
    };
    let digest = lookup_digest("bob@example.com", "email", "pepper");
    {
        let store = Store::open(&dir).unwrap();
        store.begin_pepper(&pepper).unwrap();
        store.switch_pepper(&pepper).unwrap();
        store
            .put_binding(
                "builtin",
                &record("bob@example.com", "@bob:example.org"),
                std::slice::from_ref(&pepper),
            )
            .unwrap();
        // What version 1 wrote: the 3PID only.
        store
            .bindings
            .by_hash
            .insert(hash_key(1, &digest), b"email\0bob@example.com".to_vec())
            .unwrap();
        store
            .meta
            .insert(b"schema_version", 1u32.to_be_bytes())
            .unwrap();
        store.durable().unwrap();
        store.close().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
    assert_eq!(entry.bindings.len(), 1);
    assert_eq!(entry.bindings[0].mxid, "@bob:example.org");
    assert_eq!(
        store.threepids_of_source("builtin").unwrap(),
        [("email".to_string(), "bob@example.com".to_string())]
    );
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bulk_imports_are_stored_indexed_and_replace_earlier_ones() {
    let dir = std::env::temp_dir().join(format!("oxisd-bulk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pepper = Pepper {
        generation: 1,
        pepper: "pepper".into(),
    };
    let peppers = std::slice::from_ref(&pepper);
    {
        let store = Store::open(&dir).unwrap();
        store
            .put_binding(
                "builtin",
                &record("a@example.com", "@own:example.org"),
                peppers,
            )
            .unwrap();
        let first =
            (0..3).map(|i| record(&format!("{}@example.com", (b'a' + i) as char), "@old:x"));
        assert_eq!(store.put_bindings("synapse", first, peppers).unwrap(), 3);
        let again = [
            record("c@example.com", "@new:x"),
            record("c@example.com", "@newer:x"),
        ];
        assert_eq!(store.put_bindings("synapse", again, peppers).unwrap(), 1);
        store.close().unwrap();
    }
    let store = Store::open(&dir).unwrap();
    let hashed = |address: &str| {
        let digest = lookup_digest(address, "email", "pepper");
        let entry = store.threepid_of_hash(1, &digest).unwrap().unwrap();
        entry
            .bindings
            .into_iter()
            .map(|b| format!("{} {}", b.source, b.mxid))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        hashed("a@example.com"),
        ["builtin @own:example.org", "synapse @old:x"]
    );
    assert_eq!(hashed("b@example.com"), ["synapse @old:x"]);
    assert_eq!(hashed("c@example.com"), ["synapse @newer:x"]);
    assert_eq!(store.threepids_of_source("synapse").unwrap().len(), 3);
    assert_eq!(store.threepids_of_source("builtin").unwrap().len(), 1);
    assert_eq!(
        store
            .binding("email", "c@example.com", "synapse")
            .unwrap()
            .unwrap()
            .mxid,
        "@newer:x"
    );
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn indexing_during_binds_and_unbinds_never_leaves_stale_entries() {
    let dir = std::env::temp_dir().join(format!("oxisd-index-race-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = std::sync::Arc::new(Store::open(&dir).unwrap());
    let (p1, p2) = (
        Pepper {
            generation: 1,
            pepper: "one".into(),
        },
        Pepper {
            generation: 2,
            pepper: "two".into(),
        },
    );
    let addresses: Vec<String> = (0..300).map(|i| format!("u{i}@example.org")).collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A pepper rotation indexing generation 2 over and over while binds come and go.
    let indexer = {
        let (store, done, p2) = (store.clone(), done.clone(), p2.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                store.index_all(&p2).unwrap();
            }
        })
    };
    let peppers = [p1.clone(), p2.clone()];
    for round in 0..3 {
        for a in &addresses {
            let record = record(a, &format!("@r{round}:example.org"));
            store.put_binding("builtin", &record, &peppers).unwrap();
        }
        for a in &addresses {
            store
                .delete_binding("builtin", "email", a, &peppers)
                .unwrap();
        }
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    indexer.join().unwrap();
    // Everything was unbound: no generation may still answer for any address.
    for a in &addresses {
        for p in [&p1, &p2] {
            let digest = lookup_digest(a, "email", &p.pepper);
            assert_eq!(
                store.threepid_of_hash(p.generation, &digest).unwrap(),
                None,
                "{a} still indexed under generation {}",
                p.generation
            );
        }
    }
    drop(store);
    std::fs::remove_dir_all(dir).ok();
}
