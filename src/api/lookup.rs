//! Lookups: v2 hash details and hashed lookups, v1 single and bulk plain lookups.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::service::bindings::normalise_threepid;
use crate::service::lookup::signed_association;
use crate::threepid::Medium;

/// `GET /hash_details`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2hash_details))
///
/// - v2, token (header or `access_token` query, as Synapse sends it) and terms;
///   `{lookup_pepper, algorithms}`.
pub fn get_hash_parameters(app: &App, _req: &Req) -> Result<Reply> {
    Ok(Reply::ok(json!({
        "lookup_pepper": app.peppers.current().pepper,
        "algorithms": app.lookups.algorithms(),
    })))
}

/// The body of a v2 lookup.
#[derive(Deserialize)]
struct LookupRequest {
    /// `sha256` or `none`.
    algorithm: String,
    /// The current pepper.
    pepper: String,
    /// Hashes, or `"<address> <medium>"` strings.
    addresses: Vec<String>,
}

/// `POST /lookup`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2lookup))
///
/// - v2, token and terms; `{"mappings": {<address as sent>: <mxid>}}`.
/// - 400 `M_INVALID_PEPPER` (with `algorithm` and `lookup_pepper`), `M_INVALID_PARAM`
///   (algorithm), `M_MISSING_PARAMS`; 413 `M_TOO_LARGE` (`lookup.maxAddresses`).
pub fn lookup_3pid(app: &App, req: &Req) -> Result<Reply> {
    let body: LookupRequest = req.json()?;
    let answer = app.lookups.lookup_v2(
        &app.store,
        &app.peppers,
        &body.algorithm,
        &body.pepper,
        &body.addresses,
        app.now_ms(),
    )?;
    Ok(Reply::ok(answer))
}

/// `GET /_matrix/identity/api/v1/lookup?medium&address`
///
/// - v1 only, no auth; the signed association, or `{}`. An email of a foreign domain that no
///   local store knows is asked at that domain's identity server (`lookup.federation`).
/// - 400 `M_MISSING_PARAMS`, `M_INVALID_PARAM`.
pub fn lookup_v1(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = normalise_threepid(
        req.required_query("medium")?,
        req.required_query("address")?,
    )?;
    let now = app.now_ms();
    crate::metrics::METRICS.lookups.inc();
    if let Some(b) = app
        .lookups
        .find(&app.store, medium.as_str(), &address, now)?
    {
        crate::metrics::METRICS.lookup_hits.inc();
        let assoc = signed_association(&b, &app.config.server.name, &app.keys.signing())?;
        return Ok(Reply::ok(assoc));
    }
    if medium == Medium::Email
        && let Some(federation) = &app.federation
        && let Some(remote) = federation.lookup_email(&app.homeserver, &address, now)
    {
        return Ok(Reply::ok(remote));
    }
    Ok(Reply::ok(json!({})))
}

/// The body of a v1 bulk lookup.
#[derive(Deserialize)]
struct BulkLookupRequest {
    /// `[medium, address]` pairs.
    threepids: Vec<Vec<String>>,
}

/// `POST /_matrix/identity/api/v1/bulk_lookup`
///
/// - v1 only, no auth; `{"threepids": [[medium, address, mxid], ...]}` for the found ones,
///   duplicates removed.
/// - 400 `M_INVALID_PARAM` (not pairs), `M_MISSING_PARAMS`; 413 `M_TOO_LARGE`.
pub fn bulk_lookup_v1(app: &App, req: &Req) -> Result<Reply> {
    let body: BulkLookupRequest = req.json()?;
    let mut pairs = Vec::with_capacity(body.threepids.len());
    for entry in &body.threepids {
        let [medium, address] = entry.as_slice() else {
            return Err(Error::new(
                ErrorKind::InvalidParam,
                "threepids must be [medium, address] pairs",
            ));
        };
        // Unknown media and impossible addresses simply are not found.
        if let Ok((m, a)) = normalise_threepid(medium, address) {
            pairs.push((
                (medium.clone(), address.clone()),
                (m.as_str().to_string(), a),
            ));
        }
    }
    let now = app.now_ms();
    let mut answer: Value = app.lookups.bulk_lookup_v1(&app.store, &pairs, now)?;
    if app.config.lookup.federation.bulk
        && let Some(federation) = &app.federation
        && let Some(found) = answer["threepids"].as_array_mut()
    {
        // Emails nobody here knows are asked at their domain's identity server, one by one.
        let mut asked = Vec::new();
        for ((medium, address), (m, a)) in &pairs {
            let known = found.iter().any(|t| t[0] == *medium && t[1] == *address);
            if m != "email" || known || asked.contains(a) {
                continue;
            }
            asked.push(a.clone());
            if let Some(remote) = federation.lookup_email(&app.homeserver, a, now)
                && let Some(mxid) = remote.get("mxid").and_then(Value::as_str)
            {
                found.push(json!([medium, address, mxid]));
            }
        }
    }
    Ok(Reply::ok(answer))
}
