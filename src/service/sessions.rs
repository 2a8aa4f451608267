//! 3PID validation sessions: create or reuse a session, send its token (honouring
//! `send_attempt`), check submitted tokens with an attempt limit, report validation, expire.
//!
//! Rules (spec §6.9, and the issues sydent and mxisd had):
//! - A session is keyed by (medium, normalised address, client_secret): the same triple gets the
//!   same sid and token.
//! - A message is sent only when `send_attempt` is greater than the highest attempt already sent,
//!   and that attempt is recorded only after the send succeeded.
//! - A message counts against every rate limit that applies to it (client, recipient, and for
//!   SMS the number, its country calling code and the global hourly cap): their tokens are taken
//!   together before sending, so concurrent requests cannot exceed any of them, and given back
//!   when the send fails. A repeated `send_attempt` sends nothing and takes nothing.
//! - A session expires `session.ttl` after its last modification (creation, a message sent,
//!   validation). Expired or locked sessions are replaced by a fresh one on the next request.
//! - After `session.maxTokenAttempts` wrong tokens a session is locked for good.
//! - Everything a success answer acknowledges is durable before the answer.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::{Config, RateLimit};
use crate::crypto::random;
use crate::error::{Error, ErrorKind, Result};
use crate::http::paths;
use crate::ids::{ClientSecret, SessionId};
use crate::notify::{Notifier, NotifyError};
use crate::store::Store;
use crate::store::sessions::SessionRecord;
use crate::threepid::Medium;
use crate::threepid::params::url_encode;

use super::rate_limit::{self, RateLimiter};

/// Lock stripes: requests for one session are serialised, different sessions rarely wait.
const STRIPES: usize = 256;

/// A request for a validation token.
pub struct TokenRequest<'a> {
    /// The medium.
    pub medium: Medium,
    /// The normalised address.
    pub address: &'a str,
    /// The client's secret.
    pub client_secret: &'a ClientSecret,
    /// The client's attempt counter.
    pub send_attempt: u64,
    /// Where to send the browser after validation (already checked).
    pub next_link: Option<&'a str>,
    /// Who asks: the account, or the client address (rate-limit key).
    pub requester: &'a str,
    /// For phone numbers: the country calling code (rate-limit key).
    pub calling_code: Option<u16>,
}

/// The session service.
pub struct Sessions {
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    ttl_ms: u64,
    max_token_attempts: u32,
    public_url: String,
    stripes: Vec<Mutex<()>>,
    per_recipient: RateLimiter,
    per_client: RateLimiter,
    sms_token_length: usize,
    sms_per_number: RateLimiter,
    sms_per_country: RateLimiter,
    sms_global: RateLimiter,
}

impl Sessions {
    /// Builds the service from the configuration: sessions are kept in `store`, their
    /// messages sent through `notifier`.
    pub fn new(config: &Config, store: Arc<Store>, notifier: Arc<Notifier>) -> Sessions {
        let s = &config.session;
        let msisdn = &config.threepid.medium.msisdn;
        Sessions {
            store,
            notifier,
            ttl_ms: s.ttl * 1000,
            max_token_attempts: s.max_token_attempts,
            public_url: config.server.public_url().to_string(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            per_recipient: RateLimiter::new("messages to this address", s.rate_limit.per_recipient),
            per_client: RateLimiter::new("validation messages requested", s.rate_limit.per_client),
            sms_token_length: msisdn.token_length,
            sms_per_number: RateLimiter::new("SMS to this number", msisdn.rate_limit.per_number),
            sms_per_country: RateLimiter::new(
                "SMS to this country",
                msisdn.rate_limit.per_country_code,
            ),
            sms_global: RateLimiter::new(
                "SMS sent by this server this hour",
                global_sms_rate(msisdn.rate_limit.global_per_hour),
            ),
        }
    }

    fn lock(&self, medium: Medium, address: &str, client_secret: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        (medium, address, client_secret).hash(&mut h);
        let stripe = &self.stripes[(h.finish() as usize) % STRIPES];
        stripe.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, r: &SessionRecord, now_ms: u64) -> bool {
        now_ms >= r.mtime_ms.saturating_add(self.ttl_ms)
    }

    fn locked(&self, r: &SessionRecord) -> bool {
        r.failed_attempts >= self.max_token_attempts
    }

    /// Sets the modification time, and the purge time with it: a session is kept one more
    /// lifetime after it expired, so clients are told "expired" rather than "unknown".
    fn touch(&self, r: &mut SessionRecord, now_ms: u64) {
        r.mtime_ms = now_ms;
        r.purge_at_ms = now_ms.saturating_add(self.ttl_ms.saturating_mul(2));
    }

    /// The link that validates a session from the browser.
    pub fn validation_link(&self, r: &SessionRecord) -> String {
        format!(
            "{}{}{}?sid={}&client_secret={}&token={}",
            self.public_url,
            paths::V2,
            paths::submit_token(r.medium),
            url_encode(&r.sid),
            url_encode(&r.client_secret),
            url_encode(&r.token)
        )
    }

    /// `requestToken`: finds or creates the session and sends its token when `send_attempt`
    /// asks for it. Returns the session.
    ///
    /// Errors: 429 `M_LIMIT_EXCEEDED`; for email 500 `M_EMAIL_SEND_ERROR` or 400
    /// `M_INVALID_EMAIL` when the mail server refuses the address.
    pub fn request_token(&self, req: &TokenRequest<'_>, now_ms: u64) -> Result<SessionRecord> {
        let store = &*self.store;
        let medium = req.medium;
        let _guard = self.lock(medium, req.address, req.client_secret);
        let existing = store.session_by_triple(medium, req.address, req.client_secret)?;
        // A new session is only written once its message went out: one write per request,
        // and a failed send leaves nothing behind.
        let (mut record, previous) = match existing {
            Some(r) if !self.expired(&r, now_ms) && !self.locked(&r) => (r.clone(), Some(r)),
            stale => {
                if let Some(old) = stale {
                    store.delete_session(&old)?;
                }
                (self.new_record(req, now_ms)?, None)
            }
        };
        let should_send = record
            .send_attempt
            .is_none_or(|sent| req.send_attempt > sent);
        if !should_send {
            log::debug!(
                "requestToken sends nothing: sid={} medium={medium} send_attempt={} is not above the last one sent ({})",
                record.sid,
                req.send_attempt,
                record.send_attempt.unwrap_or(0)
            );
            return Ok(record);
        }
        // Every limit's token is taken before the send, all at once (concurrent requests for
        // other sessions cannot slip through between a check and a count), and given back when
        // nothing went out.
        let taken = rate_limit::take(&self.limits_for(req), now_ms)?;
        let link = self.validation_link(&record);
        if let Err(e) = self
            .notifier
            .send_validation(req.medium, req.address, &record.token, &link)
        {
            taken.give_back();
            return Err(send_error(req.medium, e));
        }
        drop(taken);
        record.send_attempt = Some(req.send_attempt);
        if let Some(link) = req.next_link {
            record.next_link = Some(link.to_string());
        }
        self.touch(&mut record, now_ms);
        store.put_session(&record, previous.as_ref())?;
        store.durable()?;
        if previous.is_none() {
            crate::metrics::METRICS.sessions_created.inc();
        }
        Ok(record)
    }

    /// The rate limits a message for `req` counts against.
    fn limits_for(&self, req: &TokenRequest<'_>) -> Vec<(&RateLimiter, String)> {
        let mut limits = vec![(&self.per_client, req.requester.to_string())];
        match req.medium {
            Medium::Email => limits.push((&self.per_recipient, format!("email:{}", req.address))),
            Medium::Msisdn => {
                limits.push((&self.sms_per_number, req.address.to_string()));
                limits.push((
                    &self.sms_per_country,
                    req.calling_code.unwrap_or(0).to_string(),
                ));
                limits.push((&self.sms_global, String::new()));
            }
        }
        limits
    }

    fn new_record(&self, req: &TokenRequest<'_>, now_ms: u64) -> Result<SessionRecord> {
        let token = match req.medium {
            Medium::Email => random::token(24)?,
            Medium::Msisdn => random::digits(self.sms_token_length)?,
        };
        let mut record = SessionRecord {
            sid: SessionId::try_from(random::token(18)?).map_err(Error::internal)?,
            medium: req.medium,
            address: req.address.to_string(),
            client_secret: req.client_secret.clone(),
            token,
            send_attempt: None,
            next_link: req.next_link.map(str::to_string),
            created_ms: now_ms,
            mtime_ms: now_ms,
            validated_ms: None,
            failed_attempts: 0,
            purge_at_ms: 0,
            remote: None,
        };
        self.touch(&mut record, now_ms);
        Ok(record)
    }

    /// Finds the session for `sid` + `client_secret`: 404 `M_NO_VALID_SESSION` for an unknown
    /// sid and a wrong secret alike (the answer must not tell which).
    fn find(&self, sid: &SessionId, client_secret: &str) -> Result<SessionRecord> {
        let no_session = || {
            Error::new(
                ErrorKind::NoValidSession,
                "No valid session was found matching that sid and client secret",
            )
        };
        let record = self.store.session(sid)?.ok_or_else(no_session)?;
        if !random::constant_time_eq(record.client_secret.as_bytes(), client_secret.as_bytes()) {
            return Err(no_session());
        }
        Ok(record)
    }

    /// `submitToken`: checks the token and marks the session validated.
    ///
    /// Errors: 404 `M_NO_VALID_SESSION`; 400 `M_SESSION_EXPIRED`; 400 `M_TOKEN_INCORRECT` (also
    /// once the session is locked after too many wrong tokens).
    pub fn submit_token(
        &self,
        medium: Medium,
        sid: &SessionId,
        client_secret: &ClientSecret,
        token: &str,
        now_ms: u64,
    ) -> Result<SessionRecord> {
        let store = &*self.store;
        let found = self.find(sid, client_secret)?;
        let _guard = self.lock(found.medium, &found.address, &found.client_secret);
        // Re-read under the lock: a concurrent request may have changed it.
        let record = self.find(sid, client_secret)?;
        if record.medium != medium {
            return Err(Error::new(
                ErrorKind::NoValidSession,
                "No valid session was found matching that sid and client secret",
            ));
        }
        if self.expired(&record, now_ms) {
            return Err(Error::new(
                ErrorKind::SessionExpired,
                "This validation session has expired: start a new one",
            ));
        }
        if self.locked(&record) {
            return Err(Error::new(
                ErrorKind::TokenIncorrect,
                "Too many wrong tokens were submitted for this session: request a new token",
            ));
        }
        // People type SMS codes with spaces or dashes; email tokens are compared as sent.
        let submitted: String = match medium {
            Medium::Msisdn => token
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '-')
                .collect(),
            Medium::Email => token.trim().to_string(),
        };
        if !random::constant_time_eq(record.token.as_bytes(), submitted.as_bytes()) {
            let mut failed = record.clone();
            failed.failed_attempts += 1;
            store.put_session(&failed, Some(&record))?;
            return Err(Error::new(
                ErrorKind::TokenIncorrect,
                "The token is incorrect",
            ));
        }
        if record.validated_ms.is_some() {
            return Ok(record);
        }
        let mut validated = record.clone();
        validated.validated_ms = Some(now_ms);
        self.touch(&mut validated, now_ms);
        store.put_session(&validated, Some(&record))?;
        store.durable()?;
        crate::metrics::METRICS.sessions_validated.inc();
        Ok(validated)
    }

    /// `getValidated3pid`: the validated session.
    ///
    /// Errors, checked in this order: 404 `M_NO_VALID_SESSION`, 400 `M_SESSION_EXPIRED`, 400
    /// `M_SESSION_NOT_VALIDATED`.
    pub fn validated(
        &self,
        sid: &SessionId,
        client_secret: &str,
        now_ms: u64,
    ) -> Result<SessionRecord> {
        let record = self.find(sid, client_secret)?;
        if self.expired(&record, now_ms) {
            return Err(Error::new(
                ErrorKind::SessionExpired,
                "This validation session has expired: start a new one",
            ));
        }
        if record.validated_ms.is_none() {
            return Err(Error::new(
                ErrorKind::SessionNotValidated,
                "This validation session has not been completed yet",
            ));
        }
        Ok(record)
    }

    /// Records the upstream session of a validated session (remote sessions); durable when
    /// this returns.
    pub fn set_remote(
        &self,
        sid: &SessionId,
        client_secret: &str,
        remote: crate::store::sessions::RemoteSession,
        now_ms: u64,
    ) -> Result<SessionRecord> {
        let store = &*self.store;
        let current = self.validated(sid, client_secret, now_ms)?;
        let _guard = self.lock(current.medium, &current.address, &current.client_secret);
        let record = self.validated(sid, client_secret, now_ms)?;
        let mut updated = record.clone();
        updated.remote = Some(remote);
        self.touch(&mut updated, now_ms);
        store.put_session(&updated, Some(&record))?;
        store.durable()?;
        Ok(updated)
    }

    /// Deletes sessions past their purge time; returns how many. Only the purge index is read,
    /// never the live sessions.
    pub fn sweep(&self, now_ms: u64) -> Result<usize> {
        let store = &*self.store;
        let mut total = 0;
        loop {
            let due = store.sessions_due(now_ms, 1000)?;
            let batch = due.len();
            for record in due {
                let _guard = self.lock(record.medium, &record.address, &record.client_secret);
                // Re-check under the lock: a request may just have renewed it.
                if let Some(current) = store.session(&record.sid)?
                    && current.purge_at_ms <= now_ms
                {
                    store.delete_session(&current)?;
                    total += 1;
                }
            }
            if batch < 1000 {
                break;
            }
        }
        crate::metrics::METRICS.sessions_expired.add(total as u64);
        if total > 0 {
            store.durable()?;
        }
        Ok(total)
    }
}

fn send_error(medium: Medium, e: NotifyError) -> Error {
    match (medium, e) {
        (Medium::Email, NotifyError::Rejected(detail) | NotifyError::InvalidAddress(detail)) => {
            Error::new(
                ErrorKind::InvalidEmail,
                "The mail server refused this email address",
            )
            .with_detail(detail)
        }
        (Medium::Email, NotifyError::Failed(detail)) => {
            log::error!("sending a validation email failed: {detail}");
            Error::new(
                ErrorKind::EmailSendError,
                "The validation email could not be sent; try again later",
            )
            .with_detail(detail)
        }
        (Medium::Msisdn, NotifyError::InvalidAddress(detail)) => Error::new(
            ErrorKind::InvalidAddress,
            "The SMS provider says this is not a number it can text",
        )
        .with_detail(detail),
        (Medium::Msisdn, NotifyError::Rejected(detail)) => Error::new(
            ErrorKind::DestinationRejected,
            "SMS cannot be sent to this number",
        )
        .with_detail(detail),
        (Medium::Msisdn, NotifyError::Failed(detail)) => {
            log::error!("sending a validation SMS failed: {detail}");
            Error::new(
                ErrorKind::SendError,
                "The validation SMS could not be sent; try again later",
            )
            .with_detail(detail)
        }
    }
}

/// The global SMS cap as a bucket: `per_hour` at once, refilled evenly over the hour.
fn global_sms_rate(per_hour: u32) -> RateLimit {
    RateLimit {
        burst: per_hour,
        refill: (3600 / u64::from(per_hour.max(1))).max(1),
    }
}
