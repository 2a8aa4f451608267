//! HTTP agents for endpoints the operator configured (Twilio, a Synapse admin API, a REST
//! identity store): trusted as configured, so no address guard; but a whole-call timeout, no
//! redirects (a redirect is not the endpoint answering, and must not carry credentials
//! elsewhere), error statuses read as answers, and no proxy from the environment for loopback
//! endpoints, which a proxy could not reach.

use std::net::IpAddr;
use std::time::Duration;

/// True when `url`'s host is `localhost` or a loopback address.
pub fn is_loopback(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
