//! A blocking LDAPv3 connection: connect (plain, `ldaps://` or StartTLS), simple bind, paged
//! search, unbind. One operation at a time; every read and write has a deadline.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::ber;
use super::error::{LdapError, io_error};
use super::message::{
    self, Entry, LdapResult, NOTICE_OF_DISCONNECTION_OID, Response, SearchRequest,
};
use super::server::Server;

/// The largest response message accepted (a larger one is a Protocol error).
pub const MAX_MESSAGE: usize = 8 << 20;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// StartTLS on an `ldap://` server (an error if the server refuses; never continues in
    /// plain text). Ignored for `ldaps://`.
    pub start_tls: bool,
    /// The TLS configuration for `ldaps://` and StartTLS (see [`super::tls_config`]).
    pub tls: Arc<ClientConfig>,
    /// The connect timeout, per resolved address.
    pub connect_timeout: Duration,
    /// The limit of each read and write: a whole response message must arrive within it.
    pub timeout: Duration,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// An open connection to one LDAP server.
///
/// After an error other than a result from the server ([`LdapError::Server`],
/// [`LdapError::InvalidCredentials`], [`LdapError::EmptyPassword`]) the connection is closed
/// and every later operation fails: open a new one.
pub struct Connection {
    stream: Option<Stream>,
    /// Received bytes not yet consumed as messages.
    buffer: Vec<u8>,
    next_id: i32,
    timeout: Duration,
}

impl Connection {
    /// Connects to `server` (each resolved address in turn), then TLS for `ldaps://` or with
    /// `start_tls`.
    pub fn open(server: &Server, options: &ConnectOptions) -> Result<Connection, LdapError> {
        let shown = server.to_string();
        let connect_error = |error| LdapError::Connect {
            server: shown.clone(),
            error,
        };
        let addresses = (server.host.as_str(), server.port)
            .to_socket_addrs()
            .map_err(connect_error)?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address");
        let mut tcp = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, options.connect_timeout) {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(error) => last = error,
            }
        }
        let tcp = tcp.ok_or_else(|| connect_error(last))?;
        let _ = tcp.set_nodelay(true);
        let mut connection = Connection {
            stream: Some(Stream::Plain(tcp)),
            buffer: Vec::new(),
            next_id: 1,
            timeout: options.timeout,
        };
        if server.ldaps {
            connection.start_tls_handshake(server, &options.tls)?;
        } else if options.start_tls {
            let id = connection.next_id();
            connection.send(&message::start_tls_request(id))?;
            match connection.receive(id)? {
                Response::Extended(LdapResult { code: 0, .. }, _) => {}
                Response::Extended(result, _) => {
                    connection.abort();
                    return Err(LdapError::Tls(format!(
                        "the server refused StartTLS: {}",
                        LdapError::Server {
                            code: result.code,
                            message: result.message
                        }
                    )));
                }
                _ => return Err(connection.protocol("unexpected answer to StartTLS")),
            }
            if !connection.buffer.is_empty() {
                return Err(connection.protocol("data after the StartTLS response"));
            }
            connection.start_tls_handshake(server, &options.tls)?;
        }
        Ok(connection)
    }

    /// Simple bind as `dn` with `password`. Err(InvalidCredentials) for resultCode 49; an
    /// empty password with a non-empty DN is refused here with Err(EmptyPassword) (it would be
    /// an unauthenticated bind, which servers accept: RFC 4513 5.1.2).
    pub fn simple_bind(&mut self, dn: &str, password: &str) -> Result<(), LdapError> {
        if password.is_empty() && !dn.is_empty() {
            return Err(LdapError::EmptyPassword);
        }
        let id = self.next_id();
        self.send(&message::bind_request(id, dn, password))?;
        match self.receive(id)? {
            Response::Bind(LdapResult { code: 0, .. }) => Ok(()),
            Response::Bind(LdapResult { code: 49, .. }) => Err(LdapError::InvalidCredentials),
            Response::Bind(LdapResult { code, message }) => {
                Err(LdapError::Server { code, message })
            }
            _ => Err(self.protocol("unexpected answer to a bind")),
        }
    }

    /// Runs a search, calling `on_entry` for each entry as it arrives (search references are
    /// skipped). `page_size` > 0 uses the simple paged results control (RFC 2696,
    /// non-critical) and asks for pages until the server's cookie is empty; a server that
    /// ignores the control returns everything at once. A non-success result is
    /// Err(Server{..}) (the entries that came before it were passed to `on_entry` already:
    /// with sizeLimitExceeded, say, the ones within the limit). An error from `on_entry` stops the search and is returned; the
    /// connection is then closed (the rest of the answer is not read), so open a new one.
    pub fn search(
        &mut self,
        request: &SearchRequest<'_>,
        page_size: u32,
        on_entry: &mut dyn FnMut(Entry) -> Result<(), LdapError>,
    ) -> Result<(), LdapError> {
        let mut cookie: Vec<u8> = Vec::new();
        loop {
            let id = self.next_id();
            let paging = (page_size > 0).then_some((page_size, cookie.as_slice()));
            self.send(&message::search_request(id, request, paging))?;
            let mut entries_in_page = 0usize;
            let next = loop {
                match self.receive(id)? {
                    Response::Entry(entry) => {
                        entries_in_page += 1;
                        if let Err(error) = on_entry(entry) {
                            self.abort();
                            return Err(error);
                        }
                    }
                    Response::Reference | Response::Intermediate => {}
                    Response::Done(LdapResult { code: 0, .. }, next) => break next,
                    Response::Done(LdapResult { code, message }, _) => {
                        return Err(LdapError::Server { code, message });
                    }
                    _ => return Err(self.protocol("unexpected answer to a search")),
                }
            };
            match next {
                Some(next) if page_size > 0 && !next.is_empty() => {
                    if entries_in_page == 0 && next == cookie {
                        return Err(self.protocol("paged search: the same cookie and no entries"));
                    }
                    cookie = next;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Sends an unbind and closes the connection (errors ignored).
    pub fn close(mut self) {
        if self.stream.is_some() {
            let id = self.next_id();
            let _ = self.send(&message::unbind_request(id));
            if let Some(Stream::Tls(tls)) = self.stream.as_mut() {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
        self.abort();
    }

    fn next_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = if id == i32::MAX { 1 } else { id + 1 };
        id
    }

    /// Closes the socket; later operations fail.
    fn abort(&mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.tcp().shutdown(Shutdown::Both);
        }
        self.buffer.clear();
    }

    fn protocol(&mut self, message: &str) -> LdapError {
        self.abort();
        LdapError::Protocol(message.to_string())
    }

    fn stream(&mut self) -> Result<&mut Stream, LdapError> {
        self.stream.as_mut().ok_or_else(|| {
            LdapError::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the connection was closed after an earlier error",
            ))
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), LdapError> {
        let timeout = self.timeout.max(Duration::from_millis(1));
        let stream = self.stream()?;
        let result = stream
            .tcp()
            .set_write_timeout(Some(timeout))
            .and_then(|()| stream.write_all(bytes))
            .and_then(|()| stream.flush());
        result.map_err(|error| {
            self.abort();
            io_error(error)
        })
    }

    /// Reads the next message, which must have id `id` (or be a notice of disconnection).
    fn receive(&mut self, id: i32) -> Result<Response, LdapError> {
        let bytes = self.read_message()?;
        let (got, response) = match message::decode_response(&bytes) {
            Ok(decoded) => decoded,
            Err(error) => return Err(self.protocol(&error)),
        };
        if got == 0 {
            self.abort();
            return Err(match response {
                Response::Extended(result, Some(name)) if name == NOTICE_OF_DISCONNECTION_OID => {
                    LdapError::Server {
                        code: result.code,
                        message: format!("notice of disconnection: {}", result.message),
                    }
                }
                _ => LdapError::Protocol("unexpected unsolicited notification".into()),
            });
        }
        if got != i64::from(id) {
            return Err(self.protocol(&format!("answer with message id {got}, expected {id}")));
        }
        Ok(response)
    }

    /// Reads one whole LDAPMessage within the timeout, growing the buffer only as bytes arrive.
    fn read_message(&mut self) -> Result<Vec<u8>, LdapError> {
        let deadline = deadline_after(self.timeout);
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match ber::parse_header(&self.buffer) {
                Err(error) => return Err(self.protocol(&error)),
                Ok(Some((tag, header, length))) => {
                    if tag != ber::SEQUENCE {
                        return Err(
                            self.protocol(&format!("message tag 0x{tag:02x}, not SEQUENCE"))
                        );
                    }
                    if length > MAX_MESSAGE - header.min(MAX_MESSAGE) {
                        return Err(self.protocol(&format!(
                            "message of {length} octets, more than the limit of {MAX_MESSAGE}"
                        )));
                    }
                    if self.buffer.len() >= header + length {
                        let rest = self.buffer.split_off(header + length);
                        return Ok(std::mem::replace(&mut self.buffer, rest));
                    }
                }
                Ok(None) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                self.abort();
                return Err(LdapError::Timeout);
            }
            let stream = self.stream()?;
            let read = stream
                .tcp()
                .set_read_timeout(Some(deadline - now))
                .and_then(|()| stream.read(&mut chunk));
            match read {
                Ok(0) => {
                    self.abort();
                    return Err(LdapError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    )));
                }
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => {
                    self.abort();
                    return Err(io_error(error));
                }
            }
        }
    }

    /// Replaces the plain stream with a TLS one and completes the handshake.
    fn start_tls_handshake(
        &mut self,
        server: &Server,
        tls: &Arc<ClientConfig>,
    ) -> Result<(), LdapError> {
        let name = ServerName::try_from(server.host.clone()).map_err(|e| {
            LdapError::Tls(format!(
                "{:?} is not a valid TLS server name: {e}",
                server.host
            ))
        })?;
        let tcp = match self.stream.take() {
            Some(Stream::Plain(tcp)) => tcp,
            Some(stream) => {
                self.stream = Some(stream);
                return Err(self.protocol("TLS is already on"));
            }
            None => return Err(LdapError::Io(std::io::ErrorKind::NotConnected.into())),
        };
        let client =
            ClientConnection::new(tls.clone(), name).map_err(|e| LdapError::Tls(e.to_string()))?;
        let mut tls = StreamOwned::new(client, tcp);
        let deadline = deadline_after(self.timeout);
        while tls.conn.is_handshaking() {
            let now = Instant::now();
            let left = deadline
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            let step = tls
                .sock
                .set_read_timeout(Some(left))
                .and_then(|()| tls.sock.set_write_timeout(Some(left)))
                .and_then(|()| tls.conn.complete_io(&mut tls.sock));
            let error = match step {
                Ok((0, 0)) if tls.conn.wants_read() => LdapError::Tls(
                    "the server closed the connection during the TLS handshake".into(),
                ),
                Ok(_) if now >= deadline => LdapError::Timeout,
                Ok(_) => continue,
                Err(error) => match error.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        LdapError::Timeout
                    }
                    std::io::ErrorKind::InvalidData => LdapError::Tls(error.to_string()),
                    std::io::ErrorKind::UnexpectedEof => LdapError::Tls(
                        "the server closed the connection during the TLS handshake".into(),
                    ),
                    _ => LdapError::Io(error),
                },
            };
            let _ = tls.sock.shutdown(Shutdown::Both);
            return Err(error);
        }
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }
}

/// Now plus `timeout`, without overflowing on absurd timeouts.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(1 << 32)))
        .unwrap_or(now)
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.abort();
    }
}
