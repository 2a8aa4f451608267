//! Terms of service: the current policies, and accepting them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Empty;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};

/// The answer of `GET /terms`.
#[derive(Serialize)]
struct Policies<'a> {
    /// Policy id -> its version and one document per language, keys in order.
    policies: BTreeMap<&'a str, BTreeMap<&'a str, PolicyEntry<'a>>>,
}

/// A value in a policy: its `version`, or the document of a language.
#[derive(Serialize)]
#[serde(untagged)]
enum PolicyEntry<'a> {
    Version(&'a str),
    Document { name: &'a str, url: &'a str },
}

/// `GET /terms`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2terms))
///
/// - v2, no auth; `{"policies": {id: {version, <lang>: {name, url}}}}`, empty without policies.
pub fn get_terms_of_service(app: &App, _req: &Req) -> Result<Reply> {
    let policies = app
        .terms
        .policies()
        .iter()
        .map(|(id, policy)| {
            let mut entry = BTreeMap::new();
            entry.insert("version", PolicyEntry::Version(&policy.version));
            for (lang, doc) in &policy.terms {
                let document = PolicyEntry::Document {
                    name: &doc.name,
                    url: &doc.url,
                };
                entry.insert(lang.as_str(), document);
            }
            (id.as_str(), entry)
        })
        .collect();
    Ok(Reply::ok(Policies { policies }))
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
    app.terms.accept(user, &body.user_accepts)?;
    Ok(Reply::ok(Empty {}))
}
