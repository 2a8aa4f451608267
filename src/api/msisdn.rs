//! Phone number validation: requestToken (an SMS with a code), and submitToken as JSON (POST)
//! and from a browser (GET).

use serde::{Deserialize, Serialize};

use super::validation;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::ids::ClientSecret;
use crate::service::sessions::TokenRequest;
use crate::threepid::params::{self, SendAttempt};
use crate::threepid::{Medium, msisdn};

/// The body of `requestToken`.
#[derive(Deserialize)]
struct MsisdnTokenRequest {
    /// The client's secret for this session.
    client_secret: ClientSecret,
    /// ISO 3166 alpha-2 code of the country the number is dialled from.
    country: String,
    /// The number as the user typed it.
    phone_number: String,
    /// The client's attempt counter: an SMS is sent only when it grows.
    send_attempt: SendAttempt,
    /// Where the browser goes after a validation link (http/https).
    next_link: Option<String>,
}

/// The answer of `requestToken`.
#[derive(Serialize)]
struct Session<'a> {
    /// The number in international format, for people.
    intl_fmt: &'a str,
    /// The number's E.164 digits.
    msisdn: &'a str,
    sid: &'a str,
    /// For older clients.
    success: bool,
}

/// `POST /validate/msisdn/requestToken`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2validatemsisdnrequesttoken))
///
/// - v1 (Synapse's `account_threepid_delegates.msisdn` calls it without auth) and v2; answers
///   `{"sid", "msisdn", "intl_fmt"}`. The same (number, client_secret) gets the same sid; an
///   SMS is sent again only when `send_attempt` is higher than the last one sent.
/// - 403 `M_FORBIDDEN` when validation is disabled; 400 `M_INVALID_ADDRESS` (not a valid
///   number), 400 `M_INVALID_PARAM` (country, client_secret, send_attempt, next_link), 400
///   `M_MISSING_PARAMS`; 400 `M_DESTINATION_REJECTED` (country not allowed, a premium-rate,
///   shared-cost or UAN number not allowed by `allowNumberTypes`, or refused by the provider);
///   429 `M_LIMIT_EXCEEDED`; 500 `M_SEND_ERROR`.
pub fn create_msisdn_validation_session(app: &App, req: &Req) -> Result<Reply> {
    validation::check_enabled(app)?;
    let body: MsisdnTokenRequest = req.params()?;
    let number = msisdn::normalise(&body.country, &body.phone_number)?;
    app.remote.check_request(Medium::Msisdn, &number.digits)?;
    if let Some(link) = &body.next_link {
        params::check_next_link(link, &app.config.session.next_link.allowed_hosts)?;
    }
    let config = &app.config.threepid.medium.msisdn;
    let allowed = &config.allowed_countries;
    if !allowed.is_empty() && !number.region.as_ref().is_some_and(|r| allowed.contains(r)) {
        return Err(Error::new(
            ErrorKind::DestinationRejected,
            "This server does not send SMS to that country",
        ));
    }
    // SMS pumping: texts to these numbers earn their owner money, whatever the country.
    if let Some(kind) = number.costly
        && !config.allow_number_types.contains(&kind)
    {
        return Err(Error::new(
            ErrorKind::DestinationRejected,
            format!(
                "This server does not send SMS to {} numbers",
                kind.describe()
            ),
        ));
    }
    let requester = req.requester();
    let token_request = TokenRequest {
        medium: Medium::Msisdn,
        address: &number.digits,
        client_secret: &body.client_secret,
        send_attempt: body.send_attempt.0,
        next_link: body.next_link.as_deref(),
        requester: &requester,
        calling_code: Some(number.calling_code),
    };
    let session = app.sessions.request_token(&token_request, app.now_ms())?;
    Ok(Reply::ok(Session {
        intl_fmt: &number.international,
        msisdn: &number.digits,
        sid: &session.sid,
        success: true,
    }))
}

/// `POST /validate/msisdn/submitToken`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2validatemsisdnsubmittoken))
///
/// - v1 and v2; `{"success": true}`. Errors also carry `"success": false` for older clients.
/// - 403 `M_FORBIDDEN` when validation is disabled; 404 `M_NO_VALID_SESSION`; 400
///   `M_SESSION_EXPIRED`, `M_TOKEN_INCORRECT` (also once locked after too many wrong codes),
///   `M_INVALID_PARAM`, `M_MISSING_PARAMS`.
pub fn validate_msisdn(app: &App, req: &Req) -> Result<Reply> {
    validation::submit_token_json(app, req, Medium::Msisdn)
}

/// `GET /validate/msisdn/submitToken?sid&client_secret&token`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2validatemsisdnsubmittoken))
///
/// - v1 and v2, no auth; success: 302 to the stored `next_link` (with `sid`) or 200 HTML page;
///   failure: 4xx HTML page saying what to do next.
pub fn validate_msisdn_by_phone_number(app: &App, req: &Req) -> Result<Reply> {
    Ok(validation::submit_token_page(app, req, Medium::Msisdn))
}
