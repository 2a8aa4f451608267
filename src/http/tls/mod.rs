//! oxisd's own HTTPS listener (`server.tls`), for boxes without a reverse proxy: the
//! certificate and key ([`Certs`]), read again by [`Certs::reload`] (SIGHUP) without touching
//! the connections in progress. The transport ([`super::server`]) does the handshake on each
//! accepted connection with the certificate in force at that moment, under
//! `server.tls.handshakeTimeout`, and then speaks HTTP over it like on the plain listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::StartError;

/// The running HTTPS listener.
pub struct TlsFront {
    pub(super) addr: SocketAddr,
    pub(super) certs: Arc<Certs>,
}

/// The certificate in use and where it comes from.
pub struct Certs {
    current: RwLock<Arc<ServerConfig>>,
    certificate: PathBuf,
    private_key: PathBuf,
}

impl Certs {
    fn load(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, StartError> {
        const CERTIFICATE: &str = "server.tls.certificate";
        const PRIVATE_KEY: &str = "server.tls.privateKey";
        let read = |path: &Path, key: &str| {
            std::fs::read(path).map_err(|e| {
                StartError::setting(key, format!("cannot read {}: {e}", path.display()))
            })
        };
        let pem = read(certificate, CERTIFICATE)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                StartError::setting(CERTIFICATE, format!("{}: {e}", certificate.display()))
            })?;
        if chain.is_empty() {
            return Err(StartError::setting(
                CERTIFICATE,
                format!("{} holds no PEM certificate", certificate.display()),
            ));
        }
        let key_pem = read(private_key, PRIVATE_KEY)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            StartError::setting(
                PRIVATE_KEY,
                format!("{}: no usable PEM private key: {e}", private_key.display()),
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StartError::setting("server.tls", e))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                StartError::setting(
                    "server.tls",
                    format!("the certificate and key do not fit: {e}"),
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Loads the certificate and key of `server.tls`.
    pub fn open(tls: &crate::config::TlsListenerConfig) -> Result<Arc<Certs>, StartError> {
        let (Some(certificate), Some(private_key)) = (&tls.certificate, &tls.private_key) else {
            return Err(StartError::setting(
                "server.tls",
                "certificate and privateKey are required",
            ));
        };
        Ok(Arc::new(Certs {
            current: RwLock::new(Certs::load(certificate, private_key)?),
            certificate: certificate.clone(),
            private_key: private_key.clone(),
        }))
    }

    /// The certificate in force.
    pub fn get(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the certificate and key again; on error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Certs::load(&self.certificate, &self.private_key).map_err(|e| e.to_string())?;
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
