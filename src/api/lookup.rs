//! Lookups: v2 hash details and hashed lookups, v1 single and bulk plain lookups.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::service::bindings::normalise_threepid;
use crate::service::lookup::{ThreePid, signed_association};
use crate::threepid::Medium;

/// The key of a request's client in `lookup.rateLimit.perClient`: its address, as the other
/// per-client limits count it (behind `server.trustedProxies`, from `X-Forwarded-For`).
/// Authenticated or not: an access token costs nothing to get.
fn client(req: &Req) -> String {
    format!("ip:{}", req.client_ip)
}

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
///   (algorithm), `M_MISSING_PARAMS`; 413 `M_TOO_LARGE` (`lookup.maxAddresses`); 429
///   `M_LIMIT_EXCEEDED` (`lookup.rateLimit.perClient`, counted in addresses).
pub fn lookup_3pid(app: &App, req: &Req) -> Result<Reply> {
    let body: LookupRequest = req.json()?;
    let now = app.now_ms();
    // A stale pepper or an unknown algorithm is refused without counting anything.
    app.lookups
        .check_v2(&app.peppers, &body.algorithm, &body.pepper)?;
    app.lookups.admit(&client(req), body.addresses.len(), now)?;
    let answer = app.lookups.lookup_v2(
        &app.store,
        &app.peppers,
        &body.algorithm,
        &body.pepper,
        &body.addresses,
        now,
    )?;
    Ok(Reply::ok(answer))
}

/// `GET /_matrix/identity/api/v1/lookup?medium&address`
///
/// - v1 only, no auth; the signed association, or `{}`. An email of a foreign domain that no
///   local store knows is asked at that domain's identity server (`lookup.federation`).
/// - 400 `M_MISSING_PARAMS`, `M_INVALID_PARAM`; 429 `M_LIMIT_EXCEEDED`
///   (`lookup.rateLimit.perClient`: one address).
pub fn lookup_v1(app: &App, req: &Req) -> Result<Reply> {
    let (medium, address) = normalise_threepid(
        req.required_query("medium")?,
        req.required_query("address")?,
    )?;
    let now = app.now_ms();
    app.lookups.admit(&client(req), 1, now)?;
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
/// - v1 only, no auth; `{"threepids": [[medium, address, mxid], ...]}` for the found ones, as
///   sent and in request order; a pair sent again (the same strings) is answered once. With
///   `lookup.federation.bulk`, emails found at their domain's identity server follow.
/// - 400 `M_INVALID_PARAM` (not pairs), `M_MISSING_PARAMS`; 413 `M_TOO_LARGE`; 429
///   `M_LIMIT_EXCEEDED` (`lookup.rateLimit.perClient`, counted in pairs).
pub fn bulk_lookup_v1(app: &App, req: &Req) -> Result<Reply> {
    let body: BulkLookupRequest = req.json()?;
    let pairs = body
        .threepids
        .into_iter()
        .map(|entry| {
            <[String; 2]>::try_from(entry).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidParam,
                    "threepids must be [medium, address] pairs",
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let now = app.now_ms();
    // Admitted before any address is looked at (normalising is work too).
    app.lookups.admit(&client(req), pairs.len(), now)?;
    let (mut sent, mut normalised): (Vec<ThreePid>, Vec<ThreePid>) = (
        Vec::with_capacity(pairs.len()),
        Vec::with_capacity(pairs.len()),
    );
    for [medium, address] in pairs {
        // Unknown media and impossible addresses simply are not found.
        if let Ok((m, a)) = normalise_threepid(&medium, &address) {
            sent.push((medium, address));
            normalised.push((m.as_str().to_string(), a));
        }
    }
    let found = app
        .lookups
        .bulk_lookup_v1(&app.store, &sent, &normalised, now)?;
    let mut triples: Vec<Value> = found
        .iter()
        .map(|(i, mxid)| json!([sent[*i].0, sent[*i].1, mxid]))
        .collect();
    if app.config.lookup.federation.bulk
        && let Some(federation) = &app.federation
    {
        // Emails nobody here knows are asked at their domain's identity server, one by one;
        // each address once, whatever its spellings.
        let known: HashSet<&ThreePid> = found.iter().map(|(i, _)| &sent[*i]).collect();
        let mut asked: HashSet<&str> = HashSet::new();
        for (threepid, (m, a)) in sent.iter().zip(&normalised) {
            if m != "email" || known.contains(threepid) || !asked.insert(a.as_str()) {
                continue;
            }
            if let Some(remote) = federation.lookup_email(&app.homeserver, a, now)
                && let Some(mxid) = remote.get("mxid").and_then(Value::as_str)
            {
                triples.push(json!([threepid.0, threepid.1, mxid]));
            }
        }
    }
    Ok(Reply::ok(json!({ "threepids": triples })))
}
