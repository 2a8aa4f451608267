//! An SMTP sink for tests: a server on 127.0.0.1 port 0 that records every message it accepts.
//!
//! One thread per connection; each connection behaves as the sink's [`Behaviour`] said when it
//! was accepted. Optional TLS ([`SinkTls`]) uses rustls with the fixed self-signed certificate for
//! `localhost` and `127.0.0.1` from [`super::tls`], so clients must accept invalid certificates
//! or trust that one.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::tls;

/// One accepted message.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// MAIL FROM, without the angle brackets.
    pub from: String,
    /// Every accepted RCPT TO, without the angle brackets.
    pub to: Vec<String>,
    /// The DATA as received: CRLF line endings, dot-unstuffed, without the final ".\r\n".
    pub data: String,
    /// AUTH PLAIN or AUTH LOGIN credentials given in the session.
    pub auth: Option<(String, String)>,
    /// Whether the session was encrypted when the message arrived.
    pub tls: bool,
}

/// How the sink answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept everything.
    Accept,
    /// 550 on RCPT TO.
    RejectRecipient,
    /// 554 after the DATA.
    FailData,
    /// Accept the TCP connection, never send a greeting.
    Silent,
}

/// TLS offered by the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain text only, STARTTLS not offered.
    Plain,
    /// STARTTLS offered in EHLO.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// A running sink. The listener thread lives until the test process ends.
pub struct SmtpSink {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Condvar,
    behaviour: Mutex<Behaviour>,
    /// Messages still to refuse after their DATA (554), whatever the behaviour.
    fail_next: Mutex<usize>,
    tls: SinkTls,
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

impl SmtpSink {
    /// A plain-text sink that accepts everything.
    pub fn start() -> SmtpSink {
        SmtpSink::spawn(Behaviour::Accept, SinkTls::Plain)
    }

    /// A plain-text sink with the given behaviour.
    pub fn start_with(behaviour: Behaviour) -> SmtpSink {
        SmtpSink::spawn(behaviour, SinkTls::Plain)
    }

    /// A sink that accepts everything, with the given TLS.
    pub fn start_tls(tls: SinkTls) -> SmtpSink {
        SmtpSink::spawn(Behaviour::Accept, tls)
    }

    fn spawn(behaviour: Behaviour, tls: SinkTls) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mails: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            behaviour: Mutex::new(behaviour),
            fail_next: Mutex::new(0),
            tls,
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = session(stream, &s);
                });
            }
        });
        SmtpSink { port, shared }
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The messages accepted so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed; returns what arrived.
    pub fn wait_for_mails(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        let mut mails = self.shared.mails.lock().unwrap();
        while mails.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            mails = self.shared.arrived.wait_timeout(mails, left).unwrap().0;
        }
        mails.clone()
    }

    /// Refuses the next `n` messages with 554 after their DATA (on top of the behaviour);
    /// calls add up.
    pub fn fail_next(&self, n: usize) {
        *self.shared.fail_next.lock().unwrap() += n;
    }

    /// Changes the behaviour for connections accepted from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }
}

fn session(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let behaviour = *shared.behaviour.lock().unwrap();
    if behaviour == Behaviour::Silent {
        // Hold the connection open, say nothing, until the client gives up.
        return io::copy(&mut &stream, &mut io::sink()).map(|_| ());
    }
    let mut tls = shared.tls == SinkTls::Implicit;
    let conn: Box<dyn Conn> = if tls {
        wrap_tls(Box::new(stream))?
    } else {
        Box::new(stream)
    };
    let mut r = BufReader::new(conn);
    send(&mut r, "220 sink ESMTP ready")?;
    let (mut from, mut to, mut auth) = (String::new(), Vec::new(), None);
    while let Some(line) = read_line(&mut r)? {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let arg = line.get(verb.len()..).unwrap_or("").trim();
        match verb.as_str() {
            "EHLO" => {
                let starttls = shared.tls == SinkTls::StartTls && !tls;
                let extra = if starttls { "250-STARTTLS\r\n" } else { "" };
                let reply = format!(
                    "250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n{extra}250 AUTH PLAIN LOGIN"
                );
                send(&mut r, &reply)?;
            }
            "HELO" => send(&mut r, "250 sink")?,
            "STARTTLS" if shared.tls == SinkTls::StartTls && !tls => {
                send(&mut r, "220 go ahead")?;
                assert!(r.buffer().is_empty(), "client pipelined after STARTTLS");
                r = BufReader::new(wrap_tls(r.into_inner())?);
                tls = true;
                (from, to, auth) = (String::new(), Vec::new(), None);
            }
            "AUTH" => {
                let mut words = arg.split_whitespace();
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                let creds = match mechanism.as_str() {
                    "PLAIN" => {
                        let token = match initial {
                            Some(t) => t,
                            None => challenge(&mut r, "")?,
                        };
                        let decoded = base64_decode(&token);
                        let mut parts = decoded.split('\0').skip(1);
                        let user = parts.next().unwrap_or("").to_string();
                        (user, parts.next().unwrap_or("").to_string())
                    }
                    "LOGIN" => {
                        let user = base64_decode(&challenge(&mut r, "VXNlcm5hbWU6")?);
                        (user, base64_decode(&challenge(&mut r, "UGFzc3dvcmQ6")?))
                    }
                    _ => {
                        send(&mut r, "504 5.5.4 unknown mechanism")?;
                        continue;
                    }
                };
                auth = Some(creds);
                send(&mut r, "235 2.7.0 authenticated")?;
            }
            "MAIL" => {
                from = address(arg);
                to.clear();
                send(&mut r, "250 2.1.0 ok")?;
            }
            "RCPT" if behaviour == Behaviour::RejectRecipient => {
                send(&mut r, "550 5.1.1 no such user here")?
            }
            "RCPT" => {
                to.push(address(arg));
                send(&mut r, "250 2.1.5 ok")?;
            }
            "DATA" => {
                send(&mut r, "354 end with <CRLF>.<CRLF>")?;
                let mut data = String::new();
                while let Some(line) = read_line(&mut r)? {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                let refuse_this = {
                    let mut left = shared.fail_next.lock().unwrap();
                    let refuse = *left > 0;
                    *left = left.saturating_sub(1);
                    refuse
                };
                if behaviour == Behaviour::FailData || refuse_this {
                    send(&mut r, "554 5.6.0 message refused")?;
                    continue;
                }
                let mail = ReceivedMail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    auth: auth.clone(),
                    tls,
                };
                shared.mails.lock().unwrap().push(mail);
                shared.arrived.notify_all();
                send(&mut r, "250 2.0.0 queued")?;
            }
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                send(&mut r, "250 2.0.0 ok")?;
            }
            "NOOP" => send(&mut r, "250 2.0.0 ok")?,
            "QUIT" => return send(&mut r, "221 2.0.0 bye"),
            _ => send(&mut r, "502 5.5.2 command not recognized")?,
        }
    }
    Ok(())
}

/// A line without its CRLF; None at end of stream.
fn read_line(r: &mut BufReader<Box<dyn Conn>>) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if r.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(String::from_utf8_lossy(line).into_owned()))
}

fn send(r: &mut BufReader<Box<dyn Conn>>, reply: &str) -> io::Result<()> {
    let w = r.get_mut();
    w.write_all(format!("{reply}\r\n").as_bytes())?;
    w.flush()
}

/// Sends a 334 challenge, returns the client's answer.
fn challenge(r: &mut BufReader<Box<dyn Conn>>, text: &str) -> io::Result<String> {
    send(r, &format!("334 {text}"))?;
    Ok(read_line(r)?.unwrap_or_default())
}

/// `FROM:<a@b> SIZE=1` -> `a@b`.
fn address(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.find('>').unwrap_or(arg.len());
    arg.get(start..end).unwrap_or("").to_string()
}

fn base64_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes().take_while(|&c| c != b'=') {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Server side of TLS with the shared fixed certificate ([`super::tls`]).
fn wrap_tls(inner: Box<dyn Conn>) -> io::Result<Box<dyn Conn>> {
    let conn = rustls::ServerConnection::new(tls::server_config()).map_err(io::Error::other)?;
    Ok(Box::new(rustls::StreamOwned::new(conn, inner)))
}
