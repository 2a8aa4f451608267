//! The admin listener's routing table, next to the public [`crate::http::routes::ROUTES`]:
//! every row needs the admin token (checked from the headers before any body is read).

use super::handlers as h;
use crate::http::Method::{Delete, Get, Post};
use crate::http::auth::Auth::AdminToken as Admin;
use crate::http::routes::{BodyLimit, Mount, Route, row};

const ADMIN: &[Mount] = &[Mount::Admin];
const ROOT: &[Mount] = &[Mount::Root];

/// Every endpoint of the admin listener.
#[rustfmt::skip]
pub static ADMIN_ROUTES: &[Route] = &[
    row(Get,    "/metrics",           ROOT,  Admin, h::get_metrics),
    row(Get,    "/stats",             ADMIN, Admin, h::get_stats),
    row(Get,    "/bindings",          ADMIN, Admin, h::list_bindings),
    row(Get,    "/bindings/threepid", ADMIN, Admin, h::bindings_of_threepid),
    row(Get,    "/bindings/user",     ADMIN, Admin, h::bindings_of_user),
    row(Delete, "/bindings/threepid", ADMIN, Admin, h::delete_threepid_bindings),
    row(Delete, "/bindings/user",     ADMIN, Admin, h::delete_user_bindings),
    row(Get,    "/sessions",          ADMIN, Admin, h::list_sessions),
    row(Get,    "/invites",           ADMIN, Admin, h::list_invites),
    row(Delete, "/invites",           ADMIN, Admin, h::delete_invite),
    row(Get,    "/export/threepid",   ADMIN, Admin, h::export_threepid),
    row(Get,    "/export/user",       ADMIN, Admin, h::export_user),
    row(Post,   "/erase/threepid",    ADMIN, Admin, h::erase_threepid),
    row(Post,   "/erase/user",        ADMIN, Admin, h::erase_user),
    Route { body: BodyLimit::Import, ..row(Post, "/import/bindings", ADMIN, Admin, h::import_bindings) },
    row(Get,    "/keys",              ADMIN, Admin, h::list_keys),
    row(Post,   "/keys/rotate",       ADMIN, Admin, h::rotate_keys),
    row(Post,   "/backup",            ADMIN, Admin, h::backup),
];
