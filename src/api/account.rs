//! Accounts: register with an OpenID token, who am I, logout.

use serde::Serialize;

use super::Empty;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::auth::access_token;
use crate::http::{Reply, Req};
use crate::service::accounts::OpenIdToken;

/// The answer of `register`: the token twice.
#[derive(Serialize)]
struct Registered<'a> {
    access_token: &'a str,
    token: &'a str,
}

/// The answer of `GET /account`.
#[derive(Serialize)]
struct Account<'a> {
    user_id: &'a str,
}

/// `POST /account/register`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2accountregister))
///
/// - v2 only, no auth. Body: the OpenID token object from the client's homeserver. Answers
///   `{"token", "access_token"}` (the same value; sydent's clients read the second name).
/// - 400 `M_INVALID_PARAM` (bad or non-contactable server name), `M_MISSING_PARAMS`; 403
///   `M_FORBIDDEN` (homeserver not allowed); 401 `M_UNAUTHORIZED` (token rejected, `sub` of
///   another server); 502 / 504 `M_UNKNOWN` (homeserver unreachable / too slow).
pub fn register(app: &App, req: &Req) -> Result<Reply> {
    let openid: OpenIdToken = req.json()?;
    let token = app.accounts.register(&openid, app.now_ms())?;
    Ok(Reply::ok(Registered {
        access_token: &token,
        token: &token,
    }))
}

/// `GET /account`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2account))
///
/// - v2, token and terms required; `{"user_id"}`. 401 `M_UNAUTHORIZED`, 403
///   `M_TERMS_NOT_SIGNED`.
pub fn get_account_information(_app: &App, req: &Req) -> Result<Reply> {
    let user = req
        .user
        .as_deref()
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Missing access token"))?;
    Ok(Reply::ok(Account { user_id: user }))
}

/// `POST /account/logout`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2accountlogout))
///
/// - v2; the token is required but never the terms (a user must always be able to log out);
///   the body may be absent. `{}`; 401 `M_UNKNOWN_TOKEN` for a missing or unknown token.
pub fn logout(app: &App, req: &Req) -> Result<Reply> {
    let token = access_token(req)
        .ok_or_else(|| Error::new(ErrorKind::UnknownToken, "Missing access token"))?;
    app.accounts.logout(token)?;
    Ok(Reply::ok(Empty {}))
}
