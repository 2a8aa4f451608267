//! The upstream session of a validated session: started from our page (the upstream sends the
//! person its own message), then checked (we ask the upstream whether it is validated).

use serde_json::json;

use super::{RemoteSessions, Step, upstream_error};
use crate::crypto::random;
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::HsError;
use crate::http::paths;
use crate::ids::SessionId;
use crate::store::sessions::RemoteSession;
use crate::threepid::Medium;
use crate::threepid::params::url_encode;

impl RemoteSessions {
    /// Starts (or restarts, with a new token) the upstream session of a validated session:
    /// the upstream sends the person its own message.
    pub fn start(&self, sid: &SessionId, client_secret: &str, now_ms: u64) -> Result<Step> {
        let session = self.sessions.validated(sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        // Counted when tried, even if the upstream then fails: it may have sent its message.
        let _counted = self.starts.take(&session.sid, now_ms)?;
        let previous = session.remote.clone().filter(|r| r.server == name);
        let remote_secret = match &previous {
            Some(r) => r.client_secret.clone(),
            None => random::alphanumeric(32)?,
        };
        let send_attempt = previous.as_ref().map_or(1, |r| r.send_attempt + 1);
        let body = match session.medium {
            Medium::Msisdn => {
                let (country, number) = msisdn_parts(&session.address)?;
                json!({"client_secret": remote_secret, "country": country, "phone_number": number, "send_attempt": send_attempt})
            }
            Medium::Email => {
                json!({"client_secret": remote_secret, "email": session.address, "send_attempt": send_attempt})
            }
        };
        let endpoint = format!("{url}{}{}", paths::V1, paths::request_token(session.medium));
        let answer = self
            .client
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
        // The upstream answers a repeated request (same secret) with the same session: one it
        // validated stays validated, and binds are still forwarded.
        let validated = previous
            .as_ref()
            .is_some_and(|r| r.validated && r.sid == remote_sid);
        self.sessions.set_remote(
            sid,
            client_secret,
            RemoteSession {
                server: name.clone(),
                sid: remote_sid,
                client_secret: remote_secret,
                send_attempt,
                validated,
            },
            now_ms,
        )?;
        if validated {
            log::info!(
                "started a {} session at {name} again: the same session, still validated",
                session.medium
            );
        } else {
            log::info!("started a {} session at {name}", session.medium);
        }
        Ok(Step::Started { server: name })
    }

    /// Asks the upstream whether its session is validated, and remembers it when it is.
    pub fn check(&self, sid: &SessionId, client_secret: &str, now_ms: u64) -> Result<Step> {
        let session = self.sessions.validated(sid, client_secret, now_ms)?;
        let (name, url) = self.upstream(&session)?;
        let Some(mut remote) = session.remote.clone().filter(|r| r.server == name) else {
            return Ok(Step::NotStarted { server: name });
        };
        if remote.validated {
            return Ok(Step::Validated { server: name });
        }
        let endpoint = format!(
            "{url}{}{}?sid={}&client_secret={}",
            paths::V1,
            paths::GET_VALIDATED_3PID,
            url_encode(&remote.sid),
            url_encode(&remote.client_secret)
        );
        match self.client.get_url_json(&endpoint, Some(64 * 1024)) {
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
                self.sessions
                    .set_remote(sid, client_secret, remote, now_ms)?;
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
