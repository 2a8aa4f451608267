//! Password checks for the homeserver (`check_credentials`): the user is found in the
//! directory with the service account (the localpart escaped into the filter), then the
//! password is checked by binding as that user. Hashes are never compared here.
//!
//! What an answer reveals is the same for an unknown user and a wrong password: both are
//! refused alike, after the same exchanges with the directory (an unknown user's password is
//! tried on a DN that does not exist), so the timing tells them apart no more than the answer.
//! Failed checks are rate-limited per user and per client address; a successful check gives its
//! tokens back, so people who type their password right are never slowed down.

use std::net::IpAddr;
use std::sync::Arc;

use log::{info, warn};

use super::person::{Person, is_localpart};
use super::{Directory, DirectoryError};
use crate::config::AuthRateLimits;
use crate::error::{Error, ErrorKind, Result};
use crate::ldap::LdapError;
use crate::service::rate_limit::{self, RateLimiter};

/// The longest password passed to the directory.
const MAX_PASSWORD_BYTES: usize = 1024;

/// The outcome of a check.
#[derive(Debug)]
pub enum Outcome {
    /// The password is right: the user, with the profile the directory has.
    Accepted(Person),
    /// Refused: unknown user, wrong password, disabled account, or not one of ours.
    Refused,
}

/// Checks passwords against the directory.
pub struct PasswordCheck {
    directory: Arc<Directory>,
    per_user: RateLimiter,
    per_client: RateLimiter,
}

impl PasswordCheck {
    /// The checker for `directory` with `auth.rateLimit.*`.
    pub fn new(directory: Arc<Directory>, limits: &AuthRateLimits) -> PasswordCheck {
        PasswordCheck {
            directory,
            per_user: RateLimiter::new("failed password checks of this user", limits.per_user),
            per_client: RateLimiter::new(
                "failed password checks from this client",
                limits.per_client,
            ),
        }
    }

    /// Checks `password` for `user_id` (`@localpart:domain`, or a bare localpart) asked by
    /// `client`: 429 `M_LIMIT_EXCEEDED` over a rate limit, 502 when the directory cannot be
    /// asked. Never logs the password.
    pub fn check(
        &self,
        user_id: &str,
        password: &str,
        client: IpAddr,
        now_ms: u64,
    ) -> Result<Outcome> {
        let Some(localpart) = self.localpart(user_id) else {
            info!(
                "password check: '{}' is not a user here",
                printable(user_id)
            );
            return Ok(Outcome::Refused);
        };
        let taken = rate_limit::take(
            &[
                (&self.per_user, localpart.as_str()),
                (&self.per_client, client.to_string().as_str()),
            ],
            now_ms,
        )?;
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            info!("password check for {localpart}: refused (empty or too long password)");
            return Ok(Outcome::Refused);
        }
        let outcome = self.ask(&localpart, password).map_err(|e| {
            warn!("password check for {localpart}: the directory could not be asked: {e}");
            Error::new(
                ErrorKind::BadGateway,
                "The directory could not check the password",
            )
        });
        match &outcome {
            Ok(Outcome::Accepted(person)) => {
                info!("password check for {}: accepted", person.mxid);
                taken.give_back();
            }
            Ok(Outcome::Refused) => info!("password check for {localpart}: refused"),
            // Not the user's fault: the attempt does not count.
            Err(_) => taken.give_back(),
        }
        outcome
    }

    /// The localpart of `user_id` when it names a valid user of our domain.
    fn localpart(&self, user_id: &str) -> Option<String> {
        let domain = self.directory.mapping.domain();
        let local = match user_id.strip_prefix('@') {
            Some(rest) => {
                let (local, server) = rest.split_once(':')?;
                if !server.eq_ignore_ascii_case(domain) {
                    return None;
                }
                local
            }
            None => user_id,
        };
        let local = local.to_lowercase();
        is_localpart(&local).then_some(local)
    }

    /// Finds the user and binds as them.
    fn ask(&self, localpart: &str, password: &str) -> std::result::Result<Outcome, DirectoryError> {
        let directory = &self.directory;
        let mut conn = directory.connect()?;
        let mapping = &directory.mapping;
        let mxid = format!("@{localpart}:{}", mapping.domain());
        let mut found: Vec<Person> = Vec::new();
        directory.search(
            &mut conn,
            &mapping.uid_filter(localpart),
            &mapping.attributes(),
            &mut |entry| {
                // The entry must give back exactly this localpart (the filter matched it with
                // the attribute's own matching rule, which may be looser). Two are kept at
                // most: two already make the answer "ambiguous".
                if found.len() < 2
                    && let Some(person) = mapping.person(&entry).filter(|p| p.mxid == mxid)
                {
                    found.push(person);
                }
                Ok(())
            },
        )?;
        if found.len() > 1 {
            warn!("password check for {localpart}: more than one directory entry matches; refused");
            found.clear();
        }
        let person = found.pop();
        // The same bind for an unknown user, on a DN that cannot exist, so both answers take
        // the same exchanges.
        let dn = match &person {
            Some(p) => p.dn.clone(),
            None => format!(
                "cn=oxisd-unknown-user-{},{}",
                hex_of(localpart),
                directory.first_base()
            ),
        };
        let bound = conn.simple_bind(&dn, password);
        conn.close();
        match (bound, person) {
            (Ok(()), Some(person)) => Ok(Outcome::Accepted(person)),
            (Ok(()), None) => {
                warn!(
                    "password check for {localpart}: the directory accepted a bind to a DN that does not exist; refused"
                );
                Ok(Outcome::Refused)
            }
            (Err(LdapError::InvalidCredentials | LdapError::EmptyPassword), _) => {
                Ok(Outcome::Refused)
            }
            // The stand-in DN of an unknown user may give another error (e.g. 32 noSuchObject
            // on some servers): still just "refused".
            (Err(_), None) => Ok(Outcome::Refused),
            (Err(e), Some(p)) => Err(DirectoryError(format!("binding as {} failed: {e}", p.dn))),
        }
    }
}

/// The localpart in hex, for the stand-in DN (nothing in it needs DN escaping).
fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// `s` for a log line: control characters replaced, at most 80 characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}
