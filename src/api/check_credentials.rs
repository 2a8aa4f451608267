//! `POST /_matrix-internal/identity/v1/check_credentials`: the homeserver asks whether a
//! user's password is right (mxisd's REST password provider protocol), against the directory
//! of `stores.ldap`. Served on the `auth.*` listener (and on the public one with `auth.public`),
//! behind `auth.sharedSecret` when set.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::service::directory::password::Outcome;

/// The body: `{"user": {"id": "@alice:example.org", "password": "..."}}`.
#[derive(Deserialize)]
struct CheckBody {
    user: Credentials,
}

/// The user and password.
#[derive(Deserialize)]
struct Credentials {
    /// A user id (`@alice:example.org`) or a bare localpart.
    id: String,
    /// Never logged.
    password: String,
}

/// The answer: `{"auth": {...}}`.
#[derive(Serialize)]
struct Answer {
    auth: AuthAnswer,
}

/// `{"success": false}`, or the user and their profile.
#[derive(Serialize)]
struct AuthAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    mxid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Profile>,
    success: bool,
}

/// What the directory says of the user.
#[derive(Serialize)]
struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    three_pids: Vec<ThreePid>,
}

/// One 3PID (msisdn as E.164 digits, as Matrix writes them).
#[derive(Serialize)]
struct ThreePid {
    address: String,
    medium: &'static str,
}

/// Longest user id accepted.
const MAX_ID: usize = 255;

/// `POST /_matrix-internal/identity/v1/check_credentials`
///
/// - 200 `{"auth": {"success": true, "mxid", "profile": {"display_name", "three_pids"}}}` or
///   `{"auth": {"success": false}}` (unknown user and wrong password alike);
/// - 429 `M_LIMIT_EXCEEDED` after too many failed checks of the user or from the client;
/// - 502 when the directory cannot be asked; 404 when `auth` is not enabled.
pub fn check_credentials(app: &App, req: &Req) -> Result<Reply> {
    let Some(passwords) = app.directory.as_ref().and_then(|d| d.passwords.as_ref()) else {
        return Err(Error::new(
            ErrorKind::Unrecognized,
            "Password checks are not enabled (auth.enabled)",
        ));
    };
    let body: CheckBody = req.json()?;
    if body.user.id.len() > MAX_ID {
        return Err(Error::new(ErrorKind::InvalidParam, "user.id is too long"));
    }
    let outcome = passwords.check(
        &body.user.id,
        &body.user.password,
        req.client_ip,
        app.now_ms(),
    )?;
    let auth = match outcome {
        Outcome::Refused => AuthAnswer {
            mxid: None,
            profile: None,
            success: false,
        },
        Outcome::Accepted(person) => AuthAnswer {
            profile: Some(Profile {
                display_name: person.display_name,
                three_pids: person
                    .threepids
                    .into_iter()
                    .map(|(medium, address)| ThreePid {
                        address,
                        medium: medium.as_str(),
                    })
                    .collect(),
            }),
            mxid: Some(person.mxid),
            success: true,
        },
    };
    Ok(Reply::ok(Answer { auth }))
}
