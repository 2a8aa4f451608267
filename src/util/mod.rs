//! Small helpers that several parts of the server share: wall-clock time ([`time`]).

pub mod time;
