//! The HTTP layer: the listeners and their transport ([`server`]: hyper on a tokio runtime,
//! connection caps, timeouts, limits, the panic boundary, graceful shutdown), the owned
//! request and reply types handlers see ([`Req`], [`Reply`]), authentication, and the routing
//! table. Handlers never see hyper types.

pub mod auth;
mod client_ip;
pub mod internal;
pub mod paths;
mod request;
mod response;
pub mod router;
pub mod routes;
pub mod server;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

pub use request::{Method, Req, decode_value, parse_query, percent_decode};
pub use response::Reply;
pub use routes::Mount;

use crate::app::App;
use crate::error::StartError;
use server::{Admission, Cap, Limits, Listener, Site};

/// File descriptors kept for the store, the log, outbound calls and the admin listener when the
/// connection caps are fitted under the open-files limit.
const RESERVED_FDS: u64 = 256;

/// The running public listeners (HTTP, and HTTPS when `server.tls` is on).
pub struct Running {
    addr: SocketAddr,
    tls: Option<tls::TlsFront>,
    server: server::Running,
}

impl Running {
    /// The address the plain listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS listener, when `server.tls` is enabled.
    pub fn tls(&self) -> Option<&tls::TlsFront> {
        self.tls.as_ref()
    }

    /// Stops accepting, lets the requests in flight finish, and returns when the listeners
    /// have stopped.
    pub fn shutdown(self) {
        self.server.shutdown();
    }
}

/// Binds the public listeners and starts serving them.
pub fn start(app: Arc<App>) -> Result<Running, StartError> {
    let cfg = &app.config.server;
    let plain = server::bind(&cfg.hostname, cfg.port, "server.hostname, server.port")?;
    let addr = plain.local_addr().map_err(StartError::other)?;
    let group = Admission::new(
        connection_cap(cfg.max_connections),
        cfg.max_connections_per_address,
        cfg.trusted_proxies.clone(),
    );
    let mut listeners = vec![Listener {
        tcp: plain,
        tls: None,
        admission: group.clone(),
        cap: None,
        name: "HTTP",
    }];
    let mut front = None;
    if let Some(certs) = app.tls.clone() {
        let tcp = server::bind(
            &cfg.tls.hostname,
            cfg.tls.port,
            "server.tls.hostname, server.tls.port",
        )?;
        front = Some(tls::TlsFront {
            addr: tcp.local_addr().map_err(StartError::other)?,
            certs: certs.clone(),
        });
        listeners.push(Listener {
            tcp,
            tls: Some(certs),
            admission: group,
            cap: Some(Cap::new(cfg.tls.max_connections)),
            name: "HTTPS",
        });
    }
    let site = Arc::new(Site {
        app: app.clone(),
        routes: routes::ROUTES,
        public: true,
        gate: server::Gate::Open,
    });
    let server = server::spawn("http", cfg.workers, site, Limits::of(cfg), listeners)?;
    Ok(Running {
        addr,
        tls: front,
        server,
    })
}

/// `server.maxConnections`, lowered (with a warning) to what the open-files limit leaves.
fn connection_cap(configured: usize) -> usize {
    let Some(files) = server::raise_open_files_limit() else {
        return configured;
    };
    let room = files.saturating_sub(RESERVED_FDS).max(16) as usize;
    if configured > room {
        log::warn!(
            "server.maxConnections is {configured} but the open-files limit is {files}: taking at most {room} connections (raise LimitNOFILE / ulimit -n)"
        );
        return room;
    }
    configured
}
