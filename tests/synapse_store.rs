//! The synapse store (oxisd::service::stores::synapse) against the Synapse admin API stand-in:
//! pagination, normalisation, reconciling, failures that change nothing, and `sync: bound`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::TempDir;
use crate::support::synapse_admin::SynapseAdmin;
use oxisd::config::{Secret, SynapseStoreConfig, SynapseSync as SyncMode};
use oxisd::crypto::lookup_hash::lookup_digest;
use oxisd::service::bindings::VALIDITY_MS;
use oxisd::service::stores::IdentityStore;
use oxisd::service::stores::local::LocalSource;
use oxisd::service::stores::synapse::{SynapseSync, SyncReport};
use oxisd::store::Store;
use oxisd::store::bindings::{BindingRecord, Pepper};
use oxisd::threepid::Medium;

const TOKEN: &str = "syt_admin_token";
const NOW: u64 = 1_700_000_000_000;

fn config(url: &str, token: &str) -> SynapseStoreConfig {
    SynapseStoreConfig {
        enabled: true,
        url: url.into(),
        admin_token: Secret::new(token),
        sync: SyncMode::All,
        timeout: 5,
        ..SynapseStoreConfig::default()
    }
}

fn syncer(url: &str) -> SynapseSync {
    SynapseSync::new(&config(url, TOKEN)).unwrap()
}

fn peppers() -> Vec<Pepper> {
    vec![Pepper {
        generation: 1,
        pepper: "p".into(),
    }]
}

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path()).unwrap()
}

/// The mxid lookups through the `synapse` source find for a 3PID.
fn lookup(store: &Store, medium: &str, address: &str) -> Option<String> {
    LocalSource::new("synapse")
        .lookup(store, Medium::parse(medium).unwrap(), address)
        .unwrap()
        .map(|b| b.mxid)
}

/// True when a hashed (v2) lookup of the 3PID under pepper "p" finds it.
fn hashed(store: &Store, medium: &str, address: &str) -> bool {
    let digest = lookup_digest(address, medium, "p");
    store
        .threepid_of_hash(1, &digest)
        .unwrap()
        .is_some_and(|e| e.medium == medium && e.address == address)
}

/// Everything of the `synapse` source, sorted, with its mxid.
fn snapshot(store: &Store) -> Vec<(String, String, String)> {
    let mut all: Vec<_> = store
        .threepids_of_source("synapse")
        .unwrap()
        .into_iter()
        .map(|(m, a)| {
            let mxid = lookup(store, &m, &a).unwrap();
            (m, a, mxid)
        })
        .collect();
    all.sort();
    all
}

/// A stand-in with five accounts (three pages): two with 3PIDs, one deactivated, one without
/// 3PIDs, one with only unusable 3PIDs.
fn populated() -> SynapseAdmin {
    let synapse = SynapseAdmin::start(TOKEN);
    synapse.add_user(
        "@alice:example.org",
        &[("email", "Alice@Example.ORG"), ("msisdn", "447700900123")],
        false,
    );
    synapse.add_user("@bob:example.org", &[("email", "bob@example.org")], false);
    synapse.add_user(
        "@carol:example.org",
        &[("email", "carol@example.org")],
        true,
    );
    synapse.add_user("@dave:example.org", &[], false);
    synapse.add_user(
        "@eve:example.org",
        &[
            ("email", "not an address"),
            ("fax", "12345"),
            ("msisdn", "12ab"),
        ],
        false,
    );
    synapse
}

#[test]
fn first_sync_copies_every_active_account_across_pages() {
    let synapse = populated();
    let dir = TempDir::new("synapse-first");
    let store = open(&dir);
    let report = syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW)
        .unwrap();
    assert_eq!(
        report,
        SyncReport {
            users: 4,
            added: 3,
            removed: 0,
            unchanged: 0
        }
    );
    // Three list pages (2 + 2 + 1 accounts), guests excluded; one detail request per active
    // account (the deactivated one is skipped from the list).
    let lists: Vec<String> = synapse
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("/_synapse/admin/v2/users?"))
        .collect();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(
        lists.iter().all(|p| p.contains("guests=false")),
        "{lists:?}"
    );
    assert!(lists[1].contains("from=2") && lists[2].contains("from=4"));
    assert!(
        synapse
            .paths()
            .contains(&"/_synapse/admin/v2/users/%40alice%3Aexample.org".into())
    );
    assert_eq!(synapse.requests(), 3 + 4);

    let alice = Some("@alice:example.org".to_string());
    assert_eq!(lookup(&store, "email", "alice@example.org"), alice);
    assert_eq!(lookup(&store, "msisdn", "447700900123"), alice);
    assert_eq!(
        lookup(&store, "email", "bob@example.org").as_deref(),
        Some("@bob:example.org")
    );
    assert_eq!(lookup(&store, "email", "carol@example.org"), None);
    assert_eq!(lookup(&store, "email", "Alice@Example.ORG"), None);
    assert_eq!(store.threepids_of_source("synapse").unwrap().len(), 3);
    for (m, a) in [
        ("email", "alice@example.org"),
        ("msisdn", "447700900123"),
        ("email", "bob@example.org"),
    ] {
        assert!(hashed(&store, m, a), "{m} {a} not in the hash index");
    }
    assert!(!hashed(&store, "email", "carol@example.org"));
    let record = store
        .binding("email", "bob@example.org", "synapse")
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.ts, record.not_before, record.not_after),
        (NOW, NOW, NOW + VALIDITY_MS)
    );

    // Nothing changed on Synapse: nothing is rewritten.
    let again = syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW + 1000)
        .unwrap();
    assert_eq!((again.added, again.removed, again.unchanged), (0, 0, 3));
    let record = store
        .binding("email", "bob@example.org", "synapse")
        .unwrap()
        .unwrap();
    assert_eq!(record.ts, NOW);
}

#[test]
fn later_syncs_follow_removed_users_and_changed_threepids() {
    let synapse = populated();
    let dir = TempDir::new("synapse-reconcile");
    let store = open(&dir);
    let sync = syncer(&synapse.base_url());
    sync.sync_once(&store, &peppers(), NOW).unwrap();
    // A binding made here for bob's address must survive the synapse source dropping it.
    let own = BindingRecord {
        medium: "email".into(),
        address: "bob@example.org".into(),
        mxid: "@bob:example.org".into(),
        ts: 1,
        not_before: 1,
        not_after: u64::MAX,
    };
    store.put_binding("builtin", &own, &peppers()).unwrap();

    synapse.remove_user("@bob:example.org");
    // Alice changes her email; her number moves to frank; carol comes back.
    synapse.add_user(
        "@alice:example.org",
        &[("email", "alice.new@example.org")],
        false,
    );
    synapse.add_user("@frank:example.org", &[("msisdn", "+447700900123")], false);
    synapse.add_user(
        "@carol:example.org",
        &[("email", "carol@example.org")],
        false,
    );

    let report = sync.sync_once(&store, &peppers(), NOW + 1000).unwrap();
    assert_eq!(
        report,
        SyncReport {
            users: 5,
            added: 3,
            removed: 2,
            unchanged: 0
        }
    );
    assert_eq!(
        snapshot(&store),
        vec![
            (
                "email".into(),
                "alice.new@example.org".into(),
                "@alice:example.org".into()
            ),
            (
                "email".into(),
                "carol@example.org".into(),
                "@carol:example.org".into()
            ),
            (
                "msisdn".into(),
                "447700900123".into(),
                "@frank:example.org".into()
            ),
        ]
    );
    assert!(!hashed(&store, "email", "alice@example.org"));
    assert!(hashed(&store, "email", "alice.new@example.org"));
    assert!(hashed(&store, "msisdn", "447700900123"));
    // Bob's address is gone from the synapse source, but the builtin binding (and so its hash)
    // stays.
    assert_eq!(lookup(&store, "email", "bob@example.org"), None);
    assert!(
        store
            .binding("email", "bob@example.org", "builtin")
            .unwrap()
            .is_some()
    );
    assert!(hashed(&store, "email", "bob@example.org"));
}

#[test]
fn a_threepid_on_two_accounts_is_not_published() {
    let synapse = SynapseAdmin::start(TOKEN);
    synapse.add_user("@a:example.org", &[("email", "shared@example.org")], false);
    synapse.add_user("@b:example.org", &[("email", "SHARED@example.org")], false);
    synapse.add_user("@c:example.org", &[("email", "c@example.org")], false);
    let dir = TempDir::new("synapse-shared");
    let store = open(&dir);
    let report = syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW)
        .unwrap();
    assert_eq!((report.users, report.added), (3, 1));
    assert_eq!(lookup(&store, "email", "shared@example.org"), None);
}

#[test]
fn a_rejected_token_or_a_failure_half_way_changes_nothing() {
    let synapse = populated();
    let dir = TempDir::new("synapse-token");
    let store = open(&dir);
    syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW)
        .unwrap();
    let before = snapshot(&store);
    synapse.remove_user("@alice:example.org");

    let wrong = SynapseSync::new(&config(&synapse.base_url(), "not-the-token")).unwrap();
    let err = wrong.sync_once(&store, &peppers(), NOW + 1).unwrap_err();
    assert!(
        err.contains("401") && err.contains("M_UNKNOWN_TOKEN"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "{err}");
    assert_eq!(snapshot(&store), before);

    // The list pages work, one account's details fail: still nothing written.
    synapse.fail_user("@eve:example.org");
    let err = syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW + 2)
        .unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert_eq!(snapshot(&store), before);
    assert!(hashed(&store, "email", "alice@example.org"));
}

#[test]
fn synapse_down_or_silent_is_an_error() {
    let synapse = populated();
    let url = synapse.base_url();
    let dir = TempDir::new("synapse-down");
    let store = open(&dir);
    let sync = syncer(&url);
    sync.sync_once(&store, &peppers(), NOW).unwrap();
    let before = snapshot(&store);
    // A fresh syncer: the old one's pooled connection would reach the stand-in's connection
    // thread, which outlives the stand-in (a hung Synapse, covered below).
    drop(synapse);
    let err = syncer(&url)
        .sync_once(&store, &peppers(), NOW + 1)
        .unwrap_err();
    assert!(err.contains(&url), "{err}");
    assert_eq!(snapshot(&store), before);

    // Accepts the connection, never answers: the per-call timeout ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let mut config = config(&url, TOKEN);
    config.timeout = 1;
    let started = Instant::now();
    let err = SynapseSync::new(&config)
        .unwrap()
        .sync_once(&store, &peppers(), NOW + 2)
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    assert!(err.contains("within 1s"), "{err}");
    assert_eq!(snapshot(&store), before);
}

#[test]
fn bound_mode_removes_the_source_and_asks_nothing() {
    let synapse = populated();
    let dir = TempDir::new("synapse-bound");
    let store = open(&dir);
    syncer(&synapse.base_url())
        .sync_once(&store, &peppers(), NOW)
        .unwrap();
    let own = BindingRecord {
        medium: "email".into(),
        address: "own@example.org".into(),
        mxid: "@own:example.org".into(),
        ts: 1,
        not_before: 1,
        not_after: u64::MAX,
    };
    store.put_binding("builtin", &own, &peppers()).unwrap();
    let requests = synapse.requests();

    let mut bound = config(&synapse.base_url(), "");
    bound.sync = SyncMode::Bound;
    let report = SynapseSync::new(&bound)
        .unwrap()
        .sync_once(&store, &peppers(), NOW + 1)
        .unwrap();
    assert_eq!(
        report,
        SyncReport {
            users: 0,
            added: 0,
            removed: 3,
            unchanged: 0
        }
    );
    assert_eq!(synapse.requests(), requests);
    assert!(store.threepids_of_source("synapse").unwrap().is_empty());
    assert!(!hashed(&store, "email", "alice@example.org"));
    assert!(hashed(&store, "email", "own@example.org"));
}

#[test]
fn bad_configs_are_refused() {
    let err = |c: &SynapseStoreConfig| SynapseSync::new(c).err().unwrap_or_default();
    assert!(err(&config("ftp://127.0.0.1", TOKEN)).contains("http(s)"));
    assert!(err(&config("http://exa mple.org", TOKEN)).contains("not a valid URL"));
    assert!(err(&config("http://127.0.0.1:8008", "")).contains("admin_token"));
    let mut c = config("http://127.0.0.1:8008", TOKEN);
    c.timeout = 0;
    assert!(err(&c).contains("timeout"));
    let mut c = config("http://127.0.0.1:8008/", "");
    c.sync = SyncMode::Bound;
    assert!(SynapseSync::new(&c).is_ok());
}
