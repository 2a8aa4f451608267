//! Publishing and removing 3PID bindings: bind and unbind.

use serde::Deserialize;
use serde_json::Value;

use super::Empty;
use crate::app::App;
use crate::error::Result;
use crate::http::{Reply, Req};
use crate::ids::{SessionId, UserId};
use crate::service::bindings::Unbind;
use crate::service::xmatrix::parse_header;
use crate::threepid::Medium;

/// The body of `bind`.
#[derive(Deserialize)]
struct BindRequest {
    /// The validated session.
    sid: SessionId,
    /// Its client secret.
    client_secret: String,
    /// The user to bind to.
    mxid: UserId,
}

/// `POST /3pid/bind`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv23pidbind))
///
/// - v1 (no auth) and v2 (token and terms; `mxid` must be the token's user). Answers the signed
///   association `{address, medium, mxid, not_before, not_after, ts, signatures}`.
/// - 404 `M_NO_VALID_SESSION`; 400 `M_SESSION_EXPIRED`, `M_SESSION_NOT_VALIDATED`,
///   `M_INVALID_PARAM`, `M_MISSING_PARAMS`; 403 `M_UNAUTHORIZED` (v2, another user's `mxid`),
///   `M_FORBIDDEN` (homeserver not allowed).
pub fn bind_3pid(app: &App, req: &Req) -> Result<Reply> {
    let body: BindRequest = req.params()?;
    let association = app.bindings.bind(
        &body.sid,
        &body.client_secret,
        &body.mxid,
        req.user.as_ref(),
        app.now_ms(),
    )?;
    Ok(Reply::ok(association))
}

/// A 3PID in a request.
#[derive(Deserialize)]
struct ThreePid {
    /// `email` or `msisdn`.
    medium: Medium,
    /// The address.
    address: String,
}

/// The body of `unbind`.
#[derive(Deserialize)]
struct UnbindRequest {
    /// The user the 3PID is bound to.
    mxid: UserId,
    /// The 3PID.
    threepid: ThreePid,
    /// A validated session for the 3PID (with `client_secret`).
    sid: Option<String>,
    /// The session's secret.
    client_secret: Option<String>,
}

/// `POST /3pid/unbind`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv23pidunbind))
///
/// - v1 and v2, no Bearer token and no terms: the proof is a validated session for the 3PID
///   (`sid` + `client_secret`) or an `X-Matrix` signature of the mxid's homeserver. `{}`, also
///   when nothing was bound.
/// - 403 `M_FORBIDDEN` for anything else (the 3PID's owner is warned, by policy); 400
///   `M_INVALID_PARAM`, `M_MISSING_PARAMS`; 502 when the homeserver's key cannot be fetched.
pub fn unbind_3pid(app: &App, req: &Req) -> Result<Reply> {
    let body: UnbindRequest = req.json()?;
    let content: Value = serde_json::from_slice(if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    })
    .unwrap_or(Value::Null);
    let signed = req
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .find_map(|(_, v)| parse_header(v))
        .map(|auth| (auth, "POST", req.target.as_str(), &content));
    let session = match (&body.sid, &body.client_secret) {
        (Some(sid), Some(secret)) => Some((sid.as_str(), secret.as_str())),
        _ => None,
    };
    let unbind = Unbind {
        mxid: &body.mxid,
        medium: body.threepid.medium,
        address: &body.threepid.address,
        session,
        signed: if session.is_none() { signed } else { None },
    };
    app.bindings.unbind(&unbind, app.now_ms())?;
    Ok(Reply::ok(Empty {}))
}
