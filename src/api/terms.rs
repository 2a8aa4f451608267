//! Terms of service: the current policies, and accepting them.

use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};

/// `GET /terms`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2terms))
///
/// - v2, no auth; `{"policies": {id: {version, <lang>: {name, url}}}}`, empty without policies.
pub fn get_terms_of_service(app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(app.terms.document()))
}

/// The body of `POST /terms`.
#[derive(Deserialize)]
struct AcceptTerms {
    /// URLs of the documents the user accepts.
    user_accepts: Vec<String>,
}

/// `POST /terms`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2terms))
///
/// - v2, token required (never the terms themselves); adds to what the user accepted; `{}`.
/// - 400 `M_INVALID_PARAM` for a URL that is not a current policy document,
///   `M_MISSING_PARAMS`; 401 `M_UNAUTHORIZED`.
pub fn accept_terms_of_service(app: &App, req: &Req) -> Result<Reply> {
    let user = req
        .user
        .as_deref()
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, "Missing access token"))?;
    let body: AcceptTerms = req.json()?;
    if body.user_accepts.len() > 100 {
        return Err(Error::new(ErrorKind::InvalidParam, "Too many URLs"));
    }
    app.terms.accept(&app.store, user, &body.user_accepts)?;
    Ok(Reply::ok(json!({})))
}
