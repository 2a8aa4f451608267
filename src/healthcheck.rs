//! `oxisd health`: asks the running server's public listener for `/health` and exits 0 when it
//! answers 200, 1 otherwise; for container `HEALTHCHECK`s (an image `FROM scratch` has no curl)
//! and scripts.

use std::time::Duration;

use crate::config::Config;
use crate::http::paths;

/// The URL of `/health` on the public listener of `config` (an unspecified listen address,
/// `0.0.0.0` or `::`, is asked on loopback).
pub fn url(config: &Config) -> String {
    let host = match config.server.hostname.as_str() {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    };
    format!(
        "http://{}:{}{}",
        crate::util::url::bracketed(host),
        config.server.port,
        paths::HEALTH
    )
}

/// Asks `/health`; the exit code (0: healthy) after a line on standard error when not.
pub fn run(config: &Config) -> i32 {
    let url = url(config);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(response) if response.status().as_u16() == 200 => 0,
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(4096)
                .read_to_string()
                .unwrap_or_default();
            eprintln!("oxisd: {url} answered {status}: {}", body.trim());
            1
        }
        Err(e) => {
            eprintln!("oxisd: cannot reach {url}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_asked_on_loopback() {
        let mut config = Config::default().validated().unwrap();
        config.server.port = 8090;
        assert_eq!(url(&config), "http://127.0.0.1:8090/health");
        config.server.hostname = "0.0.0.0".into();
        assert_eq!(url(&config), "http://127.0.0.1:8090/health");
        config.server.hostname = "::".into();
        assert_eq!(url(&config), "http://[::1]:8090/health");
        config.server.hostname = "id.example.org".into();
        assert_eq!(url(&config), "http://id.example.org:8090/health");
    }
}
