//! oxisd: a Matrix identity server in one small binary.
//!
//! Data flows one way: [`http`] (parse, limits, CORS) -> [`api`] handlers (one per endpoint,
//! shared by the v1 and v2 mounts) -> services -> [`store`] and outbound clients. One error type
//! ([`error::Error`]) maps to Matrix `errcode` and HTTP status. [`config`] is one typed tree,
//! validated at start.

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod app;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod healthcheck;
pub mod homeserver;
pub mod http;
pub mod ids;
pub mod import;
pub mod keys;
pub mod ldap;
pub mod logging;
pub mod maintenance;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod service;
pub mod store;
pub mod tasks;
pub mod threepid;
pub mod util;
pub mod views;
