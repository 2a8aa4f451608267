//! A stand-in DNS server for SRV lookups: UDP on 127.0.0.1 port 0, answering each query from
//! the SRV records given to [`FakeDns::add_srv`] (NXDOMAIN for names without records), and
//! recording the names it was asked about.
//!
//! Answers echo the question (without the EDNS OPT record), have the authoritative and
//! recursion-available bits set and one SRV record per entry, the owner name compressed to a
//! pointer at the question.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

const HEADER: usize = 12;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// One SRV record: (target, port, priority, weight).
type Record = (String, u16, u16, u16);

#[derive(Default)]
struct State {
    /// Lower-case name without trailing dot -> records.
    records: HashMap<String, Vec<Record>>,
    /// Every question name received, in order.
    queries: Vec<String>,
}

/// A running stand-in DNS server; stops when dropped.
pub struct FakeDns {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Starts the server on 127.0.0.1 port 0.
    pub fn start() -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the fake DNS server");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || serve(socket, s, st));
        FakeDns {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// The address to use as the nameserver.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds an SRV record for `name` (e.g. `_matrix-identity._tcp.remote.test`).
    pub fn add_srv(&self, name: &str, target: &str, port: u16, priority: u16, weight: u16) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.lock().records.entry(name).or_default().push((
            target.to_string(),
            port,
            priority,
            weight,
        ));
    }

    /// Every question name received so far (lower case, no trailing dot).
    pub fn queries(&self) -> Vec<String> {
        self.lock().queries.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: UdpSocket, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some((name, question_end)) = question(&buf[..n]) else {
            continue;
        };
        let records = {
            let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
            st.queries.push(name.clone());
            st.records.get(&name).cloned().unwrap_or_default()
        };
        let answer = build_answer(&buf[..n], question_end, &records);
        let _ = socket.send_to(&answer, peer);
    }
}

/// The question name of a query (lower case, dotted) and where its question section ends.
fn question(query: &[u8]) -> Option<(String, usize)> {
    let mut at = HEADER;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        let label = query.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    let end = at + 1 + 4;
    (end <= query.len()).then(|| (labels.join("."), end))
}

fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

fn build_answer(query: &[u8], question_end: usize, records: &[Record]) -> Vec<u8> {
    let rcode: u16 = if records.is_empty() { 3 } else { 0 };
    let mut msg = query[..2].to_vec();
    msg.extend_from_slice(&(0x8580 | rcode).to_be_bytes());
    msg.extend_from_slice(&1u16.to_be_bytes());
    msg.extend_from_slice(&(records.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    msg.extend_from_slice(&query[HEADER..question_end]);
    for (target, port, priority, weight) in records {
        let mut rdata = Vec::new();
        for v in [*priority, *weight, *port] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        rdata.extend_from_slice(&wire_name(target));
        msg.extend_from_slice(&[0xc0, HEADER as u8]);
        msg.extend_from_slice(&TYPE_SRV.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        msg.extend_from_slice(&300u32.to_be_bytes());
        msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        msg.extend_from_slice(&rdata);
    }
    msg
}
