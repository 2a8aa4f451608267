//! Accounts: an OpenID token from a homeserver is exchanged for an access token of ours; the
//! access token authenticates v2 requests until logout.
//!
//! Registration asks the user's homeserver (`/_matrix/federation/v1/openid/userinfo`) who the
//! OpenID token belongs to and requires that user to live on exactly the server that was named
//! (spec v1.18), and that answer (`sub`) to be a valid Matrix user id. Access tokens are random
//! and stored hashed.

use std::sync::Arc;

use serde::Deserialize;

use crate::config::AccountConfig;
use crate::crypto::random;
use crate::error::{Error, ErrorKind, Result};
use crate::homeserver::{HomeserverClient, HsError};
use crate::ids::{ServerName, UserId};
use crate::service::bindings::check_user_id;
use crate::store::Store;
use crate::store::accounts::AccountRecord;
use crate::threepid::params::url_encode;

/// Largest userinfo answer read (sydent uses 5 KiB).
const USERINFO_LIMIT: u64 = 5 * 1024;

/// The OpenID token object a client got from its homeserver.
#[derive(Debug, Deserialize)]
pub struct OpenIdToken {
    /// The OpenID access token.
    pub access_token: String,
    /// Always `Bearer`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The homeserver that issued it (trimmed, in lower case).
    pub matrix_server_name: ServerName,
    /// Seconds the OpenID token stays valid (not used: our token does not expire with it).
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
}

/// The account service: registration, the user of an access token, logout.
pub struct Accounts {
    store: Arc<Store>,
    homeserver: Arc<HomeserverClient>,
    config: AccountConfig,
}

impl Accounts {
    /// The service as configured (`account.*`).
    pub fn new(
        config: &AccountConfig,
        store: Arc<Store>,
        homeserver: Arc<HomeserverClient>,
    ) -> Accounts {
        Accounts {
            store,
            homeserver,
            config: config.clone(),
        }
    }

    /// Registers: verifies `openid` with its homeserver and returns a new access token.
    ///
    /// Errors: 400 `M_INVALID_PARAM` (bad server name, or one that resolves to an address this
    /// server may not contact); 403 `M_FORBIDDEN` (homeserver not allowed to register); 401
    /// `M_UNAUTHORIZED` (token rejected, or a user of another server); 502/504 when the
    /// homeserver cannot be reached.
    pub fn register(&self, openid: &OpenIdToken, now_ms: u64) -> Result<String> {
        let server = &openid.matrix_server_name;
        let allowed = &self.config.allowed_servers;
        if !allowed.is_empty() && !allowed.iter().any(|s| s.eq_ignore_ascii_case(server)) {
            return Err(Error::new(
                ErrorKind::Forbidden,
                "Users of this homeserver cannot register with this identity server",
            ));
        }
        if openid.access_token.is_empty() || openid.access_token.len() > 2048 {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                "access_token must be 1 to 2048 characters",
            ));
        }
        if openid.token_type.as_deref().is_some_and(|t| t != "Bearer") {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                "token_type must be Bearer",
            ));
        }
        let sub = self.userinfo(server, &openid.access_token)?;
        let token = random::token(32)?;
        self.store.put_token(
            &token,
            &AccountRecord {
                user_id: sub.clone(),
                created_ms: now_ms,
            },
        )?;
        self.store.durable()?;
        log::info!("registered {sub}");
        Ok(token)
    }

    /// The user `server` vouches for as the owner of an OpenID `access_token`: 401
    /// `M_UNAUTHORIZED` unless it is a valid user id of that very server.
    fn userinfo(&self, server: &str, access_token: &str) -> Result<String> {
        let path = format!(
            "/_matrix/federation/v1/openid/userinfo?access_token={}",
            url_encode(access_token)
        );
        let answer = self
            .homeserver
            .get_json(server, &path, Some(USERINFO_LIMIT))
            .map_err(|e| homeserver_error(server, e))?;
        let sub = answer.get("sub").and_then(|s| s.as_str()).unwrap_or("");
        // The whole user id is checked against the Matrix grammar (non-empty localpart of
        // printable ASCII, a valid server name, at most 255 bytes), not only its server part:
        // it is stored, logged and signed into bindings. Logged escaped, as it may be anything.
        if check_user_id(sub).ok() != Some(server) {
            log::info!("register: {server} vouched for {sub:?}, which is not a user of {server}");
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "The homeserver's answer does not name a user of that homeserver",
            ));
        }
        Ok(sub.to_string())
    }

    /// The user an access token belongs to.
    pub fn user_of(&self, token: &str) -> Result<Option<UserId>> {
        self.store
            .token_account(token)?
            .map(|a| UserId::try_from(a.user_id).map_err(Error::internal))
            .transpose()
    }

    /// Logs out: forgets the token. 401 `M_UNKNOWN_TOKEN` when it is not known.
    pub fn logout(&self, token: &str) -> Result<()> {
        if !self.store.delete_token(token)? {
            return Err(Error::new(ErrorKind::UnknownToken, "Unknown access token"));
        }
        self.store.durable()
    }
}

fn homeserver_error(server: &str, e: HsError) -> Error {
    match e {
        HsError::InvalidServerName(_) => Error::new(
            ErrorKind::InvalidParam,
            "matrix_server_name is not a valid server name",
        ),
        HsError::Refused(detail) => Error::new(
            ErrorKind::InvalidParam,
            "matrix_server_name resolves to an address this identity server may not contact",
        )
        .with_detail(detail),
        HsError::Status { status, .. } if (400..500).contains(&status) => Error::new(
            ErrorKind::Unauthorized,
            "The homeserver did not accept the OpenID token",
        )
        .with_detail(format_args!("{server} answered {status}")),
        HsError::Timeout(detail) => Error::new(
            ErrorKind::GatewayTimeout,
            "The homeserver did not answer in time",
        )
        .with_detail(detail),
        other => Error::new(ErrorKind::BadGateway, "The homeserver could not be reached")
            .with_detail(other),
    }
}
