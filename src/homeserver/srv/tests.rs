//! Tests of the srv module.
use super::*;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const NAME: &str = "_matrix-fed._tcp.example.org";

/// A deterministic generator (SplitMix64), so damage and draws repeat from run to run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
/// Where "example.org" starts in a message whose question is NAME: after the header,
/// "\x0b_matrix-fed" and "\x04_tcp".
const EXAMPLE_ORG_AT: u16 = 12 + 12 + 5;

fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

fn pointer(at: u16) -> Vec<u8> {
    (0xc000 | at).to_be_bytes().to_vec()
}

fn srv_rdata(priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for v in [priority, weight, port] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    rdata.extend_from_slice(target);
    rdata
}

/// Length of the question section of a query (uncompressed name + type + class).
fn question_len(query: &[u8]) -> usize {
    let mut at = HEADER;
    while query[at] != 0 {
        at += 1 + usize::from(query[at]);
    }
    at + 1 + 4 - HEADER
}

/// A response to `query` with `rcode` and `extra` flag bits, echoing its question.
fn reply(query: &[u8], rcode: u8, extra: u16) -> Vec<u8> {
    let mut msg = query[..2].to_vec();
    msg.extend_from_slice(&(0x8180 | extra | u16::from(rcode)).to_be_bytes());
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    msg.extend_from_slice(&query[HEADER..HEADER + question_len(query)]);
    msg
}

fn answer(msg: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
    msg.extend_from_slice(owner);
    msg.extend_from_slice(&rtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    msg.extend_from_slice(&ttl.to_be_bytes());
    msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    msg.extend_from_slice(rdata);
    let count = u16_at(msg, 6).unwrap() + 1;
    msg[6..8].copy_from_slice(&count.to_be_bytes());
}

/// The full answer of the main test: two SRV records with compression pointers, plus
/// records the parser must skip.
fn two_records(query: &[u8]) -> Vec<u8> {
    let mut msg = reply(query, 0, 0);
    // A CNAME for the name, which must not be followed.
    let mut cname = b"\x05alias".to_vec();
    cname.extend(pointer(EXAMPLE_ORG_AT));
    answer(&mut msg, &pointer(12), 5, 300, &cname);
    let mut target = b"\x04slow".to_vec();
    target.extend(pointer(EXAMPLE_ORG_AT));
    answer(
        &mut msg,
        &pointer(12),
        TYPE_SRV,
        300,
        &srv_rdata(20, 5, 8448, &target),
    );
    let mut target = b"\x04fast".to_vec();
    target.extend(pointer(EXAMPLE_ORG_AT));
    answer(
        &mut msg,
        &pointer(12),
        TYPE_SRV,
        3600,
        &srv_rdata(10, 0, 443, &target),
    );
    // An SRV record of another name, and an A record: both ignored.
    let other = wire_name("_other._tcp.example.org");
    let mut target = b"\x04evil".to_vec();
    target.extend(pointer(EXAMPLE_ORG_AT));
    answer(&mut msg, &other, TYPE_SRV, 60, &srv_rdata(0, 0, 1, &target));
    answer(&mut msg, &pointer(12), 1, 60, &[192, 0, 2, 1]);
    msg
}

/// A fake nameserver on 127.0.0.1: answers each query with what `handler` returns
/// (nothing, one or several datagrams). Counts the queries it got.
fn fake_udp(
    handler: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            seen.fetch_add(1, Ordering::SeqCst);
            for datagram in handler(&buf[..n]) {
                socket.send_to(&datagram, peer).unwrap();
            }
        }
    });
    (addr, count)
}

fn resolver(servers: &[SocketAddr], millis: u64) -> SrvResolver {
    SrvResolver::with_nameservers(servers.to_vec(), Duration::from_millis(millis))
}

fn record(target: &str, port: u16, priority: u16, weight: u16, ttl: u32) -> SrvRecord {
    SrvRecord {
        target: target.into(),
        port,
        priority,
        weight,
        ttl,
    }
}

#[test]
fn two_records_ordered_by_priority() {
    let (server, count) = fake_udp(|query| {
        // The query: recursion desired, one question for SRV/IN, EDNS announced.
        assert_eq!(u16_at(query, 2), Some(0x0100));
        assert_eq!(u16_at(query, 4), Some(1));
        assert_eq!(u16_at(query, 10), Some(1));
        assert!(query[HEADER..HEADER + 30].eq_ignore_ascii_case(&wire_name(NAME)));
        vec![two_records(query)]
    });
    let records = resolver(&[server], 2000).lookup(NAME).unwrap();
    assert_eq!(
        records,
        vec![
            record("fast.example.org", 443, 10, 0, 3600),
            record("slow.example.org", 8448, 20, 5, 300),
        ]
    );
    // A trailing dot and other letter case name the same thing.
    let records = resolver(&[server], 2000)
        .lookup("_matrix-fed._tcp.EXAMPLE.org.")
        .unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn nxdomain_and_empty_answers_are_no_records() {
    let (server, _) = fake_udp(|query| vec![reply(query, RCODE_NXDOMAIN, 0)]);
    assert_eq!(resolver(&[server], 2000).lookup(NAME).unwrap(), vec![]);
    let (server, _) = fake_udp(|query| vec![reply(query, 0, 0)]);
    assert_eq!(resolver(&[server], 2000).lookup(NAME).unwrap(), vec![]);
}

#[test]
fn dot_target_means_no_service() {
    let (server, _) = fake_udp(|query| {
        let mut msg = reply(query, 0, 0);
        answer(
            &mut msg,
            &pointer(12),
            TYPE_SRV,
            60,
            &srv_rdata(0, 0, 0, &[0]),
        );
        vec![msg]
    });
    assert_eq!(resolver(&[server], 2000).lookup(NAME).unwrap(), vec![]);
}

#[test]
fn servfail_and_refused_are_errors() {
    for rcode in [2, 5] {
        let (server, _) = fake_udp(move |query| vec![reply(query, rcode, 0)]);
        match resolver(&[server], 2000).lookup(NAME) {
            Err(SrvError::Server { name, rcode: got }) => {
                assert_eq!((name.as_str(), got), (NAME, rcode));
            }
            other => panic!("{other:?}"),
        }
    }
    let (server, _) = fake_udp(|query| vec![reply(query, 2, 0)]);
    let text = resolver(&[server], 2000)
        .lookup(NAME)
        .unwrap_err()
        .to_string();
    assert!(text.contains("SERVFAIL") && text.contains(NAME), "{text}");
}

#[test]
fn next_nameserver_gets_its_turn() {
    let (failing, _) = fake_udp(|query| vec![reply(query, 2, 0)]);
    let (silent, _) = fake_udp(|_| vec![]);
    let (good, _) = fake_udp(|query| vec![two_records(query)]);
    let records = resolver(&[failing, silent, good], 3000)
        .lookup(NAME)
        .unwrap();
    assert_eq!(records.len(), 2);
}

#[test]
fn formerr_retries_without_edns() {
    let (server, count) = fake_udp(|query| {
        if u16_at(query, 10) == Some(1) {
            vec![reply(query, RCODE_FORMERR, 0)]
        } else {
            vec![two_records(query)]
        }
    });
    assert_eq!(resolver(&[server], 2000).lookup(NAME).unwrap().len(), 2);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn truncated_udp_answer_is_fetched_over_tcp() {
    // UDP and TCP on the same port number, as on a real nameserver.
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()) {
            break (udp, tcp);
        }
    };
    let server = udp.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let mut partial = reply(&buf[..n], 0, 0x0200);
            // A truncated answer may carry part of the records: they must be dropped.
            let mut target = b"\x07partial".to_vec();
            target.extend(pointer(EXAMPLE_ORG_AT));
            answer(
                &mut partial,
                &pointer(12),
                TYPE_SRV,
                5,
                &srv_rdata(1, 1, 1, &target),
            );
            udp.send_to(&partial, peer).unwrap();
        }
    });
    thread::spawn(move || {
        let (mut stream, _) = tcp.accept().unwrap();
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).unwrap();
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut query).unwrap();
        let full = two_records(&query);
        stream
            .write_all(&(full.len() as u16).to_be_bytes())
            .unwrap();
        // Dribble the answer out in two writes.
        stream.write_all(&full[..20]).unwrap();
        thread::sleep(Duration::from_millis(20));
        stream.write_all(&full[20..]).unwrap();
    });
    let records = resolver(&[server], 3000).lookup(NAME).unwrap();
    assert_eq!(
        records,
        vec![
            record("fast.example.org", 443, 10, 0, 3600),
            record("slow.example.org", 8448, 20, 5, 300),
        ]
    );
}

#[test]
fn answers_to_other_queries_are_ignored() {
    let wrong_id = |query: &[u8]| {
        let mut msg = two_records(query);
        msg[1] = msg[1].wrapping_add(1);
        msg
    };
    let (server, _) = fake_udp(move |query| vec![wrong_id(query)]);
    let started = Instant::now();
    match resolver(&[server], 400).lookup(NAME) {
        Err(SrvError::Timeout { name }) => assert_eq!(name, NAME),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(390));
    assert!(started.elapsed() < Duration::from_secs(3));

    // A spoofed answer first, then the real one: the real one wins.
    let (server, _) = fake_udp(move |query| {
        let mut other_question = two_records(query);
        other_question[HEADER + 1] = b'X';
        vec![wrong_id(query), other_question, two_records(query)]
    });
    assert_eq!(resolver(&[server], 2000).lookup(NAME).unwrap().len(), 2);
}

#[test]
fn malformed_answers_are_errors() {
    type Damage = fn(&[u8]) -> Vec<u8>;
    let cases: Vec<(&str, Damage)> = vec![
        ("pointer loop in the owner", |query| {
            let mut msg = reply(query, 0, 0);
            let at = msg.len() as u16;
            answer(
                &mut msg,
                &pointer(at),
                TYPE_SRV,
                60,
                &srv_rdata(0, 0, 1, &[0]),
            );
            msg
        }),
        ("pointer loop in the target", |query| {
            let mut msg = reply(query, 0, 0);
            // The target's first label, then a pointer back to that label.
            let target_at = msg.len() as u16 + 2 + 10 + 6;
            let mut target = b"\x01a".to_vec();
            target.extend(pointer(target_at));
            answer(
                &mut msg,
                &pointer(12),
                TYPE_SRV,
                60,
                &srv_rdata(0, 0, 1, &target),
            );
            msg
        }),
        ("pointer past the end", |query| {
            let mut msg = reply(query, 0, 0);
            answer(
                &mut msg,
                &pointer(0x3fff),
                TYPE_SRV,
                60,
                &srv_rdata(0, 0, 1, &[0]),
            );
            msg
        }),
        ("truncated record", |query| {
            let mut msg = two_records(query);
            msg.truncate(msg.len() - 30);
            msg
        }),
        ("answer count too high", |query| {
            let mut msg = two_records(query);
            msg[7] += 1;
            msg
        }),
        ("rdata shorter than the target", |query| {
            let mut msg = reply(query, 0, 0);
            let mut rdata = srv_rdata(0, 0, 1, b"\x04host\x00");
            rdata.truncate(8);
            answer(&mut msg, &pointer(12), TYPE_SRV, 60, &rdata);
            msg
        }),
        ("label type 0x40", |query| {
            let mut msg = reply(query, 0, 0);
            answer(
                &mut msg,
                &pointer(12),
                TYPE_SRV,
                60,
                &srv_rdata(0, 0, 1, &[0x41, 0]),
            );
            msg
        }),
    ];
    for (what, make) in cases {
        let (server, _) = fake_udp(move |query| vec![make(query)]);
        match resolver(&[server], 2000).lookup(NAME) {
            Err(SrvError::Malformed { .. }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn parser_survives_any_damage() {
    let question = Question::new(NAME).unwrap();
    let query = build_query(0x1234, &question, true);
    let full = two_records(&query);
    let mut rng = Rng(7);
    let mut damaged = Vec::new();
    for cut in 0..full.len() {
        damaged.push(full[..cut].to_vec());
    }
    for _ in 0..5000 {
        let mut msg = full.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(msg.len() as u64) as usize;
            msg[at] = rng.next() as u8;
        }
        damaged.push(msg);
    }
    for msg in damaged {
        if let Some(response) = match_response(&msg, 0x1234, &question) {
            let _ = parse_answers(&response, &question);
        }
    }
}

#[test]
fn read_name_limits() {
    // 64-byte label: its length byte has the 0x40 bit set.
    let mut long_label = vec![64u8];
    long_label.extend([b'a'; 64]);
    long_label.push(0);
    assert!(read_name(&long_label, 0).is_err());
    // 63-byte labels are fine, but five of them exceed 255 bytes.
    let mut label = vec![63u8];
    label.extend([b'a'; 63]);
    let four: Vec<u8> = label.repeat(3).into_iter().chain([0]).collect();
    assert_eq!(read_name(&four, 0).unwrap().0.len(), 3);
    let five: Vec<u8> = label.repeat(5).into_iter().chain([0]).collect();
    assert_eq!(read_name(&five, 0), Err("name longer than 255 bytes"));
    // A pointer to itself.
    assert_eq!(read_name(&[0xc0, 0], 0), Err("compression pointer loop"));
    // Pointers are followed and the name ends after the first one.
    let msg = [3, b'o', b'r', b'g', 0, 3, b'f', b'o', b'o', 0xc0, 0];
    let (labels, next) = read_name(&msg, 5).unwrap();
    assert_eq!(labels, vec![b"foo".to_vec(), b"org".to_vec()]);
    assert_eq!(next, 11);
}

#[test]
fn invalid_names_are_refused_before_asking() {
    let resolver = resolver(&[], 100);
    let long_label = format!("_x._tcp.{}.org", "a".repeat(64));
    let long_name = format!("_x._tcp.{}", vec!["a".repeat(60); 5].join("."));
    for name in [
        "",
        ".",
        "a..b",
        "ex ample.org",
        "é.org",
        &long_label,
        &long_name,
    ] {
        assert!(
            matches!(resolver.lookup(name), Err(SrvError::InvalidName { .. })),
            "{name:?}"
        );
    }
    assert!(matches!(resolver.lookup(NAME), Err(SrvError::NoNameserver)));
    let longest = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
    assert!(Question::new(&longest).is_ok());
    assert!(Question::new(&format!("{longest}a")).is_err());
}

#[test]
fn weighted_order_within_a_priority() {
    let records = vec![
        record("light", 1, 5, 10, 0),
        record("heavy", 1, 5, 90, 0),
        record("backup", 1, 9, 100, 0),
        record("zero", 1, 5, 0, 0),
        record("first", 1, 1, 0, 0),
    ];
    let mut rng = Rng(42);
    let mut heavy_first = 0;
    for _ in 0..2000 {
        let ordered = order(records.clone(), |n| rng.below(n));
        let names: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names[0], "first");
        assert_eq!(names[4], "backup");
        if names[1] == "heavy" {
            heavy_first += 1;
        }
    }
    // Weight 90 of 100 (the weight-0 record is drawn only when the draw is 0).
    assert!((1650..1950).contains(&heavy_first), "{heavy_first}");
}

#[test]
fn resolv_conf_is_parsed() {
    let text = "\
# generated
search example.org
nameserver 192.0.2.53
nameserver   2001:db8::53   # trailing comment
;nameserver 198.51.100.1
# nameserver 198.51.100.2
nameserver fe80::1%3
nameserver fe80::2%eth0
nameserver not-an-address
nameserver
options timeout:2 attempts:3
nameserver 192.0.2.53
nameserver\t203.0.113.5
";
    assert_eq!(
        parse_resolv_conf(text),
        vec![
            "192.0.2.53:53".parse().unwrap(),
            "[2001:db8::53]:53".parse().unwrap(),
            SocketAddr::V6(std::net::SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                53,
                0,
                3
            )),
            "203.0.113.5:53".parse().unwrap(),
        ]
    );
    assert!(parse_resolv_conf("").is_empty());
    // Reading the system file never panics (and sends nothing).
    let _ = SrvResolver::from_system(Duration::from_secs(1));
}

#[test]
fn query_ids_are_random() {
    let question = Question::new(NAME).unwrap();
    let ids: std::collections::HashSet<u16> =
        (0..64).map(|_| query_id(&question).unwrap()).collect();
    // 64 draws of 16 bits: a handful of repeats at most, never a sequence stuck on one value.
    assert!(ids.len() > 56, "{ids:?}");
}
