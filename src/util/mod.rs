//! Small helpers that several parts of the server share: wall-clock time ([`time`]) and
//! `%PLACEHOLDER%` templates ([`placeholders`]).

pub mod placeholders;
pub mod time;
