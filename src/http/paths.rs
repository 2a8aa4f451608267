//! The paths of our endpoints, for the routing table ([`super::routes::ROUTES`]) and for every
//! link we build to them: validation links in messages, the remote-session pages, an invite's
//! sign URL and key validity URLs, and the same endpoints at an upstream identity server. One
//! place, so that a link cannot point where nothing is routed.
//!
//! Plain strings and [`Medium`] only: services use this module without depending on HTTP types.

use crate::threepid::Medium;

/// The v1 mount (deprecated, still called by Synapse and used towards upstream servers).
pub const V1: &str = "/_matrix/identity/api/v1";
/// The v2 mount.
pub const V2: &str = "/_matrix/identity/v2";

/// `GET` outside the mounts: the spec versions.
pub const VERSIONS: &str = "/_matrix/identity/versions";
/// `GET` outside the mounts: the health check for monitors.
pub const HEALTH: &str = "/health";
/// Outside the mounts: the homeserver's password check (`auth.*`), mxisd's REST password
/// provider protocol.
pub const CHECK_CREDENTIALS: &str = "/_matrix-internal/identity/v1/check_credentials";
/// Outside the mounts: the remote-session page that starts the upstream session.
pub const REMOTE_START: &str = "/_matrix/identity/_oxisd/remote/start";
/// Outside the mounts: the remote-session page that checks the upstream session.
pub const REMOTE_CHECK: &str = "/_matrix/identity/_oxisd/remote/check";

/// Below a mount: email `requestToken`.
pub const EMAIL_REQUEST_TOKEN: &str = "/validate/email/requestToken";
/// Below a mount: email `submitToken` (POST for clients, GET for the link in the email).
pub const EMAIL_SUBMIT_TOKEN: &str = "/validate/email/submitToken";
/// Below a mount: phone `requestToken`.
pub const MSISDN_REQUEST_TOKEN: &str = "/validate/msisdn/requestToken";
/// Below a mount: phone `submitToken`.
pub const MSISDN_SUBMIT_TOKEN: &str = "/validate/msisdn/submitToken";
/// Below a mount: `getValidated3pid`.
pub const GET_VALIDATED_3PID: &str = "/3pid/getValidated3pid";
/// Below a mount: `bind`.
pub const BIND: &str = "/3pid/bind";
/// Below a mount: `unbind`.
pub const UNBIND: &str = "/3pid/unbind";
/// Below a mount: the long-term key check.
pub const PUBKEY_ISVALID: &str = "/pubkey/isvalid";
/// Below a mount: the ephemeral key check.
pub const EPHEMERAL_PUBKEY_ISVALID: &str = "/pubkey/ephemeral/isvalid";
/// Below the v1 mount: a plain lookup (asked at other domains' identity servers too).
pub const LOOKUP: &str = "/lookup";
/// Below a mount: the public keys, `/pubkey/{keyId}` (asked at other identity servers too).
pub const PUBKEY: &str = "/pubkey";
/// Below a mount: `sign-ed25519`.
pub const SIGN_ED25519: &str = "/sign-ed25519";

/// `requestToken` of a medium, below a mount.
pub fn request_token(medium: Medium) -> &'static str {
    match medium {
        Medium::Email => EMAIL_REQUEST_TOKEN,
        Medium::Msisdn => MSISDN_REQUEST_TOKEN,
    }
}

/// `submitToken` of a medium, below a mount.
pub fn submit_token(medium: Medium) -> &'static str {
    match medium {
        Medium::Email => EMAIL_SUBMIT_TOKEN,
        Medium::Msisdn => MSISDN_SUBMIT_TOKEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::{Mount, ROUTES};

    /// Every path links are built from is routed, on the mount the links use.
    #[test]
    fn linked_paths_are_routed() {
        let routed = |mount: Mount, path: &str| {
            ROUTES
                .iter()
                .any(|r| r.path == path && r.mounts.contains(&mount))
        };
        assert_eq!(Mount::V1.prefix(), V1);
        assert_eq!(Mount::V2.prefix(), V2);
        for medium in [Medium::Email, Medium::Msisdn] {
            assert!(routed(Mount::V2, submit_token(medium)));
            assert!(routed(Mount::V1, request_token(medium)));
        }
        assert!(routed(Mount::V1, LOOKUP));
        assert!(routed(Mount::V1, &format!("{PUBKEY}/{{keyId}}")));
        for path in [GET_VALIDATED_3PID, BIND, UNBIND, SIGN_ED25519] {
            assert!(routed(Mount::V1, path), "{path}");
        }
        for path in [PUBKEY_ISVALID, EPHEMERAL_PUBKEY_ISVALID] {
            assert!(routed(Mount::V2, path), "{path}");
        }
        for path in [REMOTE_START, REMOTE_CHECK] {
            assert!(routed(Mount::Root, path), "{path}");
        }
    }
}
