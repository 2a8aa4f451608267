//! Endpoint handlers, one file per endpoint family, shared by the v1 and v2 mounts. Handlers are
//! thin: decode the request, call a service, encode the answer.
//!
//! Services return domain values; each endpoint serialises its answer through a `Serialize`
//! response struct of its own here (signed objects excepted: they are answered as signed).
//! Response structs name their fields in alphabetical order, and maps in them are sorted, so
//! that answers keep the key order they always had.

pub mod account;
pub mod assets;
pub mod check_credentials;
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

use serde::Serialize;

/// `{}`: an answer with nothing to say.
#[derive(Serialize)]
pub(crate) struct Empty {}
