use std::path::Path;

use crate::ldap::tls_config;

#[test]
fn a_ca_file_is_read() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ldap");
    tls_config(Some(&fixtures.join("ca.pem"))).unwrap();
    let error = tls_config(Some(&fixtures.join("missing.pem"))).unwrap_err();
    assert!(error.starts_with("cannot read the CA file"), "{error}");
    let error = tls_config(Some(&fixtures.join("README.md"))).unwrap_err();
    assert!(error.contains("no PEM certificate"), "{error}");
}
