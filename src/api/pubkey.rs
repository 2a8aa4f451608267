//! Public keys: the long-term signing keys and the validity checks homeservers call through the
//! `key_validity_url` of 3PID invites.

use serde::Serialize;

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Reply, Req};

/// The answer of `GET /pubkey/{keyId}`.
#[derive(Serialize)]
struct PublicKey {
    public_key: String,
}

/// The answer of the validity checks.
#[derive(Serialize)]
struct Validity {
    valid: bool,
}

/// `GET /pubkey/{keyId}`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2pubkeykeyid))
///
/// - no auth; `keyId` is percent-decoded (`ed25519%3A0` works).
/// - 200 `{"public_key": "<unpadded base64>"}` for current, old and lost keys (whose
///   private half is gone, see [`crate::keys`]).
/// - 404 `M_NOT_FOUND` for an unknown key id.
pub fn get_public_key(app: &App, req: &Req) -> Result<Reply> {
    let key_id = req.param(0);
    let key = app.keys.public_key(key_id).ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("The public key '{key_id}' is not known"),
        )
    })?;
    Ok(Reply::ok(PublicKey { public_key: key }))
}

/// `GET /pubkey/isvalid?public_key=`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2pubkeyisvalid))
///
/// - no auth; `{"valid": bool}`: true for our long-term keys, in either base64 alphabet.
/// - 400 `M_MISSING_PARAMS` without `public_key`.
pub fn check_public_key_validity(app: &App, req: &Req) -> Result<Reply> {
    let key = req.required_query("public_key")?;
    Ok(Reply::ok(Validity {
        valid: app.keys.is_valid_public_key(key),
    }))
}

/// `GET /pubkey/ephemeral/isvalid?public_key=`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#get_matrixidentityv2pubkeyephemeralisvalid))
///
/// - no auth; `{"valid": bool}`: true for the ephemeral key of an invite that is still pending
///   or not yet delivered, in either base64 alphabet.
/// - 400 `M_MISSING_PARAMS` without `public_key`.
pub fn validate_ephemeral_key(app: &App, req: &Req) -> Result<Reply> {
    let key = req.required_query("public_key")?;
    let valid = app.invites.is_valid_ephemeral_key(key)?;
    Ok(Reply::ok(Validity { valid }))
}
