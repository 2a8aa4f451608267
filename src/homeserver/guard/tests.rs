//! Tests of the guard module.
use super::*;

use std::io::{Read, Write};
use std::net::TcpListener;

use ureq::unversioned::transport::DefaultConnector;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Teredo address with server 65.54.227.120 and the given client, as RFC 4380 lays out.
fn teredo(server: Ipv4Addr, client: Ipv4Addr) -> IpAddr {
    let bits = (0x2001_0000_u128 << 96)
        | (u128::from(u32::from(server)) << 64)
        | (0x8000_u128 << 48)
        | (0x63bf_u128 << 32)
        | u128::from(!u32::from(client));
    IpAddr::V6(Ipv6Addr::from(bits))
}

#[test]
fn non_public_addresses_are_refused() {
    let refused = [
        // IPv4
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "127.1.2.3",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        // IPv6
        "::",
        "::1",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "100::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "3fff::1",
        "2001:2::1",
        "2001:20::1",
        "64:ff9b:1::808:808",
        "4000::1",
        "5f00::1",
        // IPv6 embedding a non-public IPv4
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "2002:0a00:0001::1",
        "2002:7f00:0001::1",
        "2002:c0a8:0101:1::1",
    ];
    for s in refused {
        assert!(!is_public(ip(s)), "{s} should be refused");
    }
    let internal = Ipv4Addr::new(10, 0, 0, 1);
    let loopback = Ipv4Addr::LOCALHOST;
    let server = Ipv4Addr::new(65, 54, 227, 120);
    assert!(!is_public(teredo(server, internal)));
    assert!(!is_public(teredo(server, loopback)));
    assert!(!is_public(teredo(internal, Ipv4Addr::new(8, 8, 8, 8))));
    assert_eq!(
        teredo(server, internal),
        ip("2001:0:4136:e378:8000:63bf:f5ff:fffe")
    );
}

#[test]
fn public_addresses_pass() {
    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:0808:0808::1",
    ];
    for s in public {
        assert!(is_public(ip(s)), "{s} should pass");
    }
    let server = Ipv4Addr::new(65, 54, 227, 120);
    assert!(is_public(teredo(server, Ipv4Addr::new(8, 8, 8, 8))));
}

#[test]
fn allow_list_opens_exactly_its_ranges() {
    let guard = AddressGuard::new(cidrs(&["127.0.0.1/32"]));
    assert!(guard.permits(ip("127.0.0.1")));
    assert!(guard.permits(ip("::ffff:127.0.0.1")));
    assert!(!guard.permits(ip("127.0.0.2")));
    assert!(!guard.permits(ip("::1")));
    assert!(!guard.permits(ip("10.0.0.1")));
    assert!(guard.permits(ip("8.8.8.8")));

    let wide = AddressGuard::new(cidrs(&["10.0.0.0/8", "fd00::/8"]));
    assert!(wide.permits(ip("10.1.2.3")) && wide.permits(ip("fd00::5")));
    assert!(!wide.permits(ip("192.168.0.1")) && !wide.permits(ip("fc00::1")));
    // The allow-list matches the address, not an IPv4 embedded by translation.
    assert!(!wide.permits(ip("64:ff9b::a00:1")));

    let none = AddressGuard::new(Vec::new());
    assert!(!none.permits(ip("127.0.0.1")) && none.permits(ip("1.1.1.1")));
}

#[test]
fn literals_resolve_without_lookup() {
    let open = AddressGuard::new(cidrs(&["127.0.0.1/32", "::1/128"]));
    let v4 = SocketAddr::new(ip("127.0.0.1"), 8448);
    let v6 = SocketAddr::new(ip("::1"), 8448);
    assert_eq!(open.resolve("127.0.0.1", 8448), Ok(vec![v4]));
    assert_eq!(open.resolve("[::1]", 8448), Ok(vec![v6]));
    assert_eq!(open.resolve("::1", 8448), Ok(vec![v6]));

    let closed = AddressGuard::new(Vec::new());
    for host in ["127.0.0.1", "[::1]", "::1"] {
        match closed.resolve(host, 443) {
            Err(GuardError::Refused { host: h, addresses }) => {
                assert_eq!(h, host);
                assert_eq!(addresses.len(), 1);
                assert!(addresses[0].is_loopback());
            }
            other => panic!("{host}: {other:?}"),
        }
    }
    // Public literals pass without an allow-list (and without any lookup).
    assert_eq!(
        closed.resolve("8.8.8.8", 443),
        Ok(vec![SocketAddr::new(ip("8.8.8.8"), 443)])
    );
}

#[test]
fn malformed_hosts_are_not_found() {
    let guard = AddressGuard::new(Vec::new());
    for host in [
        "",
        "[::1",
        "[127.0.0.1]",
        "[nope]",
        "a b",
        "x/y",
        "host:443",
        "é.org",
    ] {
        assert!(
            matches!(guard.resolve(host, 443), Err(GuardError::NotFound { .. })),
            "{host:?}"
        );
    }
}

#[test]
fn localhost_resolves_from_hosts_file() {
    // `localhost` comes from /etc/hosts: no DNS query leaves the machine.
    let closed = AddressGuard::new(Vec::new());
    match closed.resolve("localhost", 8448) {
        Err(GuardError::Refused { host, addresses }) => {
            assert_eq!(host, "localhost");
            assert!(!addresses.is_empty());
            assert!(addresses.iter().all(|a| a.is_loopback()));
        }
        other => panic!("{other:?}"),
    }
    let open = AddressGuard::new(cidrs(&["127.0.0.0/8", "::1/128"]));
    let found = open.resolve("localhost", 8448).unwrap();
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8448)
    );
}

#[test]
fn refusal_names_host_and_config_key() {
    let err = GuardError::Refused {
        host: "evil.example".into(),
        addresses: vec![ip("10.0.0.1"), ip("::1")],
    };
    let text = err.to_string();
    assert!(text.contains("evil.example"), "{text}");
    assert!(text.contains("10.0.0.1, ::1"), "{text}");
    assert!(text.contains("non-public"), "{text}");
    assert!(text.contains("outbound.allowedRanges"), "{text}");
    assert!(text.contains("address guard"), "{text}");
}

fn agent(allowed: &[&str], proxy: Option<ureq::Proxy>) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(proxy)
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    ureq::Agent::with_parts(
        config,
        DefaultConnector::new(),
        GuardedResolver::new(AddressGuard::new(cidrs(allowed))),
    )
}

/// Serves one plain HTTP response on the listener, returns the request head.
fn serve_once(listener: TcpListener) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "client closed early");
            head.extend_from_slice(&buf[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .unwrap();
        String::from_utf8(head).unwrap()
    })
}

fn assert_no_connection(listener: &TcpListener) {
    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "the listener got a connection: {accepted:?}"
    );
}

#[test]
fn agent_reaches_allow_listed_loopback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(listener);
    let mut response = agent(&["127.0.0.1/32"], None)
        .get(format!("http://127.0.0.1:{port}/probe"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body_mut().read_to_string().unwrap(), "hello");
    assert!(server.join().unwrap().starts_with("GET /probe HTTP/1.1"));
}

#[test]
fn agent_resolves_names_on_a_thread_within_the_timeout() {
    // With timeout_global set, names go through the helper-thread path.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_once(listener);
    let mut response = agent(&["127.0.0.0/8", "::1/128"], None)
        .get(format!("http://localhost:{port}/named"))
        .call()
        .unwrap();
    assert_eq!(response.body_mut().read_to_string().unwrap(), "hello");
    assert!(server.join().unwrap().starts_with("GET /named HTTP/1.1"));
}

#[test]
fn agent_refuses_loopback_without_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = agent(&[], None);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let err = closed.get(&url).call().unwrap_err();
        assert!(
            matches!(
                GuardError::from_ureq(&err),
                Some(GuardError::Refused { .. })
            ),
            "{url}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("address guard"), "{text}");
        assert!(text.contains("outbound.allowedRanges"), "{text}");
    }
    // Only 127.0.0.1 is allow-listed, so 127.0.0.2 stays refused.
    let err = agent(&["127.0.0.1/32"], None)
        .get(format!("http://127.0.0.2:{port}/"))
        .call()
        .unwrap_err();
    assert!(GuardError::from_ureq(&err).is_some(), "{err:?}");
    assert_no_connection(&listener);
}

#[test]
fn agent_with_a_proxy_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = ureq::Proxy::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let err = agent(&["127.0.0.1/32"], Some(proxy))
        .get("https://8.8.8.8/")
        .call()
        .unwrap_err();
    match &err {
        ureq::Error::Io(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("address guard"), "{err}");
    assert!(err.to_string().contains("proxy"), "{err}");
    assert_no_connection(&listener);
}

#[test]
fn ip_family_is_honoured() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .ip_family(ureq::config::IpFamily::Ipv6Only)
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        DefaultConnector::new(),
        GuardedResolver::new(AddressGuard::new(cidrs(&["127.0.0.1/32"]))),
    );
    let err = agent
        .get(format!("http://127.0.0.1:{port}/"))
        .call()
        .unwrap_err();
    assert!(matches!(err, ureq::Error::HostNotFound), "{err:?}");
    assert_no_connection(&listener);
}
