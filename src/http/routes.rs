//! THE routing table: one row per endpoint. The router and the start-up list of mounted paths
//! come from it; nothing else decides routing.

use super::request::{Method, Req};
use super::response::Reply;
use crate::api;
use crate::app::App;
use crate::error::Result;

/// Where an endpoint is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// Outside the identity prefixes (`/_matrix/identity/versions`, `/health`).
    Root,
    /// `/_matrix/identity/api/v1` (deprecated, still called by Synapse).
    V1,
    /// `/_matrix/identity/v2`.
    V2,
}

impl Mount {
    /// The path prefix of this mount.
    pub fn prefix(self) -> &'static str {
        match self {
            Mount::Root => "",
            Mount::V1 => "/_matrix/identity/api/v1",
            Mount::V2 => "/_matrix/identity/v2",
        }
    }
}

/// A handler: decode the request, call a service, encode the answer.
pub type Handler = fn(&App, &Req) -> Result<Reply>;

/// One endpoint.
pub struct Route {
    /// The method it answers.
    pub method: Method,
    /// The path below the mount prefix; `{name}` matches one path segment.
    pub path: &'static str,
    /// The mounts it is served on; v1 and v2 share the handler.
    pub mounts: &'static [Mount],
    /// The handler.
    pub handler: Handler,
}

const BOTH: &[Mount] = &[Mount::V1, Mount::V2];
const ROOT: &[Mount] = &[Mount::Root];

/// Every endpoint of the server.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/_matrix/identity/versions",
        mounts: ROOT,
        handler: api::versions::get_supported_versions,
    },
    Route {
        method: Method::Get,
        path: "/health",
        mounts: ROOT,
        handler: api::versions::get_health,
    },
    Route {
        method: Method::Get,
        path: "",
        mounts: BOTH,
        handler: api::versions::get_server_status,
    },
    Route {
        method: Method::Get,
        path: "/pubkey/isvalid",
        mounts: BOTH,
        handler: api::pubkey::check_public_key_validity,
    },
    Route {
        method: Method::Get,
        path: "/pubkey/ephemeral/isvalid",
        mounts: BOTH,
        handler: api::pubkey::validate_ephemeral_key,
    },
    Route {
        method: Method::Get,
        path: "/pubkey/{keyId}",
        mounts: BOTH,
        handler: api::pubkey::get_public_key,
    },
];
