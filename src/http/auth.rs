//! Authentication of v2 requests: the access token from `Authorization: Bearer` or the
//! `access_token` query parameter (Synapse still sends the query form), the account it
//! belongs to, and the terms-of-service gate. v1 requests are never authenticated.

use super::request::Req;
use super::routes::Mount;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};

/// What a route needs on the v2 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Nothing.
    None,
    /// A valid access token.
    Token,
    /// A valid access token of a user who accepted the current terms.
    TokenAndTerms,
    /// The admin listener's token (`admin.token`), checked from the headers before the body
    /// is read ([`admin_token_ok`]).
    AdminToken,
    /// `auth.sharedSecret` when one is set (the homeserver's password checks), checked from the
    /// headers before the body is read.
    AuthSecret,
}

/// Whether an `Authorization` header value carries the admin token: the scheme compared
/// without regard to case, the token in constant time.
pub fn admin_token_ok(authorization: Option<&str>, token: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let mut parts = value.trim().splitn(2, ' ');
    match (parts.next(), parts.next()) {
        (Some(scheme), Some(given)) if scheme.eq_ignore_ascii_case("bearer") => {
            crate::crypto::random::constant_time_eq(given.trim().as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

/// The access token of a request, if it carries one.
pub fn access_token(req: &Req) -> Option<&str> {
    if let Some(value) = req.header("authorization") {
        let mut parts = value.splitn(2, ' ');
        if let (Some(scheme), Some(token)) = (parts.next(), parts.next())
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Some(token.trim());
        }
    }
    req.query("access_token").filter(|t| !t.is_empty())
}

/// Applies `auth` to `req` and records the user: 401 `M_UNAUTHORIZED` without a valid token,
/// 403 `M_TERMS_NOT_SIGNED` while terms are not accepted.
pub fn authenticate(app: &App, req: &mut Req, auth: Auth) -> Result<()> {
    // The admin token was checked by the transport, from the headers, before the body.
    if req.mount != Mount::V2 || matches!(auth, Auth::None | Auth::AdminToken | Auth::AuthSecret) {
        return Ok(());
    }
    let token = access_token(req).ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthorized,
            "Missing access token: register with /account/register first",
        )
    })?;
    let user = app
        .accounts
        .user_of(token)?
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Unknown or expired access token"))?;
    if auth == Auth::TokenAndTerms && !app.terms.all_accepted(&user)? {
        return Err(Error::new(
            ErrorKind::TermsNotSigned,
            "Accept the terms of service first (GET and POST /terms)",
        ));
    }
    req.user = Some(user);
    Ok(())
}
