//! The fixed self-signed certificate that the test peers (SMTP sink, fake homeserver) serve, and
//! the rustls configurations built on it.
//!
//! The certificate is for `localhost` and `127.0.0.1`. A client either accepts invalid
//! certificates or trusts this one as a root ([`root_store`], [`client_config`], or [`CERT_PEM`]
//! given to whatever TLS client the code under test uses).

#![allow(dead_code)]

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

// Self-signed, P-256, CN and SAN localhost + 127.0.0.1, valid until 2126. Made with:
// openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500
//   -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
//   -addext "basicConstraints=critical,CA:FALSE" -keyout key.pem -out cert.pem
/// The certificate, PEM.
pub const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBmDCCAT6gAwIBAgIUZIzE7ewL7JjOntBl2pT/KHS+9DwwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNzA5NDc0MloYDzIxMjYxMTAz
MDk0NzQyWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATlx80nPDHmuiJ/+jpIhsL73VblI+C7OurKjFsgK9Ovm0Xvc5CHONDO
RoUXfdljhzvH+T8APrZbaax0bWX5z0WPo2wwajAdBgNVHQ4EFgQUR0nuic6mV/Xy
5keo6QqabzrdgKEwHwYDVR0jBBgwFoAUR0nuic6mV/Xy5keo6QqabzrdgKEwGgYD
VR0RBBMwEYIJbG9jYWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0E
AwIDSAAwRQIgMiqwIHHAgNvQEkl8T9JC+pfy0zx0OF5O1JWY0T1CP8YCIQDXZVqk
7en6qKrYi6TfaUlUs9qQ7v5tuupW6N6Ks5u+bQ==
-----END CERTIFICATE-----
";

/// Its private key, PKCS#8 PEM.
pub const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9zVp0G90avJedaWx
nPkMp0GTvYg4o5djMEr9kEL3komhRANCAATlx80nPDHmuiJ/+jpIhsL73VblI+C7
OurKjFsgK9Ovm0Xvc5CHONDORoUXfdljhzvH+T8APrZbaax0bWX5z0WP
-----END PRIVATE KEY-----
";

/// The certificate, DER.
pub fn cert_der() -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(CERT_PEM.as_bytes()).expect("test certificate PEM")
}

/// Server side: TLS 1.2 and 1.3 (rustls' safe defaults, `ring`), no client auth, no ALPN,
/// serving the certificate above. A new config on each call, so servers (and the sessions they
/// could resume) are not shared between callers.
pub fn server_config() -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert_der()],
            PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).expect("test key PEM"),
        )
        .unwrap();
    Arc::new(config)
}

/// A root store holding only the certificate above.
pub fn root_store() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der()).expect("test certificate as a root");
    roots
}

/// Client side trusting only the certificate above (TLS 1.2 and 1.3, `ring`, no ALPN).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(root_store())
        .with_no_client_auth();
    Arc::new(config)
}
