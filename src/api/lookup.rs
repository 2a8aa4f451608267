//! Lookups: v2 hash details and hashed lookups, v1 single and bulk plain lookups.

use serde::{Deserialize, Serialize, Serializer};

use super::Empty;
use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};
use crate::service::lookup::Found;

/// The key of a request's client in `lookup.rateLimit.perClient`: its address, as the other
/// per-client limits count it (behind `server.trustedProxies`, from `X-Forwarded-For`).
/// Authenticated or not: an access token costs nothing to get.
fn client(req: &Req) -> String {
    format!("ip:{}", req.client_ip)
}

/// The answer of `hash_details`.
#[derive(Serialize)]
struct HashDetails<'a> {
    algorithms: &'a [&'static str],
    lookup_pepper: &'a str,
}

/// `GET /hash_details`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2hash_details))
///
/// - v2, token (header or `access_token` query, as Synapse sends it) and terms;
///   `{lookup_pepper, algorithms}`.
pub fn get_hash_parameters(app: &App, _req: &Req) -> Result<Reply> {
    let details = app.lookups.hash_details();
    Ok(Reply::ok(HashDetails {
        algorithms: &details.algorithms,
        lookup_pepper: &details.lookup_pepper,
    }))
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

/// The answer of a v2 lookup.
#[derive(Serialize)]
struct Mappings<'a> {
    /// The entries found, as sent, and their users.
    #[serde(serialize_with = "mappings")]
    mappings: (&'a [String], &'a [Found]),
}

/// `{<entry as sent>: <mxid>}`, in the order found (the service gives them sorted, each once).
fn mappings<S: Serializer>(
    (sent, found): &(&[String], &[Found]),
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_map(found.iter().map(|f| (&sent[f.index], &f.mxid)))
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
    let found = app.lookups.lookup_v2(
        &client(req),
        &body.algorithm,
        &body.pepper,
        &body.addresses,
        app.now_ms(),
    )?;
    Ok(Reply::ok(Mappings {
        mappings: (&body.addresses, &found),
    }))
}

/// `GET /_matrix/identity/api/v1/lookup?medium&address`
///
/// - v1 only, no auth; the signed association, or `{}`. An email of a foreign domain that no
///   local store knows is asked at that domain's identity server (`lookup.federation`).
/// - 400 `M_MISSING_PARAMS`, `M_INVALID_PARAM`; 429 `M_LIMIT_EXCEEDED`
///   (`lookup.rateLimit.perClient`: one address).
pub fn lookup_v1(app: &App, req: &Req) -> Result<Reply> {
    let association = app.lookups.lookup_v1(
        &client(req),
        req.required_query("medium")?,
        req.required_query("address")?,
        app.now_ms(),
    )?;
    Ok(match association {
        Some(signed) => Reply::ok(signed),
        None => Reply::ok(Empty {}),
    })
}

/// The body of a v1 bulk lookup.
#[derive(Deserialize)]
struct BulkLookupRequest {
    /// `[medium, address]` pairs.
    threepids: Vec<Vec<String>>,
}

/// The answer of a v1 bulk lookup.
#[derive(Serialize)]
struct Triples<'a> {
    /// `[medium, address, mxid]` of each pair found.
    #[serde(serialize_with = "triples")]
    threepids: (&'a [[String; 2]], &'a [Found]),
}

/// `[[medium, address, mxid], ...]`, the pairs as sent.
fn triples<S: Serializer>(
    (sent, found): &(&[[String; 2]], &[Found]),
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(found.iter().map(|f| {
        let [medium, address] = &sent[f.index];
        (medium, address, &f.mxid)
    }))
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
    let found = app
        .lookups
        .bulk_lookup_v1(&client(req), &pairs, app.now_ms())?;
    Ok(Reply::ok(Triples {
        threepids: (&pairs, &found),
    }))
}
