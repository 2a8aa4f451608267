//! A small synchronous LDAPv3 client for the LDAP identity store (issue 20): blocking sockets,
//! rustls for `ldaps://` and StartTLS, simple bind, search with simple paged results.
//!
//! References: RFC 4511 (protocol, and the BER subset of X.690 it uses), RFC 4515 (filter
//! strings), RFC 2696 (paged results), RFC 4513 (StartTLS, simple bind). Bounds against a
//! broken or hostile server: one message at most [`MAX_MESSAGE`] octets, definite BER lengths
//! only, filter nesting at most [`MAX_FILTER_DEPTH`] levels, buffers grow only as bytes arrive,
//! and every read and write has a deadline.

pub mod ber;
mod client;
mod error;
mod filter;
mod filter_ber;
pub mod message;
mod server;
mod tls;

#[cfg(test)]
mod tests;

pub use client::{ConnectOptions, Connection, MAX_MESSAGE};
pub use error::{LdapError, result_code_name};
pub use filter::{Filter, MAX_FILTER_DEPTH, escape_value, parse_filter};
pub use message::{Entry, Scope, SearchRequest};
pub use server::Server;
pub use tls::tls_config;
