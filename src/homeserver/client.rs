//! The one outbound HTTP client: ureq with rustls, a resolver that only hands out addresses
//! the guard accepts (and SRV pins), one deadline for each call (discovery included), a cap on
//! every answer, and caps on the calls in progress ([`Slots`]).
//! Configured overrides (`outbound.overrides`) are trusted and use a plain resolver.
//!
//! Redirects (at most 3) are followed through the same guarded resolver, so every hop passes
//! the address guard; a call that starts on `https://` stays on it (`https_only` on each hop):
//! a redirect to `http://` is an error, never a downgrade.
//!
//! Every URL that goes into an error (and so into the log) is redacted first ([`redact_url`]):
//! the userinfo call carries an OpenID token in its query string.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::config::Config as UreqConfig;
use ureq::http::Uri;
use ureq::tls::TlsConfig;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use super::HsError;
use super::discovery::{Discovery, NetLookups, Target};
use super::guard::{AddressGuard, GuardedResolver};
use super::slots::Slots;
use super::srv::SrvResolver;
use crate::config::OutboundConfig;
use crate::error::StartError;
use crate::util::url::{UrlParts, unbracket};

/// Answers up to this size are read from a well-known document.
const WELL_KNOWN_LIMIT: u64 = 16 * 1024;

/// Addresses found through SRV, keyed by the (host, port) of the URL they stand for.
type Pins = Arc<RwLock<HashMap<(String, u16), Vec<SocketAddr>>>>;

/// A resolver that answers SRV-pinned hosts from the pins and everything else through the
/// guard.
#[derive(Debug)]
struct PinnedResolver {
    pins: Pins,
    guarded: GuardedResolver,
}

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &UreqConfig,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = unbracket(uri.host().unwrap_or("")).to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(443);
        if let Some(addrs) = self
            .pins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(host, port))
        {
            let mut out = self.empty();
            for a in addrs {
                if out.try_push(*a).is_err() {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        self.guarded.resolve(uri, config, timeout)
    }
}

/// Talks to homeservers.
pub struct HomeserverClient {
    guarded: Agent,
    trusted: Agent,
    pins: Pins,
    guard: AddressGuard,
    srv: SrvResolver,
    discovery: Discovery,
    overrides: BTreeMap<String, String>,
    max_response: u64,
    /// `outbound.timeout`: one call, discovery and request together.
    timeout: Duration,
    slots: Slots,
}

/// What is left of `deadline`, or a timeout error naming `what`.
fn left(deadline: Instant, what: &str) -> Result<Duration, HsError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| HsError::Timeout(redact_url(what)))
}

/// Whether a call to `url` must stay on https through its redirects: it starts there.
fn https_only(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The host (and port) of `url`, which names its destination for the caps.
fn destination_of(url: &str) -> String {
    url.parse::<Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_string()))
        .unwrap_or_else(|| url.to_string())
}

fn agent_config(config: &OutboundConfig) -> UreqConfig {
    Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(config.timeout)))
        .http_status_as_error(false)
        .max_redirects(3)
        // A proxy would connect to the target itself, out of the address guard's sight.
        .proxy(None)
        .user_agent(concat!("oxisd/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            TlsConfig::builder()
                .disable_verification(config.insecure_skip_tls_verify)
                .build(),
        )
        .build()
}

impl HomeserverClient {
    /// Builds the client from `outbound.*`.
    pub fn new(config: &OutboundConfig) -> Result<HomeserverClient, StartError> {
        let guard = AddressGuard::new(config.allowed_ranges.clone());
        let pins: Pins = Arc::default();
        let resolver = PinnedResolver {
            pins: pins.clone(),
            guarded: GuardedResolver::new(guard.clone()),
        };
        let guarded = Agent::with_parts(agent_config(config), DefaultConnector::new(), resolver);
        let trusted = Agent::with_parts(
            agent_config(config),
            DefaultConnector::new(),
            DefaultResolver::default(),
        );
        let srv = SrvResolver::from_outbound(config);
        Ok(HomeserverClient {
            guarded,
            trusted,
            pins,
            guard,
            srv,
            discovery: Discovery::default(),
            overrides: config.overrides.clone(),
            max_response: config.max_response_size as u64,
            timeout: Duration::from_secs(config.timeout),
            slots: Slots::new(config.max_concurrent, config.max_per_destination),
        })
    }

    /// Where federation requests for `server_name` go, and which agent sends them; discovery
    /// ends by `deadline`.
    fn target(&self, server_name: &str, deadline: Instant) -> Result<(String, &Agent), HsError> {
        if let Some(base) = self.overrides.get(server_name) {
            return Ok((base.clone(), &self.trusted));
        }
        let fetch = |url: &str| self.fetch_well_known(url, deadline);
        let lookups = NetLookups {
            fetch: &fetch,
            srv: &self.srv,
            guard: &self.guard,
        };
        let Target { base_url, pin } = self.discovery.resolve(server_name, &lookups)?;
        if let Some((host, port, addrs)) = pin {
            self.pins
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert((host, port), addrs);
        }
        Ok((base_url, &self.guarded))
    }

    fn fetch_well_known(
        &self,
        url: &str,
        deadline: Instant,
    ) -> Option<(serde_json::Value, Option<String>)> {
        let mut response = self
            .guarded
            .get(url)
            .config()
            .timeout_global(Some(left(deadline, url).ok()?))
            .https_only(https_only(url))
            .build()
            .call()
            .ok()?;
        if response.status() != 200 {
            return None;
        }
        let cache_control = response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .with_config()
            .limit(WELL_KNOWN_LIMIT)
            .read_to_vec()
            .ok()?;
        Some((serde_json::from_slice(&body).ok()?, cache_control))
    }

    /// `GET <federation base of server_name><path_and_query>`, JSON answer of at most `limit`
    /// bytes (or `outbound.maxResponseSize`). A non-2xx answer is [`HsError::Status`].
    pub fn get_json(
        &self,
        server_name: &str,
        path_and_query: &str,
        limit: Option<u64>,
    ) -> Result<serde_json::Value, HsError> {
        let _slot = self.slots.take(server_name)?;
        let deadline = Instant::now() + self.timeout;
        let (base, agent) = self.target(server_name, deadline)?;
        let url = format!("{base}{path_and_query}");
        let response = agent
            .get(&url)
            .config()
            .timeout_global(Some(left(deadline, &url)?))
            .https_only(https_only(&url))
            .build()
            .call()
            .map_err(|e| transport_error(&url, e))?;
        self.read_json(response, &url, limit)
    }

    /// `GET <url>` through the address guard (for servers found some other way than
    /// federation discovery, e.g. another identity server from an SRV record). JSON answer of
    /// at most `limit` bytes; a non-2xx answer is [`HsError::Status`].
    pub fn get_url_json(
        &self,
        url: &str,
        limit: Option<u64>,
    ) -> Result<serde_json::Value, HsError> {
        let _slot = self.slots.take(&destination_of(url))?;
        let response = self
            .guarded
            .get(url)
            .config()
            .https_only(https_only(url))
            .build()
            .call()
            .map_err(|e| transport_error(url, e))?;
        self.read_json(response, url, limit)
    }

    /// `POST <url>` with a JSON body, through the address guard (an operator-configured
    /// upstream identity server). A non-2xx answer is [`HsError::Status`].
    pub fn post_url_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, HsError> {
        let bytes = serde_json::to_vec(body).map_err(|e| HsError::BadResponse(e.to_string()))?;
        let _slot = self.slots.take(&destination_of(url))?;
        let response = self
            .guarded
            .post(url)
            .config()
            .https_only(https_only(url))
            .build()
            .header("Content-Type", "application/json")
            .send(&bytes[..])
            .map_err(|e| transport_error(url, e))?;
        self.read_json(response, url, None)
    }

    /// `POST` (or `method`) a JSON body to the federation API of `server_name`.
    pub fn send_json(
        &self,
        method: &str,
        server_name: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, HsError> {
        let _slot = self.slots.take(server_name)?;
        let deadline = Instant::now() + self.timeout;
        let (base, agent) = self.target(server_name, deadline)?;
        let url = format!("{base}{path}");
        let bytes = serde_json::to_vec(body).map_err(|e| HsError::BadResponse(e.to_string()))?;
        let request = match method {
            "PUT" => agent.put(&url),
            _ => agent.post(&url),
        };
        let response = request
            .config()
            .timeout_global(Some(left(deadline, &url)?))
            .https_only(https_only(&url))
            .build()
            .header("Content-Type", "application/json")
            .send(&bytes[..])
            .map_err(|e| transport_error(&url, e))?;
        self.read_json(response, &url, None)
    }

    fn read_json(
        &self,
        mut response: ureq::http::Response<ureq::Body>,
        url: &str,
        limit: Option<u64>,
    ) -> Result<serde_json::Value, HsError> {
        let status = response.status().as_u16();
        let limit = limit.unwrap_or(self.max_response).min(self.max_response);
        let bytes = response.body_mut().with_config().limit(limit).read_to_vec();
        let parsed = bytes
            .as_ref()
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
        if !(200..300).contains(&status) {
            return Err(HsError::Status {
                status,
                body: parsed.unwrap_or(serde_json::Value::Null),
            });
        }
        let url = redact_url(url);
        match (bytes, parsed) {
            (Ok(_), Some(v)) => Ok(v),
            (Err(e), _) => Err(HsError::BadResponse(format!("{url}: {e}"))),
            (Ok(_), None) => Err(HsError::BadResponse(format!(
                "{url}: the answer is not JSON"
            ))),
        }
    }
}

/// Query parameters whose values are credentials, never logged.
const SECRET_PARAMS: &[&str] = &["access_token", "token", "client_secret", "private_key"];

/// `url` fit for the log: the values of credential query parameters ([`SECRET_PARAMS`]) and
/// any userinfo (`user:password@`) replaced by `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let parts = UrlParts::split(url);
    let mut out = match parts.scheme {
        Some(scheme) if parts.authority.contains('@') => {
            format!("{scheme}://<redacted>@{}{}", parts.host_port(), parts.path)
        }
        _ => parts.base(),
    };
    if let Some(query) = parts.query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                let decoded = name.replace("%5F", "_").replace("%5f", "_");
                if SECRET_PARAMS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&decoded))
                {
                    format!("{name}=<redacted>")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if let Some(fragment) = parts.fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn transport_error(url: &str, e: ureq::Error) -> HsError {
    let shown = redact_url(url);
    // The text may name a redirect target too: every URL in it is redacted.
    let text = e
        .to_string()
        .split(' ')
        .map(|word| {
            if word.contains("://") {
                redact_url(word)
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let url = shown.as_str();
    if text.contains("address guard") {
        return HsError::Refused(format!("{url}: {text}"));
    }
    match e {
        ureq::Error::RequireHttpsOnly(target) => HsError::Unreachable(format!(
            "{url}: refused a redirect from https to {}",
            redact_url(&target)
        )),
        ureq::Error::Timeout(_) => HsError::Timeout(url.to_string()),
        ureq::Error::BodyExceedsLimit(_) => {
            HsError::BadResponse(format!("{url}: the answer is too large"))
        }
        _ => HsError::Unreachable(format!("{url}: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_from_urls() {
        for (url, shown) in [
            (
                "https://hs.example:8448/_matrix/federation/v1/openid/userinfo?access_token=s3cr3t",
                "https://hs.example:8448/_matrix/federation/v1/openid/userinfo?access_token=<redacted>",
            ),
            (
                "https://u:pw@is.example/x?a=1&token=t&client_secret=c&private_key=k&b=2#f",
                "https://<redacted>@is.example/x?a=1&token=<redacted>&client_secret=<redacted>&private_key=<redacted>&b=2#f",
            ),
            (
                "http://h/p?Access%5Ftoken=z&tokens=keep",
                "http://h/p?Access%5Ftoken=<redacted>&tokens=keep",
            ),
            (
                "http://h/p?access_token",
                "http://h/p?access_token=<redacted>",
            ),
            ("http://h/a@b/c", "http://h/a@b/c"),
            ("https://h.example/plain", "https://h.example/plain"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
