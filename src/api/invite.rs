//! 3PID room invites: store-invite, and sign-ed25519 for clients that cannot sign with the
//! invite's ephemeral key themselves.

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Mount, Reply, Req};
use crate::ids::UserId;
use crate::service::invites::{InviteKey, NewInvite, StoredInvite};

/// The answer of `store-invite`.
#[derive(Serialize)]
struct Stored<'a> {
    /// The invitee's address, redacted.
    display_name: &'a str,
    /// The long-term key (as in `public_keys`, for older homeservers).
    public_key: &'a str,
    /// The long-term key, then the ephemeral one.
    public_keys: [Key<'a>; 2],
    token: &'a str,
}

/// A public key of an invite.
#[derive(Serialize)]
struct Key<'a> {
    key_validity_url: &'a str,
    public_key: &'a str,
}

impl<'a> From<&'a InviteKey> for Key<'a> {
    fn from(k: &'a InviteKey) -> Key<'a> {
        Key {
            key_validity_url: &k.key_validity_url,
            public_key: &k.public_key,
        }
    }
}

impl<'a> From<&'a StoredInvite> for Stored<'a> {
    fn from(i: &'a StoredInvite) -> Stored<'a> {
        let [long_term, ephemeral] = &i.public_keys;
        Stored {
            display_name: &i.display_name,
            public_key: &long_term.public_key,
            public_keys: [long_term.into(), ephemeral.into()],
            token: &i.token,
        }
    }
}

/// `POST /store-invite`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2store-invite))
///
/// - v2 (token and terms; `sender` must be the token's user); v1 (no auth, JSON or form) only
///   with `invite.v1StoreInvite`, else 403 `M_FORBIDDEN`. Extra keys (Synapse sends some) are
///   accepted.
/// - 200 `{token, public_keys: [long-term, ephemeral], public_key, display_name}`; the invite
///   email goes to `address`.
/// - 400 `M_UNRECOGNIZED` (medium not `email`), `M_INVALID_EMAIL`, `M_INVALID_PARAM`,
///   `M_MISSING_PARAMS`, `M_THREEPID_IN_USE` (with `mxid`); 403 `M_UNAUTHORIZED` (sender is
///   not the token's user), `M_FORBIDDEN` (blocked room or homeserver, invites disabled); 429;
///   500 `M_EMAIL_SEND_ERROR`.
pub fn store_invite(app: &App, req: &Req) -> Result<Reply> {
    if req.mount == Mount::V1 && !app.config.invite.v1_store_invite {
        // Unauthenticated, it would let anyone have us email anyone under any sender's name.
        return Err(Error::new(
            ErrorKind::Forbidden,
            "store-invite is offered on /_matrix/identity/v2 only (invite.v1StoreInvite)",
        ));
    }
    let body: NewInvite = req.params()?;
    let stored = app.invites.store_invite(
        &body,
        req.user.as_ref(),
        &format!("ip:{}", req.client_ip),
        app.now_ms(),
    )?;
    Ok(Reply::ok(Stored::from(&stored)))
}

/// The body of `sign-ed25519`; clients following an invitation link send only `mxid` and put
/// `token` and `private_key` in the query string.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SignRequest {
    mxid: Option<UserId>,
    token: Option<String>,
    private_key: Option<String>,
}

/// `POST /sign-ed25519`
/// ([spec](https://spec.matrix.org/v1.19/identity-service-api/#post_matrixidentityv2sign-ed25519))
///
/// - v1 (no auth) and v2 (token and terms). `mxid`, `token`, `private_key` from the JSON body,
///   or from the query string (the invitation link's `signurl`); the body may then be empty
///   or JSON `null`.
/// - 200 `{mxid, sender, token, signatures}` signed with the invite's ephemeral key.
/// - 404 `M_UNRECOGNIZED` for an unknown token or a key that is not the invite's; 400
///   `M_MISSING_PARAMS`, `M_INVALID_PARAM`.
pub fn sign_ed25519(app: &App, req: &Req) -> Result<Reply> {
    // A JSON `null` body is no parameters (clients that put everything in the query send it).
    let body: SignRequest = if req.body.trim_ascii() == b"null" {
        SignRequest::default()
    } else {
        req.params()?
    };
    let field = |value: Option<String>, name: &'static str| -> Result<String> {
        value
            .or_else(|| req.query(name).map(str::to_string))
            .ok_or_else(|| Error::new(ErrorKind::MissingParams, format!("Missing '{name}'")))
    };
    // Checked once all three are known to be there.
    let mxid = match body.mxid {
        Some(mxid) => Ok(mxid),
        None => field(None, "mxid").map(UserId::try_from)?,
    };
    let token = field(body.token, "token")?;
    let private_key = field(body.private_key, "private_key")?;
    let mxid = mxid?;
    let signed = app.invites.sign(&mxid, &token, &private_key)?;
    Ok(Reply::ok(signed))
}
