//! `server.*`: the public listeners, their limits and handler threads, the server's public
//! name and URL, and the grammar of Matrix server names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::sections::err;
use crate::cidr::Cidr;
use crate::util::url::UrlParts;

/// Handler threads when `server.workers` is 0: enough that a few dozen requests waiting on
/// slow peers leave room for everyone else (idle threads exit, so they cost nothing at rest).
pub const DEFAULT_WORKERS: usize = 64;

/// `server.*`: the public listeners, their limits and the handler threads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerConfig {
    /// The public name of this identity server: the signing entity in signatures.
    pub name: String,
    /// The address to listen on.
    pub hostname: String,
    /// The port to listen on (0 picks a free one).
    pub port: u16,
    /// The URL users and homeservers reach this server at; links in emails start with it.
    #[serde(alias = "public_url")]
    pub public_url: Option<String>,
    /// Threads that run request handlers (started on demand, stopped when idle); 0: 64.
    /// Sized for waiting on I/O (store syncs, outbound calls), not for CPU.
    pub workers: usize,
    /// Open connections at most, plain and HTTPS together; more are closed at once.
    #[serde(alias = "max_connections")]
    pub max_connections: usize,
    /// Open connections at most from one client address (an IPv6 /64 counts as one);
    /// `trustedProxies` are exempt.
    #[serde(alias = "max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Largest accepted request body in bytes.
    #[serde(alias = "max_body_size")]
    pub max_body_size: usize,
    /// Largest accepted request header block in bytes.
    #[serde(alias = "max_header_size")]
    pub max_header_size: usize,
    /// Seconds a socket read may wait before the connection is dropped.
    #[serde(alias = "read_timeout")]
    pub read_timeout: u64,
    /// Seconds a socket write may wait before the connection is dropped.
    #[serde(alias = "write_timeout")]
    pub write_timeout: u64,
    /// Seconds a connection may sit without a complete request before it is closed.
    #[serde(alias = "idle_timeout")]
    pub idle_timeout: u64,
    /// Peers whose `X-Forwarded-For` header is believed (the reverse proxy in front of us).
    #[serde(alias = "trusted_proxies")]
    pub trusted_proxies: Vec<Cidr>,
    /// Other names clients use for this server (`host` or `host:port`), accepted as the
    /// destination of homeserver-signed requests besides `server.name` and the host of
    /// `server.publicUrl`.
    #[serde(alias = "public_names")]
    pub public_names: Vec<String>,
    /// `server.tls.*`: an HTTPS listener besides the plain one.
    pub tls: TlsListenerConfig,
}

/// `server.tls.*`: oxisd's own HTTPS listener, for setups without a reverse proxy (homeservers
/// always call identity servers over https). The certificate and key are read again on SIGHUP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsListenerConfig {
    /// Whether to listen for HTTPS.
    pub enabled: bool,
    /// The address to listen on; empty: `server.hostname`.
    pub hostname: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The certificate chain, PEM.
    pub certificate: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(alias = "private_key")]
    pub private_key: Option<PathBuf>,
    /// Open HTTPS connections at most; more are refused until some close.
    #[serde(alias = "max_connections")]
    pub max_connections: usize,
    /// Seconds a client has to complete the TLS handshake.
    #[serde(alias = "handshake_timeout")]
    pub handshake_timeout: u64,
}

impl Default for TlsListenerConfig {
    fn default() -> Self {
        TlsListenerConfig {
            enabled: false,
            hostname: String::new(),
            port: 8443,
            certificate: None,
            private_key: None,
            max_connections: 512,
            handshake_timeout: 10,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: "localhost".into(),
            hostname: "127.0.0.1".into(),
            port: 8090,
            public_url: None,
            workers: 0,
            max_connections: 1024,
            max_connections_per_address: 64,
            max_body_size: 64 * 1024,
            max_header_size: 16 * 1024,
            read_timeout: 10,
            write_timeout: 10,
            idle_timeout: 60,
            trusted_proxies: Vec::new(),
            public_names: Vec::new(),
            tls: TlsListenerConfig::default(),
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&mut self) -> Result<(), ConfigError> {
        if !is_server_name(&self.name) {
            return Err(err(format!(
                "server.name: '{}' is not a valid server name (hostname or IP, optional :port)",
                self.name
            )));
        }
        if self.hostname.trim().is_empty() {
            return Err(err("server.hostname: must not be empty".into()));
        }
        let url = match self
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if self.name == "localhost" => format!("http://localhost:{}", self.port),
            None => format!("https://{}", self.name),
        };
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(['?', '#', ' ']) => {}
            _ => {
                return Err(err(format!(
                    "server.publicUrl: '{url}' must be an http:// or https:// URL without query or fragment"
                )));
            }
        }
        self.public_url = Some(url);
        if self.workers == 0 {
            self.workers = DEFAULT_WORKERS;
        }
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            return Err(err(
                "server.maxConnections and server.maxConnectionsPerAddress: must be at least 1"
                    .into(),
            ));
        }
        if self.workers > 1024 {
            return Err(err(format!(
                "server.workers: {} is too many (at most 1024)",
                self.workers
            )));
        }
        if self.tls.enabled {
            if self.tls.certificate.is_none() || self.tls.private_key.is_none() {
                return Err(err(
                    "server.tls: certificate and privateKey are required when enabled".into(),
                ));
            }
            if self.tls.max_connections == 0 {
                return Err(err("server.tls.maxConnections: must be at least 1".into()));
            }
            if self.tls.handshake_timeout == 0 || self.tls.handshake_timeout > 3600 {
                return Err(err(
                    "server.tls.handshakeTimeout: must be between 1 and 3600 seconds".into(),
                ));
            }
            if self.tls.hostname.trim().is_empty() {
                self.tls.hostname = self.hostname.clone();
            }
        }
        if self.max_body_size < 1024 {
            return Err(err("server.maxBodySize: must be at least 1024 bytes".into()));
        }
        if self.max_header_size < 1024 {
            return Err(err(
                "server.maxHeaderSize: must be at least 1024 bytes".into()
            ));
        }
        for (key, v) in [
            ("readTimeout", self.read_timeout),
            ("writeTimeout", self.write_timeout),
            ("idleTimeout", self.idle_timeout),
        ] {
            if v == 0 || v > 3600 {
                return Err(err(format!(
                    "server.{key}: must be between 1 and 3600 seconds"
                )));
            }
        }
        Ok(())
    }

    /// The public URL without a trailing slash (set by validation).
    pub fn public_url(&self) -> &str {
        self.public_url.as_deref().unwrap_or("")
    }

    /// Every name homeservers may use for this server: `server.name`, the host (and port) of
    /// `server.publicUrl`, and `server.publicNames`.
    pub fn destinations(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        let host = UrlParts::split(self.public_url()).authority;
        if !host.is_empty() {
            names.push(host.to_string());
        }
        names.extend(self.public_names.iter().cloned());
        names.dedup();
        names
    }
}

/// True for `hostname`, `IPv4` or `[IPv6]`, each with an optional `:port` (1-65535, no leading
/// zero), the grammar of Matrix server names.
pub fn is_server_name(name: &str) -> bool {
    let (host, port) = if let Some(rest) = name.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (v6, None),
            p => match p.strip_prefix(':') {
                Some(p) => (v6, Some(p)),
                None => return false,
            },
        }
    } else {
        match name.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (name, None),
        }
    };
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return false;
        }
    }
    if name.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::is_server_name;

    #[test]
    fn server_name_grammar_matches_the_spec_vectors() {
        for ok in [
            "9.9.9.9",
            "9.9.9.9:4242",
            "[::]",
            "[::]:4242",
            "[a:b:c::]:4242",
            "example.com",
            "EXAMPLE.COM",
            "example.com:4242",
            "localhost:9000",
            "a.b.c.d:1234",
        ] {
            assert!(is_server_name(ok), "{ok}");
        }
        for bad in [
            "[:::]",
            "a:b:c::",
            "example.com:65536",
            "example.com:0",
            "example.com:-1",
            "example.com:a",
            "example.com: ",
            "example.com:04242",
            "example.com: 4242",
            "example.com/example.com",
            "example.com#example.com",
            "",
        ] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }
}
