//! Endpoint handlers, one file per endpoint family, shared by the v1 and v2 mounts. Handlers are
//! thin: decode the request, call a service, encode the answer.

pub mod account;
pub mod assets;
pub mod email;
pub mod invite;
pub mod lookup;
pub mod msisdn;
pub mod pubkey;
pub mod remote;
pub mod terms;
pub mod threepid;
pub mod validation;
pub mod versions;
