//! Authentication of v2 requests: the access token from `Authorization: Bearer` or the
//! `access_token` query parameter (Synapse still sends the query form), the account it
//! belongs to, and the terms-of-service gate. v1 requests are never authenticated.

use super::request::Req;
use super::routes::Mount;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::service::accounts;

/// What a route needs on the v2 mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Nothing.
    None,
    /// A valid access token.
    Token,
    /// A valid access token of a user who accepted the current terms.
    TokenAndTerms,
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
    if req.mount != Mount::V2 || auth == Auth::None {
        return Ok(());
    }
    let token = access_token(req).ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthorized,
            "Missing access token: register with /account/register first",
        )
    })?;
    let user = accounts::user_of(&app.store, token)?
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Unknown or expired access token"))?;
    if auth == Auth::TokenAndTerms && !app.terms.all_accepted(&app.store, &user)? {
        return Err(Error::new(
            ErrorKind::TermsNotSigned,
            "Accept the terms of service first (GET and POST /terms)",
        ));
    }
    req.user = Some(user);
    Ok(())
}
