//! Federated lookups: `Federation::lookup_email` against a stand-in DNS server and a stand-in
//! remote identity server, both on loopback.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

use oxisd::config::{FederationConfig, OutboundConfig};
use oxisd::homeserver::HomeserverClient;
use oxisd::homeserver::srv::SrvResolver;
use oxisd::service::federation::Federation;
use oxisd::util::time::now_ms;

use crate::support::dns::FakeDns;
use crate::support::remote_is::{PUBKEY_PATH, RemoteIs};

const SRV_NAME: &str = "_matrix-identity._tcp.remote.test";
const ADDRESS: &str = "alice@remote.test";
const MXID: &str = "@alice:remote.test";
const HOUR_MS: u64 = 3600 * 1000;

/// An outbound client that accepts any certificate and may reach `allowed` ranges.
fn client(allowed: &[&str]) -> HomeserverClient {
    let config = OutboundConfig {
        allowed_ranges: allowed.iter().map(|r| r.parse().unwrap()).collect(),
        insecure_skip_tls_verify: true,
        timeout: 5,
        ..OutboundConfig::default()
    };
    HomeserverClient::new(&config).unwrap()
}

fn federation_with(config: &FederationConfig, dns: &FakeDns) -> Federation {
    let srv = SrvResolver::with_nameservers(vec![dns.addr()], Duration::from_secs(2));
    Federation::new(config, srv, vec!["id.test".into(), "Home.test:8448".into()])
}

/// DNS pointing `remote.test` at a running remote identity server, and a federation on it.
struct Setup {
    dns: FakeDns,
    remote: RemoteIs,
    hs: HomeserverClient,
    fed: Federation,
}

fn setup() -> Setup {
    let dns = FakeDns::start();
    let remote = RemoteIs::start("remote.test");
    dns.add_srv(SRV_NAME, "127.0.0.1", remote.port(), 10, 0);
    let fed = federation_with(&FederationConfig::default(), &dns);
    Setup {
        dns,
        remote,
        hs: client(&["127.0.0.1/32"]),
        fed,
    }
}

impl Setup {
    fn lookup(&self, address: &str, now: u64) -> Option<Value> {
        self.fed.lookup_email(&self.hs, address, now)
    }

    /// A currently valid association of ADDRESS, signed by the remote.
    fn valid(&self, now: u64) -> Value {
        self.remote
            .association(ADDRESS, MXID, now - 1000, now + HOUR_MS)
    }
}

#[test]
fn found_and_verified() {
    let s = setup();
    let now = now_ms();
    let association = s.valid(now);
    s.remote.answer(association.clone());
    assert_eq!(s.lookup(ADDRESS, now), Some(association));

    assert_eq!(s.dns.queries(), vec![SRV_NAME.to_string()]);
    let lookups = s.remote.lookups();
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].query_param("medium").as_deref(), Some("email"));
    assert_eq!(lookups[0].query_param("address").as_deref(), Some(ADDRESS));
    let key_fetches: Vec<_> = s
        .remote
        .requests()
        .into_iter()
        .filter(|r| r.path_only().starts_with(PUBKEY_PATH))
        .collect();
    assert_eq!(key_fetches.len(), 1);
}

#[test]
fn found_association_is_cached_and_address_case_is_ignored() {
    let s = setup();
    let now = now_ms();
    let association = s.valid(now);
    s.remote.answer(association.clone());
    assert_eq!(
        s.lookup("Alice@Remote.test", now),
        Some(association.clone())
    );
    assert_eq!(s.lookup(ADDRESS, now + 1000), Some(association));
    assert_eq!(s.remote.lookups().len(), 1);
    // At most 10 minutes later the remote is asked again; the key stays cached.
    s.remote.answer(json!({}));
    assert_eq!(s.lookup(ADDRESS, now + 11 * 60 * 1000), None);
    assert_eq!(s.remote.lookups().len(), 2);
    assert_eq!(s.remote.requests().len(), 3);
}

#[test]
fn empty_answer_is_none() {
    let s = setup();
    assert_eq!(s.lookup(ADDRESS, now_ms()), None);
    assert_eq!(s.remote.lookups().len(), 1);
}

#[test]
fn bad_signature_is_none() {
    let s = setup();
    let now = now_ms();
    let mut tampered = s.valid(now);
    tampered["mxid"] = json!("@mallory:remote.test");
    s.remote.answer(tampered);
    assert_eq!(s.lookup(ADDRESS, now), None);

    // Signed by a key the remote does not publish under that id.
    let s = setup();
    let other = RemoteIs::start("remote.test");
    s.remote
        .answer(other.association(ADDRESS, MXID, now - 1000, now + HOUR_MS));
    assert_eq!(s.lookup(ADDRESS, now), None);

    // Not signed at all.
    let s = setup();
    let mut unsigned = s.valid(now);
    unsigned.as_object_mut().unwrap().remove("signatures");
    s.remote.answer(unsigned);
    assert_eq!(s.lookup(ADDRESS, now), None);
}

#[test]
fn address_mismatch_is_none() {
    let s = setup();
    let now = now_ms();
    s.remote.answer(
        s.remote
            .association("bob@remote.test", MXID, now - 1000, now + HOUR_MS),
    );
    assert_eq!(s.lookup(ADDRESS, now), None);
}

#[test]
fn expired_or_not_yet_valid_is_none() {
    let s = setup();
    let now = now_ms();
    s.remote
        .answer(s.remote.association(ADDRESS, MXID, now - HOUR_MS, now - 1));
    assert_eq!(s.lookup(ADDRESS, now), None);

    let s = setup();
    s.remote.answer(
        s.remote
            .association(ADDRESS, MXID, now + HOUR_MS, now + 2 * HOUR_MS),
    );
    assert_eq!(s.lookup(ADDRESS, now), None);
}

#[test]
fn no_srv_record_is_none() {
    let s = setup();
    s.remote.answer(s.valid(now_ms()));
    assert_eq!(s.lookup("carol@elsewhere.test", now_ms()), None);
    assert_eq!(
        s.dns.queries(),
        vec!["_matrix-identity._tcp.elsewhere.test".to_string()]
    );
    assert!(s.remote.requests().is_empty());
}

#[test]
fn our_own_domains_are_never_asked() {
    let s = setup();
    s.dns.add_srv(
        "_matrix-identity._tcp.id.test",
        "127.0.0.1",
        s.remote.port(),
        10,
        0,
    );
    for address in ["dave@id.test", "dave@ID.test", "erin@home.test"] {
        assert_eq!(s.lookup(address, now_ms()), None, "{address}");
    }
    assert!(s.dns.queries().is_empty());
    assert!(s.remote.requests().is_empty());
}

#[test]
fn disabled_federation_asks_nobody() {
    let s = setup();
    let config = FederationConfig {
        enabled: false,
        ..FederationConfig::default()
    };
    let fed = federation_with(&config, &s.dns);
    s.remote.answer(s.valid(now_ms()));
    assert_eq!(fed.lookup_email(&s.hs, ADDRESS, now_ms()), None);
    assert!(s.dns.queries().is_empty());
}

#[test]
fn negative_cache() {
    let s = setup();
    let now = now_ms();
    assert_eq!(s.lookup(ADDRESS, now), None);
    assert_eq!(s.remote.lookups().len(), 1);

    // Remembered: no DNS query and no request, even though the remote would now answer.
    s.remote
        .answer(s.remote.association(ADDRESS, MXID, now, now + 2 * HOUR_MS));
    assert_eq!(s.lookup(ADDRESS, now + 1000), None);
    assert_eq!(s.lookup("ALICE@remote.test", now + 1000), None);
    assert_eq!(s.remote.lookups().len(), 1);
    assert_eq!(s.dns.queries().len(), 1);

    // Forgotten after lookup.federation.negativeCache seconds.
    let later = now + 3600 * 1000 + 1;
    assert!(s.lookup(ADDRESS, later).is_some());
    assert_eq!(s.remote.lookups().len(), 2);
}

#[test]
fn unreachable_target_falls_back_to_the_next_record() {
    let dns = FakeDns::start();
    let remote = RemoteIs::start("remote.test");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    dns.add_srv(SRV_NAME, "127.0.0.1", remote.port(), 20, 0);
    dns.add_srv(SRV_NAME, "127.0.0.1", closed_port, 10, 0);
    let fed = federation_with(&FederationConfig::default(), &dns);
    let now = now_ms();
    let association = remote.association(ADDRESS, MXID, now - 1000, now + HOUR_MS);
    remote.answer(association.clone());
    let hs = client(&["127.0.0.1/32"]);
    assert_eq!(fed.lookup_email(&hs, ADDRESS, now), Some(association));
}

#[test]
fn target_refused_by_the_guard_is_none_without_connecting() {
    let dns = FakeDns::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    dns.add_srv(SRV_NAME, "127.0.0.1", port, 10, 0);
    dns.add_srv(SRV_NAME, "localhost", port, 20, 0);
    let fed = federation_with(&FederationConfig::default(), &dns);
    assert_eq!(fed.lookup_email(&client(&[]), ADDRESS, now_ms()), None);
    assert_eq!(dns.queries(), vec![SRV_NAME.to_string()]);
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a connection was made: {other:?}"),
    }
}

/// Through the server: a v1 lookup of a foreign email is answered by that domain's identity
/// server, with its own signature; bulk lookups do the same when `lookup.federation.bulk`.
#[test]
fn the_server_federates_v1_lookups_of_foreign_emails() {
    let dns = FakeDns::start();
    let remote = RemoteIs::start("remote.test");
    dns.add_srv(SRV_NAME, "127.0.0.1", remote.port(), 10, 0);
    let now = now_ms();
    let mut assoc = remote.association(ADDRESS, MXID, now - HOUR_MS, now + HOUR_MS);
    remote.sign(&mut assoc);
    remote.answer(assoc.clone());
    let s = crate::support::TestServer::start_with(json!({
        "outbound": {"allowedRanges": ["127.0.0.1/32"], "insecureSkipTlsVerify": true, "nameservers": [dns.addr().to_string()]},
        "lookup": {"federation": {"bulk": true}},
    }));
    let r = s.get("/_matrix/identity/api/v1/lookup?medium=email&address=alice%40remote.test");
    assert_eq!(
        r.json(),
        assoc,
        "the remote association, as the remote signed it"
    );
    let bulk = s.post_json(
        "/_matrix/identity/api/v1/bulk_lookup",
        &json!({"threepids": [["email", ADDRESS], ["msisdn", "447911123456"]]}),
    );
    assert_eq!(
        bulk.json(),
        json!({"threepids": [["email", ADDRESS, MXID]]})
    );
    // Our own domain is never federated.
    let own = s.get("/_matrix/identity/api/v1/lookup?medium=email&address=bob%40id.test");
    assert_eq!(own.json(), json!({}));
    assert!(dns.queries().iter().all(|q| !q.contains("id.test")));
}
