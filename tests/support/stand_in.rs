//! The scaffold the HTTP stand-ins share (Twilio, the REST backend, Synapse's admin API): a
//! tiny_http server on a free loopback port, a thread answering its requests, and a clean stop
//! when dropped.

use std::sync::Arc;
use std::thread::JoinHandle;

/// A running stand-in; stops when dropped.
pub struct StandIn {
    server: Arc<tiny_http::Server>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    /// Listens on 127.0.0.1 (a free port) and answers every request with `handle`.
    pub fn spawn(handle: impl Fn(tiny_http::Request) + Send + 'static) -> StandIn {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind stand-in"));
        let port = server
            .server_addr()
            .to_ip()
            .expect("stand-in listens on IP")
            .port();
        let thread = {
            let server = server.clone();
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    handle(request);
                }
            })
        };
        StandIn {
            server,
            port,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL (`http://127.0.0.1:PORT`, no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
