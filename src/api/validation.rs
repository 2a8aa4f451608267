//! What the email and phone validation endpoints share: the policy switch, token submission
//! (JSON and browser page) and getValidated3pid.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::ids::{ClientSecret, SessionId};
use crate::store::sessions::SessionRecord;
use crate::threepid::{Medium, params};
use crate::views::Failure;

/// 403 `M_FORBIDDEN` when `session.policy.validation.enabled` is false.
pub fn check_enabled(app: &App) -> Result<()> {
    if app.config.session.policy.validation.enabled {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Forbidden,
            "Validating 3PIDs is disabled on this identity server",
        ))
    }
}

/// The body of `submitToken`.
#[derive(Deserialize)]
struct SubmitTokenRequest {
    /// The session id.
    sid: SessionId,
    /// The client's secret.
    client_secret: ClientSecret,
    /// The token the user received.
    token: String,
}

/// 400 `M_INVALID_PARAM` unless the token is 1 to 255 characters.
fn check_token(token: &str) -> Result<()> {
    if token.is_empty() || token.chars().count() > 255 {
        return Err(Error::new(
            ErrorKind::InvalidParam,
            "The token must be 1 to 255 characters",
        ));
    }
    Ok(())
}

fn submit(
    app: &App,
    medium: Medium,
    sid: &SessionId,
    client_secret: &ClientSecret,
    token: &str,
) -> Result<SessionRecord> {
    check_enabled(app)?;
    check_token(token)?;
    app.sessions
        .submit_token(medium, sid, client_secret, token, app.now_ms())
}

/// [`submit`] from the query of the link: checked in the order of the JSON form's checks
/// (the policy, the client secret, the token, then the sid as the session lookup does).
fn submit_link(
    app: &App,
    medium: Medium,
    sid: &str,
    client_secret: &str,
    token: &str,
) -> Result<SessionRecord> {
    check_enabled(app)?;
    let client_secret = ClientSecret::parse(client_secret)?;
    check_token(token)?;
    submit(app, medium, &SessionId::parse(sid)?, &client_secret, token)
}

/// The answer of POST submitToken.
#[derive(Serialize)]
struct Submitted {
    success: bool,
}

/// The answer of getValidated3pid.
#[derive(Serialize)]
struct Validated<'a> {
    address: &'a str,
    medium: &'a str,
    validated_at: Option<u64>,
}

/// POST submitToken: `{"success": true}`, or the error with `"success": false`.
pub fn submit_token_json(app: &App, req: &Req, medium: Medium) -> Result<Reply> {
    let result = req
        .params::<SubmitTokenRequest>()
        .and_then(|b| submit(app, medium, &b.sid, &b.client_secret, &b.token));
    match result {
        Ok(_) => Ok(Reply::ok(Submitted { success: true })),
        Err(e) => Err(e.with_extra("success", false)),
    }
}

/// GET submitToken: a redirect to the stored next_link, a success page, or a failure page.
pub fn submit_token_page(app: &App, req: &Req, medium: Medium) -> Reply {
    let query = |name| req.query(name).unwrap_or("");
    let (sid, secret, token) = (query("sid"), query("client_secret"), query("token"));
    let result = if sid.is_empty() || secret.is_empty() || token.is_empty() {
        Err(Error::new(
            ErrorKind::MissingParams,
            "The link is incomplete",
        ))
    } else {
        submit_link(app, medium, sid, secret, token)
    };
    match result {
        Ok(session) => {
            let next = session
                .next_link
                .as_deref()
                .map(|link| params::with_sid(link, &session.sid));
            match app.remote.upstream_for(session.medium, &session.address) {
                Some(upstream) => Reply::Html(
                    200,
                    super::remote::offer_page(app, &session, upstream, next),
                ),
                None => match next {
                    Some(next) => Reply::Redirect(next),
                    None => Reply::Html(200, app.views.submit_success()),
                },
            }
        }
        Err(e) => {
            if e.kind() == ErrorKind::Internal {
                log::error!("validation link failed: {e}");
            }
            Reply::Html(
                e.status(),
                app.views.submit_failure(&failure_for(&e, medium)),
            )
        }
    }
}

fn failure_for(e: &Error, medium: Medium) -> Failure {
    let again = match medium {
        Medium::Email => {
            "Go back to your Matrix client and ask it to send a new verification email."
        }
        Medium::Msisdn => "Go back to your Matrix client and ask it to send a new code.",
    };
    let (title, message, hint) = match e.kind() {
        ErrorKind::SessionExpired => (
            "This link has expired",
            "Verification links work for a limited time only.",
            again,
        ),
        ErrorKind::TokenIncorrect => ("This link is not valid", e.message(), again),
        ErrorKind::NoValidSession => (
            "This link is not valid",
            "No verification is waiting for this link: it may be incomplete, or already replaced by a newer one.",
            "Open the link from the most recent message, or ask your Matrix client to send a new one.",
        ),
        ErrorKind::MissingParams | ErrorKind::InvalidParam => (
            "This link is incomplete",
            "Part of the link is missing or damaged, perhaps because it was split across lines.",
            "Copy the whole link from the message into your browser, or ask your Matrix client to send a new one.",
        ),
        ErrorKind::Forbidden => (
            "Verification is disabled",
            e.message(),
            "Contact the administrator of this server.",
        ),
        _ => (
            "Something went wrong",
            "The server could not complete the verification.",
            "Try the link again in a few minutes.",
        ),
    };
    Failure {
        title: title.into(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// `GET /3pid/getValidated3pid?sid&client_secret`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv23pidgetvalidated3pid))
///
/// - v1 (called by Synapse without auth) and v2; `{medium, address, validated_at}`.
/// - 404 `M_NO_VALID_SESSION`, 400 `M_SESSION_EXPIRED`, 400 `M_SESSION_NOT_VALIDATED`, in that
///   order; 400 `M_MISSING_PARAMS`, `M_INVALID_PARAM`.
pub fn check_3pid_validity(app: &App, req: &Req) -> Result<Reply> {
    let sid = req.required_query("sid")?;
    let secret = req.required_query("client_secret")?;
    let secret = ClientSecret::parse(secret)?;
    let s = app
        .sessions
        .validated(&SessionId::parse(sid)?, &secret, app.now_ms())?;
    Ok(Reply::ok(Validated {
        address: &s.address,
        medium: s.medium.as_str(),
        validated_at: s.validated_ms,
    }))
}
