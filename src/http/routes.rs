//! THE routing table: one row per endpoint. The router and the start-up list of mounted paths
//! come from it; nothing else decides routing. The paths that links are built to are named in
//! [`super::paths`].

use super::auth::Auth;
use super::paths;
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
    /// The admin API on the admin listener (`/_oxisd/admin/v1`).
    Admin,
}

impl Mount {
    /// The path prefix of this mount.
    pub fn prefix(self) -> &'static str {
        match self {
            Mount::Root => "",
            Mount::V1 => paths::V1,
            Mount::V2 => paths::V2,
            Mount::Admin => crate::admin::PREFIX,
        }
    }
}

/// How large a request body a route takes; the transport refuses a larger one with 413 from
/// its `Content-Length` before reading any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `server.maxBodySize`.
    Standard,
    /// Lookups carry up to `lookup.maxAddresses` entries: 64 bytes each (a sha256 hash or an
    /// address with its JSON quoting), or `server.maxBodySize` when that is larger.
    Lookup,
    /// A batch of `oxisd admin import` (about 3 MiB per 20 000 bindings; the command sends 4 MiB
    /// at most).
    Import,
}

/// Largest body of `POST /import/bindings` on the admin listener.
pub const MAX_IMPORT_BODY: usize = 8 * 1024 * 1024;

impl BodyLimit {
    /// The limit in bytes under `config`.
    pub fn bytes(self, config: &crate::config::Config) -> usize {
        match self {
            BodyLimit::Standard => config.server.max_body_size,
            BodyLimit::Lookup => config
                .server
                .max_body_size
                .max(config.lookup.max_addresses * 64),
            BodyLimit::Import => MAX_IMPORT_BODY,
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
    /// What the v2 mount requires (v1 never authenticates).
    pub auth: Auth,
    /// How large a body it takes.
    pub body: BodyLimit,
    /// The handler never blocks (no store, no network, no lock held for long): it runs on the
    /// I/O thread, saving the hand-over to a handler thread and back.
    pub inline: bool,
    /// The handler.
    pub handler: Handler,
}

pub(crate) const BOTH: &[Mount] = &[Mount::V1, Mount::V2];
pub(crate) const V1: &[Mount] = &[Mount::V1];
pub(crate) const V2: &[Mount] = &[Mount::V2];
pub(crate) const ROOT: &[Mount] = &[Mount::Root];

/// One row of the table.
pub(crate) const fn row(
    method: Method,
    path: &'static str,
    mounts: &'static [Mount],
    auth: Auth,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        mounts,
        auth,
        handler,
        body: BodyLimit::Standard,
        inline: false,
    }
}

/// A row whose handler answers from memory at once, run on the I/O thread.
const fn inline_row(
    method: Method,
    path: &'static str,
    mounts: &'static [Mount],
    handler: Handler,
) -> Route {
    Route {
        inline: true,
        ..row(method, path, mounts, Auth::None, handler)
    }
}

/// A row whose body may be as large as a lookup of `lookup.maxAddresses` entries.
const fn lookup_row(
    method: Method,
    path: &'static str,
    mounts: &'static [Mount],
    auth: Auth,
    handler: Handler,
) -> Route {
    Route {
        method,
        path,
        mounts,
        auth,
        handler,
        body: BodyLimit::Lookup,
        inline: false,
    }
}

use Auth::{AuthSecret as Secret, None as Open, Token, TokenAndTerms as Terms};
use Method::{Get, Post};

/// Every endpoint of the server.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    inline_row(Get, paths::VERSIONS,                    ROOT,        api::versions::get_supported_versions),
    row(Get,  paths::HEALTH,                            ROOT, Open,  api::versions::get_health),
    inline_row(Get, "/_matrix/identity/_oxisd/static/{name}", ROOT,  api::assets::get_static_asset),
    row(Post, paths::CHECK_CREDENTIALS,                 ROOT, Secret, api::check_credentials::check_credentials),
    row(Get,  paths::REMOTE_START,                      ROOT, Open,  api::remote::start_remote_session),
    row(Get,  paths::REMOTE_CHECK,                      ROOT, Open,  api::remote::check_remote_session),
    inline_row(Get, "",                                 BOTH,        api::versions::get_server_status),
    inline_row(Get, paths::PUBKEY_ISVALID,              BOTH,        api::pubkey::check_public_key_validity),
    row(Get,  paths::EPHEMERAL_PUBKEY_ISVALID,          BOTH, Open,  api::pubkey::validate_ephemeral_key),
    inline_row(Get, "/pubkey/{keyId}",                  BOTH,        api::pubkey::get_public_key),
    row(Post, "/account/register",                      V2,   Open,  api::account::register),
    row(Get,  "/account",                               V2,   Terms, api::account::get_account_information),
    // ruma up to 0.15 sent POST for whoami.
    row(Post, "/account",                               V2,   Terms, api::account::get_account_information),
    row(Post, "/account/logout",                        V2,   Open,  api::account::logout),
    row(Get,  "/terms",                                 V2,   Open,  api::terms::get_terms_of_service),
    row(Post, "/terms",                                 V2,   Token, api::terms::accept_terms_of_service),
    row(Post, paths::EMAIL_REQUEST_TOKEN,               BOTH, Terms, api::email::create_email_validation_session),
    row(Post, paths::EMAIL_SUBMIT_TOKEN,                BOTH, Terms, api::email::validate_email),
    row(Get,  paths::EMAIL_SUBMIT_TOKEN,                BOTH, Open,  api::email::validate_email_by_end_user),
    row(Post, paths::MSISDN_REQUEST_TOKEN,              BOTH, Terms, api::msisdn::create_msisdn_validation_session),
    row(Post, paths::MSISDN_SUBMIT_TOKEN,               BOTH, Terms, api::msisdn::validate_msisdn),
    row(Get,  paths::MSISDN_SUBMIT_TOKEN,               BOTH, Open,  api::msisdn::validate_msisdn_by_phone_number),
    row(Post, paths::BIND,                              BOTH, Terms, api::threepid::bind_3pid),
    row(Post, paths::UNBIND,                            BOTH, Open,  api::threepid::unbind_3pid),
    row(Get,  "/hash_details",                          V2,   Terms, api::lookup::get_hash_parameters),
    lookup_row(Post, "/lookup",                         V2,   Terms, api::lookup::lookup_3pid),
    row(Get,  paths::LOOKUP,                            V1,   Open,  api::lookup::lookup_v1),
    lookup_row(Post, "/bulk_lookup",                    V1,   Open,  api::lookup::bulk_lookup_v1),
    row(Get,  paths::GET_VALIDATED_3PID,                BOTH, Terms, api::validation::check_3pid_validity),
    row(Post, "/store-invite",                          BOTH, Terms, api::invite::store_invite),
    row(Post, paths::SIGN_ED25519,                      BOTH, Terms, api::invite::sign_ed25519),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_route_serves_the_path_the_pages_link() {
        let static_row = ROUTES
            .iter()
            .find(|r| r.path.ends_with("/{name}") && r.mounts == ROOT)
            .unwrap();
        assert_eq!(
            static_row.path,
            format!("{}/{{name}}", crate::views::STATIC_PATH)
        );
    }
}
