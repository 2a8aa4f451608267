//! Remote 3PID sessions (`session.policy.validation.forLocal/forRemote.toRemote`): after a 3PID
//! was validated here, the same 3PID is validated at an upstream identity server that the
//! operator named, and a bind here is forwarded there, so the 3PID is discoverable beyond this
//! server. The person drives it from our pages: start (the upstream sends its own token), then
//! check (we ask the upstream whether that session is validated).
//!
//! Which 3PIDs are *local*: email addresses of our domains (`localDomains`, default
//! `matrix.domain`); phone numbers never are. Each scope says whether its 3PIDs are validated
//! and bound here (`toLocal`), at the upstream (`toRemote`), or both. Nothing is contacted
//! unless a scope names an upstream.

use serde_json::{Value, json};

use super::rate_limit::RateLimiter;
use super::sessions::Sessions;
use crate::config::{Config, RateLimit, ScopePolicy};
use crate::crypto::random;
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::{HomeserverClient, HsError};
use crate::store::Store;
use crate::store::sessions::{RemoteSession, SessionRecord};
use crate::threepid::params::url_encode;

/// The remote-session policy.
pub struct RemoteSessions {
    local_domains: Vec<String>,
    for_local: ScopePolicy,
    for_remote: ScopePolicy,
    servers: std::collections::BTreeMap<String, String>,
    public_url: String,
    /// Each start makes the upstream send a message: a few per session, then one every 5 min.
    starts: RateLimiter,
}

/// What the pages show after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The upstream sent its token; the person should follow it, then check.
    Started {
        /// The upstream's name.
        server: String,
    },
    /// The upstream validated the 3PID: a bind will be forwarded there.
    Validated {
        /// The upstream's name.
        server: String,
    },
    /// Not validated at the upstream yet.
    Pending {
        /// The upstream's name.
        server: String,
    },
}

impl RemoteSessions {
    /// The policy as configured.
    pub fn new(config: &Config) -> RemoteSessions {
        let v = &config.session.policy.validation;
        let mut local_domains: Vec<String> = v
            .local_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if local_domains.is_empty() {
            local_domains.extend(config.matrix.domain.iter().map(|d| d.to_ascii_lowercase()));
        }
        RemoteSessions {
            local_domains,
            for_local: v.for_local.clone(),
            for_remote: v.for_remote.clone(),
            servers: config
                .matrix
                .identity
                .servers
                .keys()
                .filter_map(|name| {
                    Some((
                        name.clone(),
                        config.matrix.identity.url_of(name)?.to_string(),
                    ))
                })
                .collect(),
            public_url: config.server.public_url().trim_end_matches('/').to_string(),
            starts: RateLimiter::new(
                "messages from the other identity server for this session",
                RateLimit {
                    burst: 3,
                    refill: 300,
                },
            ),
        }
    }

    /// The policy of a 3PID's scope.
    pub fn scope(&self, medium: &str, address: &str) -> &ScopePolicy {
        let local = medium == "email"
            && address.rsplit_once('@').is_some_and(|(_, d)| {
                self.local_domains
                    .iter()
                    .any(|l| *l == d.to_ascii_lowercase())
            });
        if local {
            &self.for_local
        } else {
            &self.for_remote
        }
    }

    /// 403 `M_FORBIDDEN` when sessions for this 3PID may not be started.
    pub fn check_request(&self, medium: &str, address: &str) -> Result<()> {
        let scope = self.scope(medium, address);
        if scope.enabled && (scope.to_local || scope.to_remote.enabled) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Forbidden,
                "This identity server does not validate this kind of address",
            ))
        }
    }

    /// The upstream offered for this 3PID, if any.
    pub fn upstream_for(&self, medium: &str, address: &str) -> Option<&str> {
        let scope = self.scope(medium, address);
        scope
            .to_remote
            .enabled
            .then_some(scope.to_remote.server.as_str())
    }

    /// Whether binds of this 3PID are stored here.
    pub fn binds_here(&self, medium: &str, address: &str) -> bool {
        self.scope(medium, address).to_local
    }

    /// Our page that starts the upstream session of a validated session.
    pub fn start_link(&self, sid: &str, client_secret: &str) -> String {
        format!(
            "{}/_matrix/identity/_oxisd/remote/start?sid={}&client_secret={}",
            self.public_url,
            url_encode(sid),
            url_encode(client_secret)
        )
    }

    /// Our page that checks the upstream session.
    pub fn check_link(&self, sid: &str, client_secret: &str) -> String {
        format!(
            "{}/_matrix/identity/_oxisd/remote/check?sid={}&client_secret={}",
            self.public_url,
            url_encode(sid),
            url_encode(client_secret)
        )
    }

    fn upstream(&self, session: &SessionRecord) -> Result<(String, String)> {
        let name = self
            .upstream_for(&session.medium, &session.address)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Forbidden,
                    "This address is not published at another identity server",
                )
            })?;
        let url = self.servers.get(name).ok_or_else(|| {
            Error::internal(format_args!("matrix.identity.servers has no '{name}'"))
        })?;
        Ok((name.to_string(), url.clone()))
    }

    /// Starts (or restarts, with a new token) the upstream session of a validated session:
    /// the upstream sends the person its own message.
    pub fn start(
        &self,
        store: &Store,
        sessions: &Sessions,
        client: &HomeserverClient,
        sid: &str,
        client_secret: &str,
        now_ms: u64,
    ) -> Result<Step> {
        let session = sessions.validated(store, sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        // Counted when tried, even if the upstream then fails: it may have sent its message.
        let _counted = self.starts.take(&session.sid, now_ms)?;
        let previous = session.remote.clone().filter(|r| r.server == name);
        let remote_secret = match &previous {
            Some(r) => r.client_secret.clone(),
            None => random::alphanumeric(32)?,
        };
        let send_attempt = previous.as_ref().map_or(1, |r| r.send_attempt + 1);
        let body = match session.medium.as_str() {
            "msisdn" => {
                let (country, number) = msisdn_parts(&session.address)?;
                json!({"client_secret": remote_secret, "country": country, "phone_number": number, "send_attempt": send_attempt})
            }
            _ => {
                json!({"client_secret": remote_secret, "email": session.address, "send_attempt": send_attempt})
            }
        };
        let endpoint = format!(
            "{url}/_matrix/identity/api/v1/validate/{}/requestToken",
            session.medium
        );
        let answer = client
            .post_url_json(&endpoint, &body)
            .map_err(|e| upstream_error(&name, e))?;
        let remote_sid = answer["sid"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::BadGateway,
                    format!("{name} answered without a sid"),
                )
            })?
            .to_string();
        sessions.set_remote(
            store,
            sid,
            client_secret,
            RemoteSession {
                server: name.clone(),
                sid: remote_sid,
                client_secret: remote_secret,
                send_attempt,
                validated: false,
            },
            now_ms,
        )?;
        log::info!("started a {} session at {name}", session.medium);
        Ok(Step::Started { server: name })
    }

    /// Asks the upstream whether its session is validated, and remembers it when it is.
    pub fn check(
        &self,
        store: &Store,
        sessions: &Sessions,
        client: &HomeserverClient,
        sid: &str,
        client_secret: &str,
        now_ms: u64,
    ) -> Result<Step> {
        let session = sessions.validated(store, sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        let Some(mut remote) = session.remote.clone().filter(|r| r.server == name) else {
            return Err(Error::new(
                ErrorKind::SessionNotValidated,
                format!("Nothing was started at {name} yet"),
            ));
        };
        if remote.validated {
            return Ok(Step::Validated { server: name });
        }
        let endpoint = format!(
            "{url}/_matrix/identity/api/v1/3pid/getValidated3pid?sid={}&client_secret={}",
            url_encode(&remote.sid),
            url_encode(&remote.client_secret)
        );
        match client.get_url_json(&endpoint, Some(64 * 1024)) {
            Ok(v) => {
                if v["medium"] != session.medium.as_str()
                    || v["address"] != session.address.as_str()
                {
                    return Err(Error::new(
                        ErrorKind::BadGateway,
                        format!("{name} validated another address"),
                    ));
                }
                remote.validated = true;
                sessions.set_remote(store, sid, client_secret, remote, now_ms)?;
                log::info!("a {} session was validated at {name}", session.medium);
                Ok(Step::Validated { server: name })
            }
            Err(HsError::Status { status: 400, body })
                if body["errcode"] == "M_SESSION_NOT_VALIDATED" =>
            {
                Ok(Step::Pending { server: name })
            }
            Err(e) => Err(upstream_error(&name, e)),
        }
    }

    /// Forwards a bind to the upstream of a session whose upstream session is validated.
    /// `Ok(None)` when there is nothing to forward.
    pub fn forward_bind(
        &self,
        client: &HomeserverClient,
        session: &SessionRecord,
        mxid: &str,
    ) -> Result<Option<Value>> {
        let Some(remote) = session.remote.as_ref().filter(|r| r.validated) else {
            return Ok(None);
        };
        let Some(url) = self.servers.get(&remote.server) else {
            return Ok(None);
        };
        let answer = client
            .post_url_json(
                &format!("{url}/_matrix/identity/api/v1/3pid/bind"),
                &json!({"sid": remote.sid, "client_secret": remote.client_secret, "mxid": mxid}),
            )
            .map_err(|e| upstream_error(&remote.server, e))?;
        Ok(Some(answer))
    }
}

/// A phone number as (ISO region, `+digits`) for an upstream's v1 requestToken.
fn msisdn_parts(digits: &str) -> Result<(String, String)> {
    let e164 = format!("+{digits}");
    let number = phonenumber::parse(None, &e164)
        .map_err(|e| Error::internal(format_args!("stored msisdn does not parse: {e}")))?;
    let region = number
        .country()
        .id()
        .map(|id| format!("{id:?}"))
        .ok_or_else(|| Error::internal("no region for the stored msisdn"))?;
    Ok((region, e164))
}

fn upstream_error(name: &str, e: HsError) -> Error {
    let kind = match e {
        HsError::Timeout(_) => ErrorKind::GatewayTimeout,
        _ => ErrorKind::BadGateway,
    };
    Error::new(
        kind,
        format!("The identity server {name} could not be used"),
    )
    .with_detail(e)
}
