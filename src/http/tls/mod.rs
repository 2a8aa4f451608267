//! oxisd's own HTTPS listener (`server.tls`), for boxes without a reverse proxy.
//!
//! tiny_http's TLS support pins an old rustls and does handshakes on its accept thread, where
//! one slow client would stall every other. So TLS ends here instead: each accepted connection
//! gets a thread that does the handshake (under the read timeout) and then relays the plaintext
//! to the plain listener over loopback ([`relay`]). The plain side keeps doing everything else
//! (limits, timeouts, routing), and [`TlsPeers`] tells it the real client address of each relayed
//! connection. The certificate and key are read again by [`TlsFront::reload`] (SIGHUP) without
//! touching the connections in progress or the plain listener.

mod peers;
mod relay;

pub use peers::TlsPeers;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerConfig as ServerSection;

/// Stack of a connection thread: the relay needs little.
const CONN_STACK: usize = 256 * 1024;

/// The running HTTPS listener.
pub struct TlsFront {
    addr: SocketAddr,
    certs: Arc<Certs>,
}

/// The certificate in use and where it comes from.
pub struct Certs {
    current: RwLock<Arc<ServerConfig>>,
    certificate: PathBuf,
    private_key: PathBuf,
}

impl Certs {
    fn load(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, String> {
        let read = |path: &Path, key: &str| {
            std::fs::read(path)
                .map_err(|e| format!("server.tls.{key}: cannot read {}: {e}", path.display()))
        };
        let pem = read(certificate, "certificate")?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("server.tls.certificate: {}: {e}", certificate.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "server.tls.certificate: {} holds no PEM certificate",
                certificate.display()
            ));
        }
        let key_pem = read(private_key, "privateKey")?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!(
                "server.tls.privateKey: {}: no usable PEM private key: {e}",
                private_key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("server.tls: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| format!("server.tls: the certificate and key do not fit: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    fn get(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the certificate and key again; on error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Certs::load(&self.certificate, &self.private_key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

impl TlsFront {
    /// The address the HTTPS listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate holder, for reloading from another thread.
    pub fn certs(&self) -> Arc<Certs> {
        self.certs.clone()
    }

    /// Reads the certificate and key again; on error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        self.certs.reload()
    }
}

/// Binds the HTTPS listener and starts accepting; connections are relayed to `plain`, the
/// address of the plain listener. Stops accepting when `stop` becomes true.
pub fn start(
    server: &ServerSection,
    plain: SocketAddr,
    peers: Arc<TlsPeers>,
    stop: Arc<AtomicBool>,
    largest_body: usize,
) -> Result<TlsFront, String> {
    // A head, plus a body sent along before the head was parsed, plus slack.
    let head_limit = server.max_header_size + largest_body + 64 * 1024;
    let tls = &server.tls;
    let (Some(certificate), Some(private_key)) = (&tls.certificate, &tls.private_key) else {
        return Err("server.tls: certificate and privateKey are required".into());
    };
    let certs = Arc::new(Certs {
        current: RwLock::new(Certs::load(certificate, private_key)?),
        certificate: certificate.clone(),
        private_key: private_key.clone(),
    });
    let host = tls.hostname.trim_start_matches('[').trim_end_matches(']');
    let addr = (host, tls.port)
        .to_socket_addrs()
        .map_err(|e| format!("server.tls.hostname: cannot resolve '{host}': {e}"))?
        .next()
        .ok_or_else(|| format!("server.tls.hostname: '{host}' has no address"))?;
    let listener = TcpListener::bind(addr).map_err(|e| {
        format!("cannot listen for HTTPS on {addr} (server.tls.hostname, server.tls.port): {e}")
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("HTTPS listener: {e}"))?;
    let settings = Arc::new(relay::Settings {
        backend: loopback_of(plain),
        handshake_timeout: Duration::from_secs(server.read_timeout),
        io_timeout: Duration::from_secs(server.read_timeout.max(server.write_timeout)),
        idle_timeout: Duration::from_secs(server.idle_timeout),
        head_limit,
    });
    let max = tls.max_connections;
    let open = Arc::new(AtomicUsize::new(0));
    let accept_certs = certs.clone();
    std::thread::Builder::new()
        .name("tls-accept".into())
        .spawn(move || {
            accept_loop(listener, accept_certs, settings, peers, stop, open, max);
        })
        .map_err(|e| format!("cannot start the HTTPS listener: {e}"))?;
    Ok(TlsFront { addr, certs })
}

fn accept_loop(
    listener: TcpListener,
    certs: Arc<Certs>,
    settings: Arc<relay::Settings>,
    peers: Arc<TlsPeers>,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
    max: usize,
) {
    while !stop.load(Ordering::SeqCst) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                relay::wait_readable(&listener, Duration::from_millis(200));
                continue;
            }
            Err(e) => {
                // Out of file handles and the like: wait, do not spin.
                log::warn!("HTTPS listener: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if open.load(Ordering::SeqCst) >= max {
            log::warn!(
                "HTTPS listener: {max} connections open (server.tls.maxConnections), refusing {peer}"
            );
            drop(stream);
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (config, settings, peers, open_here) =
            (certs.get(), settings.clone(), peers.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("tls-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                if let Err(e) = relay::serve(stream, peer, config, &settings, &peers) {
                    log::debug!("HTTPS connection from {peer}: {e}");
                }
                open_here.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            open.fetch_sub(1, Ordering::SeqCst);
            log::warn!("HTTPS listener: cannot start a connection thread: {e}");
        }
    }
}

/// Where the relay connects: the plain listener, through loopback when it listens on every
/// address.
fn loopback_of(plain: SocketAddr) -> SocketAddr {
    match plain.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), plain.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), plain.port())
        }
        _ => plain,
    }
}
