use crate::ldap::Server;

fn server(host: &str, port: u16, ldaps: bool) -> Server {
    Server {
        host: host.into(),
        port,
        ldaps,
    }
}

#[test]
fn urls_parse() {
    assert_eq!(
        Server::parse("ldap://ldap.example.org").unwrap(),
        server("ldap.example.org", 389, false)
    );
    assert_eq!(
        Server::parse("ldaps://ldap.example.org/").unwrap(),
        server("ldap.example.org", 636, true)
    );
    assert_eq!(
        Server::parse("LDAP://10.0.0.1:3389/").unwrap(),
        server("10.0.0.1", 3389, false)
    );
    assert_eq!(
        Server::parse("ldaps://[::1]:1636").unwrap(),
        server("::1", 1636, true)
    );
    assert_eq!(
        Server::parse("ldap://[2001:db8::5]").unwrap(),
        server("2001:db8::5", 389, false)
    );
    assert_eq!(
        Server::parse("ldap://a:1").unwrap().to_string(),
        "ldap://a:1"
    );
    assert_eq!(
        Server::parse("ldaps://h").unwrap().to_string(),
        "ldaps://h:636"
    );
    assert_eq!(
        Server::parse("ldap://[::1]/").unwrap().to_string(),
        "ldap://[::1]:389"
    );
}

#[test]
fn bad_urls_are_refused() {
    for (url, wanted) in [
        ("http://x", "must start with ldap:// or ldaps://"),
        ("ldap://", "no host"),
        ("ldap://:389", "no host"),
        ("ldap://h:0", "bad port"),
        ("ldap://h:65536", "bad port"),
        ("ldap://h:+1", "bad port"),
        ("ldap://h:", "bad port"),
        ("ldap://h/dc=example,dc=org", "may only be"),
        ("ldap://h:389/dc=x", "bad port"),
        ("ldap://u@h", "may only be"),
        ("ldap://h?x", "may only be"),
        ("ldap://[::1", "missing ']'"),
        ("ldap://[nope]:1", "not an IPv6 address"),
        ("ldap://[::1]x", "only ':port'"),
        ("ldap://h h", "may only be"),
    ] {
        let error = Server::parse(url).unwrap_err();
        assert!(error.contains(wanted), "{url}: {error}");
    }
}
