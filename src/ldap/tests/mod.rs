//! Unit tests of the LDAP client: BER, filters (string and BER forms, a property test),
//! messages, server URLs, and the connection against scripted fake servers.

mod ber;
mod client;
mod filter;
mod filter_props;
mod message;
mod server;
mod tls;
