//! Email validation: requestToken, and submitToken as JSON (POST) and from the browser (GET).

use serde::{Deserialize, Serialize};

use super::validation;
use crate::app::App;
use crate::error::Result;
use crate::http::{Reply, Req};
use crate::ids::ClientSecret;
use crate::service::sessions::TokenRequest;
use crate::threepid::params::{self, SendAttempt};
use crate::threepid::{Medium, email};

/// The body of `requestToken`.
#[derive(Deserialize)]
struct EmailTokenRequest {
    /// The client's secret for this session.
    client_secret: ClientSecret,
    /// The address to validate.
    email: String,
    /// The client's attempt counter: a message is sent only when it grows.
    send_attempt: SendAttempt,
    /// Where the browser goes after the link was clicked (http/https).
    next_link: Option<String>,
}

/// The answer of `requestToken`.
#[derive(Serialize)]
struct Session<'a> {
    sid: &'a str,
}

/// `POST /validate/email/requestToken`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2validateemailrequesttoken))
///
/// - v1 and v2; answers `{"sid"}`. The same (email, client_secret) gets the same sid; the email
///   is sent again only when `send_attempt` is higher than the last one sent.
/// - 403 `M_FORBIDDEN` when validation is disabled; 400 `M_INVALID_PARAM` (client_secret,
///   send_attempt, next_link), 400 `M_INVALID_EMAIL`, 400 `M_MISSING_PARAMS`; 429
///   `M_LIMIT_EXCEEDED`; 500 `M_EMAIL_SEND_ERROR`.
pub fn create_email_validation_session(app: &App, req: &Req) -> Result<Reply> {
    validation::check_enabled(app)?;
    let body: EmailTokenRequest = req.params()?;
    let address = email::normalise(&body.email)?;
    app.remote.check_request(Medium::Email, &address)?;
    if let Some(link) = &body.next_link {
        params::check_next_link(link, &app.config.session.next_link.allowed_hosts)?;
    }
    let requester = req.requester();
    let token_request = TokenRequest {
        medium: Medium::Email,
        address: &address,
        client_secret: &body.client_secret,
        send_attempt: body.send_attempt.0,
        next_link: body.next_link.as_deref(),
        requester: &requester,
        calling_code: None,
    };
    let session = app.sessions.request_token(&token_request, app.now_ms())?;
    Ok(Reply::ok(Session { sid: &session.sid }))
}

/// `POST /validate/email/submitToken`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2validateemailsubmittoken))
///
/// - v1 and v2; `{"success": true}`. Errors also carry `"success": false` for older clients.
/// - 403 `M_FORBIDDEN` when validation is disabled; 404 `M_NO_VALID_SESSION`; 400
///   `M_SESSION_EXPIRED`, `M_TOKEN_INCORRECT`, `M_INVALID_PARAM`, `M_MISSING_PARAMS`.
pub fn validate_email(app: &App, req: &Req) -> Result<Reply> {
    validation::submit_token_json(app, req, Medium::Email)
}

/// `GET /validate/email/submitToken?sid&client_secret&token`: the link in the email
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2validateemailsubmittoken))
///
/// - v1 and v2, no auth (a browser cannot send a token).
/// - success: 302 to the session's stored `next_link` (with `sid` added), or 200 HTML page;
///   failure: 4xx HTML page saying what to do next.
pub fn validate_email_by_end_user(app: &App, req: &Req) -> Result<Reply> {
    Ok(validation::submit_token_page(app, req, Medium::Email))
}
