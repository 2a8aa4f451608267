//! Domain services: the rules of the identity server, on plain inputs and outputs. Services
//! never see HTTP types; they use the store and the outbound clients.

pub mod accounts;
pub mod admin;
pub mod bindings;
pub mod directory;
pub mod federation;
pub mod health;
pub mod invites;
pub mod lookup;
pub mod pepper;
pub mod rate_limit;
pub mod remote;
pub mod sessions;
pub mod stores;
pub mod terms;
pub mod xmatrix;
