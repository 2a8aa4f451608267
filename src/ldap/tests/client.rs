//! The connection against scripted fake servers on loopback: framing, ids, limits, paging.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::message::{bind_response, done, entry, notice_of_disconnection};
use crate::ldap::ber::parse_header;
use crate::ldap::{
    ConnectOptions, Connection, Filter, LdapError, Scope, SearchRequest, Server, tls_config,
};

/// A TLS configuration that does not depend on the system's CA certificates.
fn test_tls() -> std::sync::Arc<rustls::ClientConfig> {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap/ca.pem");
    tls_config(Some(&ca)).unwrap()
}

/// Reads one whole request message from the client.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if let Some((_, header, length)) = parse_header(&buffer).unwrap()
            && buffer.len() == header + length
        {
            return buffer;
        }
        if stream.read(&mut byte).unwrap() == 0 {
            return buffer;
        }
        buffer.push(byte[0]);
    }
}

/// A server that answers each request with the next script item (written in `chunk`-byte
/// writes), then keeps the connection open until the client closes it. Returns the requests.
fn fake(script: Vec<Vec<u8>>, chunk: usize) -> (Connection, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut requests = Vec::new();
        for answer in script {
            requests.push(read_request(&mut stream));
            for piece in answer.chunks(chunk.max(1)) {
                if stream.write_all(piece).is_err() {
                    return requests;
                }
                stream.flush().unwrap();
            }
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        requests
    });
    let options = ConnectOptions {
        start_tls: false,
        tls: test_tls(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    };
    let server = Server::parse(&format!("ldap://127.0.0.1:{port}")).unwrap();
    (Connection::open(&server, &options).unwrap(), handle)
}

fn search_all(connection: &mut Connection, page_size: u32) -> Result<Vec<String>, LdapError> {
    let filter = Filter::Present("objectClass".into());
    let request = SearchRequest {
        base: "o=x",
        scope: Scope::Subtree,
        filter: &filter,
        attributes: &[],
        size_limit: 0,
    };
    let mut dns = Vec::new();
    connection.search(&request, page_size, &mut |entry| {
        dns.push(entry.dn);
        Ok(())
    })?;
    Ok(dns)
}

#[test]
fn messages_split_in_small_writes_and_joined_in_one_are_read() {
    let mut page = entry(2, "a", &[]);
    page.extend(entry(2, "b", &[("cn", &[b"b"])]));
    page.extend(done(2, 0, None));
    let (mut connection, server) = fake(vec![bind_response(1, 0, ""), page], 1);
    connection.simple_bind("cn=x", "y").unwrap();
    assert_eq!(search_all(&mut connection, 0).unwrap(), ["a", "b"]);
    connection.close();
    let requests = server.join().unwrap();
    assert_eq!(requests[0][4], 0x01, "message id 1: {:02x?}", requests[0]);
    assert_eq!(requests[1][4], 0x02, "message id 2: {:02x?}", requests[1]);
}

#[test]
fn pages_are_asked_for_until_the_cookie_is_empty() {
    let mut first = entry(1, "a", &[]);
    first.extend(done(1, 0, Some(b"k1")));
    let mut second = entry(2, "b", &[]);
    second.extend(wrap_reference(2));
    second.extend(done(2, 0, Some(b"")));
    let (mut connection, server) = fake(vec![first, second], 4096);
    assert_eq!(search_all(&mut connection, 1).unwrap(), ["a", "b"]);
    drop(connection);
    let requests = server.join().unwrap();
    // The second request carries the first page's cookie.
    assert!(requests[1].ends_with(b"\x04\x02k1"), "{:02x?}", requests[1]);
    assert!(!requests[0].ends_with(b"k1"));
}

fn wrap_reference(id: i64) -> Vec<u8> {
    super::message::wrap(id, b"\x73\x0a\x04\x08ldap://r", &[])
}

#[test]
fn a_server_ignoring_the_paging_control_returns_everything() {
    let mut all = entry(1, "a", &[]);
    all.extend(entry(1, "b", &[]));
    all.extend(done(1, 0, None));
    let (mut connection, _server) = fake(vec![all], 4096);
    assert_eq!(search_all(&mut connection, 1).unwrap(), ["a", "b"]);
}

#[test]
fn a_repeated_cookie_without_entries_stops() {
    let (mut connection, _server) =
        fake(vec![done(1, 0, Some(b"k")), done(2, 0, Some(b"k"))], 4096);
    let result = search_all(&mut connection, 5);
    assert!(
        matches!(result, Err(LdapError::Protocol(ref m)) if m.contains("same cookie")),
        "{result:?}"
    );
}

#[test]
fn results_map_to_errors() {
    let (mut connection, _server) = fake(
        vec![
            bind_response(1, 49, "bad"),
            bind_response(2, 53, "unwilling"),
            done(3, 32, None),
            bind_response(4, 0, ""),
        ],
        4096,
    );
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::InvalidCredentials)
    ));
    let error = connection.simple_bind("cn=x", "y").unwrap_err();
    assert_eq!(error.to_string(), "53 unwillingToPerform: unwilling");
    let error = search_all(&mut connection, 0).unwrap_err();
    assert_eq!(error.to_string(), "32 noSuchObject");
    // Server results leave the connection usable.
    connection.simple_bind("cn=x", "y").unwrap();
    // Refused locally, nothing sent.
    assert!(matches!(
        connection.simple_bind("cn=x", ""),
        Err(LdapError::EmptyPassword)
    ));
}

#[test]
fn a_wrong_message_id_is_a_protocol_error_and_closes_the_connection() {
    let (mut connection, _server) = fake(vec![bind_response(5, 0, "")], 4096);
    let error = connection.simple_bind("cn=x", "y").unwrap_err();
    assert!(
        matches!(&error, LdapError::Protocol(m) if m.contains("message id 5, expected 1")),
        "{error:?}"
    );
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::Io(_))
    ));
}

#[test]
fn a_notice_of_disconnection_is_an_error() {
    let (mut connection, _server) = fake(vec![notice_of_disconnection()], 4096);
    let error = connection.simple_bind("cn=x", "y").unwrap_err();
    assert_eq!(
        error.to_string(),
        "52 unavailable: notice of disconnection: shutting down"
    );
}

#[test]
fn oversized_and_malformed_messages_are_protocol_errors() {
    // A header declaring 9 MiB: refused before anything more is read.
    let (mut connection, _server) = fake(vec![b"\x30\x84\x00\x90\x00\x00".to_vec()], 4096);
    let error = connection.simple_bind("cn=x", "y").unwrap_err();
    assert!(
        matches!(&error, LdapError::Protocol(m) if m.contains("limit")),
        "{error:?}"
    );
    // Indefinite length.
    let (mut connection, _server) = fake(vec![b"\x30\x80\x02\x01\x01\x00\x00".to_vec()], 4096);
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::Protocol(_))
    ));
    // Not a SEQUENCE.
    let (mut connection, _server) = fake(vec![b"\x04\x01x".to_vec()], 4096);
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::Protocol(_))
    ));
    // A search entry in answer to a bind.
    let (mut connection, _server) = fake(vec![entry(1, "a", &[])], 4096);
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::Protocol(_))
    ));
}

#[test]
fn a_partial_message_then_silence_times_out() {
    let answer = bind_response(1, 0, "");
    let (mut connection, _server) = fake(vec![answer[..answer.len() - 1].to_vec()], 4096);
    let started = std::time::Instant::now();
    assert!(matches!(
        connection.simple_bind("cn=x", "y"),
        Err(LdapError::Timeout)
    ));
    assert!(
        started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(5)
    );
}

#[test]
fn a_server_closing_mid_message_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        stream.write_all(b"\x30\x10\x02").unwrap();
    });
    let options = ConnectOptions {
        start_tls: false,
        tls: test_tls(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    };
    let server = Server::parse(&format!("ldap://127.0.0.1:{port}")).unwrap();
    let mut connection = Connection::open(&server, &options).unwrap();
    let error = connection.simple_bind("cn=x", "y").unwrap_err();
    assert!(
        matches!(&error, LdapError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{error:?}"
    );
}

#[test]
fn a_refused_start_tls_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_request(&mut stream);
        let mut op = Vec::new();
        crate::ldap::ber::write_constructed(&mut op, 0x78, |out| {
            crate::ldap::ber::write_integer(out, 0x0a, 2);
            crate::ldap::ber::write_tlv(out, 0x04, b"");
            crate::ldap::ber::write_tlv(out, 0x04, b"unsupported extended operation");
        });
        stream
            .write_all(&super::message::wrap(1, &op, &[]))
            .unwrap();
        let _ = stream.read_to_end(&mut Vec::new());
    });
    let options = ConnectOptions {
        start_tls: true,
        tls: test_tls(),
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    };
    let server = Server::parse(&format!("ldap://127.0.0.1:{port}")).unwrap();
    match Connection::open(&server, &options) {
        Err(LdapError::Tls(message)) => assert_eq!(
            message,
            "the server refused StartTLS: 2 protocolError: unsupported extended operation"
        ),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("continued without TLS"),
    }
}

#[test]
fn absurd_timeouts_do_not_panic() {
    let (mut connection, _server) = fake(vec![bind_response(1, 0, "")], 4096);
    connection.simple_bind("cn=x", "y").unwrap();
    for timeout in [Duration::ZERO, Duration::MAX] {
        let options = ConnectOptions {
            start_tls: false,
            tls: test_tls(),
            connect_timeout: timeout,
            timeout,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server::parse(&format!("ldap://127.0.0.1:{port}")).unwrap();
        if let Ok(mut connection) = Connection::open(&server, &options) {
            if timeout == Duration::ZERO {
                assert!(matches!(
                    connection.simple_bind("cn=x", "y"),
                    Err(LdapError::Timeout)
                ));
            } else {
                drop(listener);
                assert!(connection.simple_bind("cn=x", "y").is_err());
            }
        }
    }
}

#[test]
fn connections_and_errors_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Connection>();
    send_sync::<ConnectOptions>();
    send_sync::<LdapError>();
    send_sync::<Filter>();
}
