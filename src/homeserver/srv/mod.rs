//! DNS SRV lookups (`_matrix-fed._tcp.example.org`) over UDP, with TCP when the answer is
//! truncated, speaking the DNS wire format (RFC 1035) directly.
//!
//! The resolver sends one recursive query for type SRV to each configured nameserver in turn
//! until one answers, all within one overall timeout. It accepts only an answer whose id and
//! question match the query, from the nameserver's address (a connected UDP socket), and
//! parses it defensively: compression pointers are followed at most 127 times per name,
//! labels longer than 63 bytes and names longer than 255 bytes are refused, and any
//! inconsistency is an error, never a panic.
//!
//! It follows no CNAMEs (SRV owner names and targets must not be aliases, RFC 2782) and
//! ignores answer records of other types or names. The records come back ordered as RFC 2782
//! prescribes: by priority, and by a weighted random draw within a priority.
//!
//! The targets are names, not addresses: resolve them through the address guard
//! (`crate::homeserver::guard`) before dialing.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::config::OutboundConfig;

mod answer;
mod error;
mod resolv_conf;

#[doc(hidden)]
pub use answer::read_answer;
use answer::records;
pub use error::SrvError;
pub(crate) use resolv_conf::parse_resolv_conf;

/// How many compression pointers one name may follow before it counts as a loop.
const MAX_POINTERS: usize = 127;

const TYPE_SRV: u16 = 33;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// The UDP payload size announced with EDNS(0): the DNS flag day 2020 value.
const EDNS_PAYLOAD: u16 = 1232;
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
const HEADER: usize = 12;

const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;

/// One SRV record: where and how preferably a service is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// The host offering the service, without the trailing dot (`matrix.example.org`).
    pub target: String,
    /// The port the service listens on.
    pub port: u16,
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among the records of one priority.
    pub weight: u16,
    /// Seconds the record may be cached (values above 2^31 - 1 read as 0, RFC 2181).
    pub ttl: u32,
}

/// Looks up SRV records with the nameservers it was given.
#[derive(Debug, Clone)]
pub struct SrvResolver {
    nameservers: Vec<SocketAddr>,
    timeout: Duration,
}

impl SrvResolver {
    /// A resolver using the nameservers from /etc/resolv.conf ("nameserver" lines, IPv4 and
    /// IPv6, port 53), read now. `timeout` bounds each whole lookup. When the file is missing
    /// or names no nameserver, every lookup fails with [`SrvError::NoNameserver`].
    pub fn from_system(timeout: Duration) -> SrvResolver {
        let nameservers = match std::fs::read_to_string("/etc/resolv.conf") {
            Ok(text) => parse_resolv_conf(&text),
            Err(e) => {
                log::warn!("cannot read /etc/resolv.conf, SRV lookups will fail: {e}");
                Vec::new()
            }
        };
        SrvResolver::with_nameservers(nameservers, timeout)
    }

    /// The resolver `outbound.*` configures: `outbound.nameservers` when the list is not
    /// empty (validated as `ip:port` at load), else those of /etc/resolv.conf
    /// ([`SrvResolver::from_system`]); each lookup is bounded by `outbound.timeout`, at most
    /// 5 seconds.
    pub fn from_outbound(config: &OutboundConfig) -> SrvResolver {
        let timeout = Duration::from_secs(config.timeout.min(5));
        if config.nameservers.is_empty() {
            SrvResolver::from_system(timeout)
        } else {
            let servers = config
                .nameservers
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect();
            SrvResolver::with_nameservers(servers, timeout)
        }
    }

    /// A resolver asking `nameservers`, in this order; `timeout` bounds each whole lookup.
    pub fn with_nameservers(nameservers: Vec<SocketAddr>, timeout: Duration) -> SrvResolver {
        SrvResolver {
            nameservers,
            timeout,
        }
    }

    /// Looks up the SRV records of `name` (e.g. `_matrix-fed._tcp.example.org`; a trailing
    /// dot is allowed; internationalised names must come punycoded).
    ///
    /// NXDOMAIN, or an answer without SRV records for `name`, gives `Ok(empty)`; so do
    /// records whose target is "." (the service is explicitly not available). Otherwise the
    /// records come ordered by priority, then weighted-random within a priority (RFC 2782).
    ///
    /// Each nameserver is tried in turn, each with an equal share of what is left of the
    /// timeout, until one gives a usable answer; a nameserver that times out, fails (SERVFAIL,
    /// REFUSED, ...) or answers garbage passes the turn. When none answers, the error is the
    /// last one met.
    pub fn lookup(&self, name: &str) -> Result<Vec<SrvRecord>, SrvError> {
        let question = Question::new(name)?;
        if self.nameservers.is_empty() {
            return Err(SrvError::NoNameserver);
        }
        let deadline = Instant::now() + self.timeout;
        let mut last_error = None;
        for (i, server) in self.nameservers.iter().enumerate() {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                break;
            }
            let turns = u32::try_from(self.nameservers.len() - i).unwrap_or(u32::MAX);
            let until = now + left / turns;
            match ask(*server, &question, until) {
                Ok(records) => return Ok(order(records, random_below)),
                Err(e) => {
                    log::debug!("SRV lookup at {server}: {e}");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| SrvError::Timeout {
            name: question.display.clone(),
        }))
    }
}

/// The question of a query: the name in wire form and as labels to compare answers with.
struct Question {
    display: String,
    wire: Vec<u8>,
    labels: Vec<Vec<u8>>,
}

impl Question {
    fn new(name: &str) -> Result<Question, SrvError> {
        let invalid = |reason: &str| SrvError::InvalidName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let bare = name.strip_suffix('.').unwrap_or(name);
        if bare.is_empty() {
            return Err(invalid("empty name"));
        }
        let mut wire = Vec::with_capacity(bare.len() + 2);
        let mut labels = Vec::new();
        for label in bare.split('.') {
            if label.is_empty() {
                return Err(invalid("empty label"));
            }
            if label.len() > MAX_LABEL {
                return Err(invalid("label longer than 63 bytes"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(
                    "only ASCII letters, digits, '-' and '_' are allowed (punycode first)",
                ));
            }
            // The length fits: it is at most 63.
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
            labels.push(label.as_bytes().to_vec());
        }
        wire.push(0);
        if wire.len() > MAX_NAME {
            return Err(invalid("name longer than 255 bytes"));
        }
        Ok(Question {
            display: bare.to_owned(),
            wire,
            labels,
        })
    }

    fn error(&self, reason: impl Into<String>) -> SrvError {
        SrvError::Malformed {
            name: self.display.clone(),
            reason: reason.into(),
        }
    }

    fn io_error(&self, error: io::Error) -> SrvError {
        match error.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => self.timeout(),
            _ => SrvError::Io {
                name: self.display.clone(),
                error,
            },
        }
    }

    fn timeout(&self) -> SrvError {
        SrvError::Timeout {
            name: self.display.clone(),
        }
    }

    fn is(&self, labels: &[Vec<u8>]) -> bool {
        labels.len() == self.labels.len()
            && labels
                .iter()
                .zip(&self.labels)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

/// Asks one nameserver; `Ok` is the (unordered) SRV records, empty for NXDOMAIN.
fn ask(
    server: SocketAddr,
    question: &Question,
    until: Instant,
) -> Result<Vec<SrvRecord>, SrvError> {
    let mut edns = true;
    loop {
        let id = query_id(question)?;
        let query = build_query(id, question, edns);
        let mut response = udp_exchange(server, &query, id, question, until)?;
        if response.truncated {
            log::debug!(
                "SRV answer for {} truncated, asking over TCP",
                question.display
            );
            response = tcp_exchange(server, &query, id, question, until)?;
        }
        match response.rcode {
            // Some old servers reject the EDNS OPT record: ask once more without it.
            RCODE_FORMERR if edns => edns = false,
            _ => return records(&response, question),
        }
    }
}

fn build_query(id: u16, question: &Question, edns: bool) -> Vec<u8> {
    let mut query = Vec::with_capacity(HEADER + question.wire.len() + 4 + 11);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&0x0100_u16.to_be_bytes()); // standard query, recursion desired
    query.extend_from_slice(&1_u16.to_be_bytes()); // one question
    query.extend_from_slice(&0_u16.to_be_bytes()); // no answers
    query.extend_from_slice(&0_u16.to_be_bytes()); // no authority records
    query.extend_from_slice(&u16::from(edns).to_be_bytes()); // the OPT record, if any
    query.extend_from_slice(&question.wire);
    query.extend_from_slice(&TYPE_SRV.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    if edns {
        query.push(0); // root name
        query.extend_from_slice(&TYPE_OPT.to_be_bytes());
        query.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        query.extend_from_slice(&0_u32.to_be_bytes()); // extended rcode, version 0, no flags
        query.extend_from_slice(&0_u16.to_be_bytes()); // no options
    }
    query
}

/// A response whose header and question match the query.
struct Response {
    message: Vec<u8>,
    rcode: u8,
    truncated: bool,
    /// Where the answer section starts.
    answers_at: usize,
}

fn u16_at(message: &[u8], at: usize) -> Option<u16> {
    let bytes = message.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn u32_at(message: &[u8], at: usize) -> Option<u32> {
    let bytes = message.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The response, when `message` answers query `id` for `question`; `None` for anything else
/// (another query's answer, a spoofing attempt, a packet too damaged to tell).
fn match_response(message: &[u8], id: u16, question: &Question) -> Option<Response> {
    let flags = u16_at(message, 2)?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if u16_at(message, 0)? != id || !is_response || opcode != 0 || u16_at(message, 4)? != 1 {
        return None;
    }
    let (labels, next) = read_name(message, HEADER).ok()?;
    if !question.is(&labels)
        || u16_at(message, next)? != TYPE_SRV
        || u16_at(message, next + 2)? != CLASS_IN
    {
        return None;
    }
    Some(Response {
        message: message.to_vec(),
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        answers_at: next + 4,
    })
}

/// Time left until `until`; `None` once it has passed.
fn left(until: Instant) -> Option<Duration> {
    Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
}

fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
    until: Instant,
) -> Result<Response, SrvError> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let io = |e| question.io_error(e);
    let socket = UdpSocket::bind(local).map_err(io)?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).map_err(io)?;
    socket.send(query).map_err(io)?;
    // Send once more halfway through, in case a datagram got lost.
    let started = Instant::now();
    let mut resend_at = Some(started + until.saturating_duration_since(started) / 2);
    let mut buf = vec![0u8; 65535];
    loop {
        let wait = match resend_at {
            Some(at) => match left(at) {
                Some(wait) => wait,
                None => {
                    socket.send(query).map_err(io)?;
                    resend_at = None;
                    continue;
                }
            },
            None => left(until).ok_or_else(|| question.timeout())?,
        };
        socket.set_read_timeout(Some(wait)).map_err(io)?;
        match socket.recv(&mut buf) {
            Ok(n) => match match_response(&buf[..n], id, question) {
                Some(response) => return Ok(response),
                None => {
                    log::debug!("SRV lookup: ignoring a datagram that does not match the query")
                }
            },
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(io(e)),
        }
    }
}

fn tcp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    question: &Question,
    until: Instant,
) -> Result<Response, SrvError> {
    let io = |e| question.io_error(e);
    let wait = left(until).ok_or_else(|| question.timeout())?;
    let mut stream = TcpStream::connect_timeout(&server, wait).map_err(io)?;
    let length = u16::try_from(query.len()).map_err(|_| question.error("query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);
    let wait = left(until).ok_or_else(|| question.timeout())?;
    stream.set_write_timeout(Some(wait)).map_err(io)?;
    stream.write_all(&framed).map_err(io)?;

    let mut length = [0u8; 2];
    read_before(&mut stream, &mut length, until).map_err(io)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_before(&mut stream, &mut message, until).map_err(io)?;
    let response = match_response(&message, id, question)
        .ok_or_else(|| question.error("the answer over TCP does not match the query"))?;
    if response.truncated {
        return Err(question.error("the answer over TCP is truncated"));
    }
    Ok(response)
}

/// Fills `buf`, failing with `TimedOut` once `until` passes, however slowly the peer drips.
fn read_before(stream: &mut TcpStream, buf: &mut [u8], until: Instant) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let wait = left(until).ok_or(io::ErrorKind::TimedOut)?;
        stream.set_read_timeout(Some(wait))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads the (possibly compressed) name at `start`: its labels, and where the bytes after
/// it start.
fn read_name(message: &[u8], start: usize) -> Result<(Vec<Vec<u8>>, usize), &'static str> {
    let mut labels = Vec::new();
    let mut at = start;
    let mut after = None;
    let mut length = 1; // the root label
    let mut pointers = 0;
    loop {
        let byte = *message.get(at).ok_or("name runs past the end")?;
        match byte & 0xc0 {
            0xc0 => {
                let low = *message.get(at + 1).ok_or("name runs past the end")?;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err("compression pointer loop");
                }
                after.get_or_insert(at + 2);
                at = usize::from(byte & 0x3f) << 8 | usize::from(low);
            }
            0x00 if byte == 0 => return Ok((labels, after.unwrap_or(at + 1))),
            0x00 => {
                let len = usize::from(byte);
                let label = message
                    .get(at + 1..at + 1 + len)
                    .ok_or("name runs past the end")?;
                length += len + 1;
                if length > MAX_NAME {
                    return Err("name longer than 255 bytes");
                }
                labels.push(label.to_vec());
                at += 1 + len;
            }
            _ => return Err("label longer than 63 bytes (or of an unknown type)"),
        }
    }
}

/// A usable SRV target: a host name of letters, digits, `-` and `_`.
fn target_name(labels: &[Vec<u8>]) -> Option<String> {
    let ok = labels.iter().all(|label| {
        label
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !ok {
        return None;
    }
    let parts: Vec<&str> = labels
        .iter()
        .map(|label| std::str::from_utf8(label).ok())
        .collect::<Option<_>>()?;
    Some(parts.join("."))
}

/// The SRV records for the question in the answer section; everything else is skipped.
fn parse_answers(response: &Response, question: &Question) -> Result<Vec<SrvRecord>, SrvError> {
    let message = &response.message;
    let count = u16_at(message, 6).ok_or_else(|| question.error("short header"))?;
    let mut at = response.answers_at;
    let mut records = Vec::new();
    for _ in 0..count {
        let (owner, next) = read_name(message, at).map_err(|e| question.error(e))?;
        let (Some(rtype), Some(class), Some(ttl), Some(rdlength)) = (
            u16_at(message, next),
            u16_at(message, next + 2),
            u32_at(message, next + 4),
            u16_at(message, next + 8),
        ) else {
            return Err(question.error("answer record runs past the end"));
        };
        let rdata_at = next + 10;
        let rdata_end = rdata_at + usize::from(rdlength);
        if rdata_end > message.len() {
            return Err(question.error("answer record data runs past the end"));
        }
        at = rdata_end;
        if rtype != TYPE_SRV || class != CLASS_IN || !question.is(&owner) {
            continue;
        }
        if rdlength < 7 {
            return Err(question.error("SRV record too short"));
        }
        let field = |offset| u16_at(message, rdata_at + offset).unwrap_or(0);
        let (priority, weight, port) = (field(0), field(2), field(4));
        let (target, target_end) =
            read_name(message, rdata_at + 6).map_err(|e| question.error(e))?;
        if target_end != rdata_end {
            return Err(question.error("SRV record length does not match its content"));
        }
        if target.is_empty() {
            // "." : the service is decidedly not available at this domain.
            continue;
        }
        let Some(target) = target_name(&target) else {
            log::debug!(
                "SRV lookup of {}: skipping an unusable target",
                question.display
            );
            continue;
        };
        records.push(SrvRecord {
            target,
            port,
            priority,
            weight,
            ttl: if ttl > i32::MAX as u32 { 0 } else { ttl },
        });
    }
    Ok(records)
}

/// RFC 2782 order: ascending priority; within one priority a weighted random draw, repeated
/// over the records not drawn yet (weight-0 records are placed first, so they are drawn
/// only rarely while others remain).
/// `below(n)` draws a number in `0..n`.
fn order(mut records: Vec<SrvRecord>, mut below: impl FnMut(u64) -> u64) -> Vec<SrvRecord> {
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    for group in records.chunk_by(|a, b| a.priority == b.priority) {
        let mut pool = group.to_vec();
        pool.sort_by_key(|r| r.weight != 0);
        while !pool.is_empty() {
            let total: u64 = pool.iter().map(|r| u64::from(r.weight)).sum();
            let draw = below(total + 1);
            let mut running = 0;
            let mut pick = pool.len() - 1;
            for (i, r) in pool.iter().enumerate() {
                running += u64::from(r.weight);
                if running >= draw {
                    pick = i;
                    break;
                }
            }
            ordered.push(pool.remove(pick));
        }
    }
    ordered
}

/// A query id from the operating system's random source: an off-path attacker who could
/// guess it could forge answers.
fn query_id(question: &Question) -> Result<u16, SrvError> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| SrvError::Io {
        name: question.display.clone(),
        error: io::Error::other(format!("no randomness for a query id: {e}")),
    })?;
    Ok(u16::from_ne_bytes(id))
}

/// A number in `0..n` from the operating system's random source, for the weighted draws.
/// They need no secrecy: without randomness the draw is 0 (the first candidate).
fn random_below(n: u64) -> u64 {
    match getrandom::u64() {
        Ok(r) => r % n.max(1),
        Err(e) => {
            log::warn!("no randomness for an SRV weighted draw: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests;
