//! HTTP agents for endpoints the operator configured (Twilio, a Synapse admin API, a REST
//! identity store): trusted as configured, so no address guard; but a whole-call timeout, no
//! redirects (a redirect is not the endpoint answering, and must not carry credentials
//! elsewhere), error statuses read as answers, and no proxy from the environment for loopback
//! endpoints, which a proxy could not reach.

use std::time::Duration;

use crate::util::url::{UrlParts, is_loopback_host, split_host};

/// True when `url`'s host is `localhost` or a loopback address.
pub fn is_loopback(url: &str) -> bool {
    let host_port = UrlParts::split(url).host_port();
    split_host(host_port).is_some_and(|(host, _)| is_loopback_host(host))
}

/// An agent for the operator-configured endpoint at `base_url`.
pub fn operator_agent(base_url: &str, timeout_secs: u64) -> ureq::Agent {
    let mut builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(timeout_secs)))
        .max_redirects(0)
        .user_agent(concat!("oxisd/", env!("CARGO_PKG_VERSION")))
        .accept("application/json");
    if is_loopback(base_url) {
        builder = builder.proxy(None);
    }
    builder.build().into()
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_urls() {
        for url in [
            "http://127.0.0.1:8008",
            "http://localhost/x",
            "https://[::1]:443/",
            "http://user:pw@127.0.0.2",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://api.twilio.com",
            "http://10.0.0.1",
            "http://localhost.example.org",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
