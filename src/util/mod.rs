//! Small helpers that several parts of the server share: wall-clock time ([`time`]),
//! `%PLACEHOLDER%` templates ([`placeholders`]) and the reading of URLs and hosts ([`url`]).

pub mod placeholders;
pub mod time;
pub mod url;
