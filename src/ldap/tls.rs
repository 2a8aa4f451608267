//! TLS trust for `ldaps://` and StartTLS: a CA file, or the system's trust store.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting the PEM CA
/// certificates in `ca_file` when given (and only those), else the system's trust store
/// through `rustls-platform-verifier` (on Linux: the system CA bundle, checked by webpki).
/// There is no mode that skips verification. Err is a message for the operator.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = match ca_file {
        Some(path) => {
            let shown = path.display();
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {shown}: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {shown}: unusable certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("CA file {shown}: no PEM certificate in it"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| {
                format!(
                    "cannot use the system's trust store ({e}); install the system CA \
                     certificates (e.g. the ca-certificates package) or give a CA file"
                )
            })?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}
