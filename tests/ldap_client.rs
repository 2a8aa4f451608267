//! The LDAP client (src/ldap) against a real OpenLDAP slapd (tests/support/slapd.rs): binds,
//! searches over both base DNs, paging against a size limit, StartTLS and ldaps trust, filter
//! injection, and the failures (closed port, a server that never answers).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oxisd::ldap::{
    ConnectOptions, Connection, Entry, Filter, LdapError, Scope, SearchRequest, Server,
    escape_value, parse_filter, tls_config,
};

use crate::support::slapd::{
    BASE, CONTRACTORS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Slapd, USER_FILTER,
};

/// The test CA, for the tests that never get as far as checking a certificate (no dependency on
/// the system's CA certificates).
fn test_ca() -> Arc<rustls::ClientConfig> {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/ca.pem");
    tls_config(Some(&ca)).unwrap()
}

fn options(slapd: &Slapd, start_tls: bool) -> ConnectOptions {
    ConnectOptions {
        start_tls,
        tls: tls_config(Some(&slapd.ca_file)).unwrap(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
    }
}

fn connect(slapd: &Slapd, start_tls: bool) -> Connection {
    Connection::open(
        &Server::parse(&slapd.url).unwrap(),
        &options(slapd, start_tls),
    )
    .unwrap()
}

fn service(slapd: &Slapd) -> Connection {
    let mut connection = connect(slapd, false);
    connection
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .unwrap();
    connection
}

fn search(
    connection: &mut Connection,
    base: &str,
    filter: &Filter,
    page_size: u32,
) -> Result<Vec<Entry>, LdapError> {
    let mut entries = Vec::new();
    let request = SearchRequest {
        base,
        scope: Scope::Subtree,
        filter,
        attributes: &["uid", "mail", "displayName"],
        size_limit: 0,
    };
    connection.search(&request, page_size, &mut |entry| {
        entries.push(entry);
        Ok(())
    })?;
    Ok(entries)
}

fn uids(entries: &[Entry]) -> Vec<String> {
    let mut uids: Vec<String> = entries
        .iter()
        .filter_map(|e| e.first("uid"))
        .map(String::from)
        .collect();
    uids.sort();
    uids
}

#[test]
fn service_bind_and_user_search_over_both_bases() {
    let Some(slapd) = Slapd::start() else { return };
    let mut connection = service(&slapd);
    let filter = parse_filter(USER_FILTER).unwrap();
    let people = search(&mut connection, PEOPLE, &filter, 0).unwrap();
    assert_eq!(uids(&people), ["alice", "bob"]);
    let alice = people
        .iter()
        .find(|e| e.first("uid") == Some("alice"))
        .unwrap();
    assert_eq!(alice.dn, "uid=alice,ou=people,dc=example,dc=org");
    assert_eq!(alice.first("DISPLAYNAME"), Some("Alice Liddell"));
    assert_eq!(
        alice.values("mail").collect::<Vec<_>>(),
        ["alice@example.org", "Alice.Work@Example.ORG"]
    );
    let contractors = search(&mut connection, CONTRACTORS, &filter, 0).unwrap();
    assert_eq!(uids(&contractors), ["carol"]);
    assert_eq!(
        contractors[0].first("displayName"),
        Some("Carol Contractor")
    );
    // The per-user filter built without strings.
    let one = Filter::and(vec![filter.clone(), Filter::equality("uid", "bob")]);
    assert_eq!(
        uids(&search(&mut connection, BASE, &one, 0).unwrap()),
        ["bob"]
    );
    connection.close();
}

#[test]
fn paging_gets_past_the_size_limit() {
    let Some(slapd) = Slapd::start() else { return };
    let mut connection = service(&slapd);
    let everything = parse_filter("(objectClass=*)").unwrap();
    // The service account may get 3 entries per unpaged search; the tree has 9.
    match search(&mut connection, BASE, &everything, 0) {
        Err(LdapError::Server { code: 4, message }) => {
            let shown = LdapError::Server { code: 4, message }.to_string();
            assert!(shown.starts_with("4 sizeLimitExceeded"), "{shown}");
        }
        other => panic!("expected sizeLimitExceeded, got {other:?}"),
    }
    // Paged, 2 a page: everything, each entry once.
    let mut connection = service(&slapd);
    let entries = search(&mut connection, BASE, &everything, 2).unwrap();
    assert_eq!(
        entries.len(),
        9,
        "{:?}",
        entries.iter().map(|e| &e.dn).collect::<Vec<_>>()
    );
    let mut dns: Vec<&str> = entries.iter().map(|e| e.dn.as_str()).collect();
    dns.sort();
    dns.dedup();
    assert_eq!(dns.len(), 9);
    // More users than a page with the user filter, across pages of 1.
    let users = search(
        &mut connection,
        BASE,
        &parse_filter(USER_FILTER).unwrap(),
        1,
    )
    .unwrap();
    assert_eq!(uids(&users), ["alice", "bob", "carol"]);
}

#[test]
fn user_binds() {
    let Some(slapd) = Slapd::start() else { return };
    let alice = format!("uid=alice,{PEOPLE}");
    let mut connection = connect(&slapd, false);
    connection.simple_bind(&alice, "alice-password").unwrap();
    // The same connection binds again (as another user, wrongly).
    match connection.simple_bind(&format!("uid=bob,{PEOPLE}"), "alice-password") {
        Err(LdapError::InvalidCredentials) => {}
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    match connection.simple_bind(&alice, "") {
        Err(LdapError::EmptyPassword) => {}
        other => panic!("expected EmptyPassword, got {other:?}"),
    }
    match connection.simple_bind(&format!("uid=nobody,{PEOPLE}"), "x") {
        Err(LdapError::InvalidCredentials) => {}
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    // Still usable after refused binds.
    connection.simple_bind(&alice, "alice-password").unwrap();
    // A user reads nothing (the ACLs): the search fails or finds nothing, never alice's data.
    let found = search(
        &mut connection,
        PEOPLE,
        &parse_filter("(uid=*)").unwrap(),
        0,
    );
    assert!(
        found.as_ref().map(|e| e.is_empty()).unwrap_or(true),
        "{found:?}"
    );
    connection.close();
}

#[test]
fn start_tls_and_ldaps() {
    let Some(slapd) = Slapd::start() else { return };
    // StartTLS with the test CA.
    let mut connection = connect(&slapd, true);
    connection
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .unwrap();
    let users = search(
        &mut connection,
        PEOPLE,
        &parse_filter(USER_FILTER).unwrap(),
        2,
    )
    .unwrap();
    assert_eq!(uids(&users), ["alice", "bob"]);
    connection.close();
    // ldaps with the test CA.
    let server = Server::parse(&slapd.ldaps_url).unwrap();
    assert!(server.ldaps);
    let mut connection = Connection::open(&server, &options(&slapd, false)).unwrap();
    connection
        .simple_bind(SERVICE_DN, SERVICE_PASSWORD)
        .unwrap();
    let users = search(
        &mut connection,
        CONTRACTORS,
        &parse_filter(USER_FILTER).unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(uids(&users), ["carol"]);
    connection.close();
    // TLS spoken to the plain port: a Tls error, not a hang.
    let plain_port = Server::parse(&slapd.url).unwrap().port;
    let wrong = Server {
        host: "127.0.0.1".into(),
        port: plain_port,
        ldaps: true,
    };
    let started = Instant::now();
    match Connection::open(&wrong, &options(&slapd, false)) {
        Err(LdapError::Tls(_)) => {}
        Err(other) => panic!("TLS to the plain port: expected a Tls error, got {other:?}"),
        Ok(_) => panic!("TLS to the plain port succeeded"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The system trust store does not know the test CA: both fail with a certificate error.
    let system = ConnectOptions {
        tls: tls_config(None).unwrap(),
        ..options(&slapd, true)
    };
    for url in [&slapd.url, &slapd.ldaps_url] {
        match Connection::open(&Server::parse(url).unwrap(), &system) {
            Err(LdapError::Tls(message)) => {
                assert!(message.contains("certificate"), "{url}: {message}")
            }
            Err(other) => panic!("{url}: expected a Tls error, got {other:?}"),
            Ok(_) => panic!("{url}: connected without trusting the test CA"),
        }
    }
}

#[test]
fn escaped_values_cannot_inject() {
    let Some(slapd) = Slapd::start() else { return };
    let mut connection = service(&slapd);
    let text = format!("(uid={})", escape_value("*)(uid=*"));
    let filter = parse_filter(&text).unwrap();
    assert_eq!(filter, Filter::equality("uid", "*)(uid=*"));
    assert!(
        search(&mut connection, BASE, &filter, 0)
            .unwrap()
            .is_empty()
    );
    let built = Filter::and(vec![
        parse_filter(USER_FILTER).unwrap(),
        Filter::equality("uid", "*"),
    ]);
    assert!(search(&mut connection, BASE, &built, 0).unwrap().is_empty());
    // The unescaped text would have matched everyone: the check can fail.
    let unescaped = parse_filter("(uid=*)").unwrap();
    assert!(
        !search(&mut connection, PEOPLE, &unescaped, 0)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_error_from_the_callback_stops_the_search() {
    let Some(slapd) = Slapd::start() else { return };
    let mut connection = service(&slapd);
    let filter = parse_filter(USER_FILTER).unwrap();
    let request = SearchRequest {
        base: BASE,
        scope: Scope::Subtree,
        filter: &filter,
        attributes: &["1.1"],
        size_limit: 0,
    };
    let mut calls = 0;
    let result = connection.search(&request, 1, &mut |entry| {
        calls += 1;
        assert!(entry.attributes.is_empty(), "{entry:?}");
        Err(LdapError::Protocol("stop here".into()))
    });
    assert!(
        matches!(result, Err(LdapError::Protocol(ref m)) if m == "stop here"),
        "{result:?}"
    );
    assert_eq!(calls, 1);
    // The connection was dropped (the rest of the answer is not read): later calls fail.
    let again = connection.simple_bind(SERVICE_DN, SERVICE_PASSWORD);
    assert!(matches!(again, Err(LdapError::Io(_))), "{again:?}");
}

#[test]
fn a_stopped_server_is_a_connect_error_and_a_restarted_one_works() {
    let Some(mut slapd) = Slapd::start() else {
        return;
    };
    let mut connection = service(&slapd);
    slapd.stop();
    let filter = parse_filter(USER_FILTER).unwrap();
    let lost = search(&mut connection, PEOPLE, &filter, 0);
    assert!(matches!(lost, Err(LdapError::Io(_))), "{lost:?}");
    let server = Server::parse(&slapd.url).unwrap();
    let started = Instant::now();
    match Connection::open(&server, &options(&slapd, false)) {
        Err(LdapError::Connect { server: shown, .. }) => assert_eq!(shown, slapd.url),
        Err(other) => panic!("expected Connect, got {other:?}"),
        Ok(_) => panic!("connected to a stopped slapd"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    slapd.restart();
    let mut connection = service(&slapd);
    assert_eq!(
        uids(&search(&mut connection, PEOPLE, &filter, 0).unwrap()),
        ["alice", "bob"]
    );
}

#[test]
fn closed_port_is_a_quick_connect_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::parse(&format!("ldap://127.0.0.1:{port}/")).unwrap();
    let options = ConnectOptions {
        start_tls: false,
        tls: test_ca(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
    };
    let started = Instant::now();
    match Connection::open(&server, &options) {
        Err(error @ LdapError::Connect { .. }) => {
            assert!(
                error.to_string().contains(&format!("127.0.0.1:{port}")),
                "{error}"
            )
        }
        Err(other) => panic!("expected Connect, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads, never writes; keeps the connections open until the test ends.
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let timeout = Duration::from_millis(700);
    for (url, start_tls) in [
        (format!("ldap://127.0.0.1:{port}"), false),
        (format!("ldap://127.0.0.1:{port}"), true),
        (format!("ldaps://127.0.0.1:{port}"), false),
    ] {
        let options = ConnectOptions {
            start_tls,
            tls: test_ca(),
            connect_timeout: Duration::from_secs(2),
            timeout,
        };
        let started = Instant::now();
        let result = Connection::open(&Server::parse(&url).unwrap(), &options)
            .and_then(|mut connection| connection.simple_bind(SERVICE_DN, SERVICE_PASSWORD));
        let elapsed = started.elapsed();
        assert!(
            matches!(result, Err(LdapError::Timeout)),
            "{url} {start_tls}: {result:?}"
        );
        assert!(
            elapsed >= timeout && elapsed < timeout * 3,
            "{url}: {elapsed:?}"
        );
    }
}

#[test]
fn a_large_directory_is_read_in_pages() {
    let mut users = String::new();
    for n in 0..3000 {
        users.push_str(&format!(
            "dn: uid=user{n},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: user{n}\ncn: User {n}\nsn: {n}\nmail: user{n}@example.org\n\n"
        ));
    }
    let started = Instant::now();
    let Some(slapd) = Slapd::start_with(&users) else {
        return;
    };
    eprintln!("slapd with 3000 users started in {:?}", started.elapsed());
    let mut connection = service(&slapd);
    let filter = parse_filter(USER_FILTER).unwrap();
    let started = Instant::now();
    let entries = search(&mut connection, PEOPLE, &filter, 500).unwrap();
    eprintln!("3000 users read in pages of 500 in {:?}", started.elapsed());
    assert_eq!(entries.len(), 3000);
    assert_eq!(
        entries.iter().filter(|e| e.first("mail").is_some()).count(),
        3000
    );
    // The default seed is not there, only the base entries and these users.
    assert!(!uids(&entries).contains(&"alice".to_string()));
}
