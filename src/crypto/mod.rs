//! Cryptographic building blocks of the identity server.
//!
//! This module owns everything that must be byte-exact with the Matrix specification:
//!
//! * [`base64`]: unpadded standard / URL-safe encoding and a lenient decoder;
//! * [`canonical_json`]: the Matrix canonical JSON encoding (appendix "Canonical JSON");
//! * [`signing`]: Ed25519 key pairs and signing / verifying JSON objects (appendix "Signing JSON");
//! * [`lookup_hash`]: the `sha256` hashed-lookup algorithm of `/_matrix/identity/v2/lookup`.
//!
//! Nothing here performs I/O (apart from drawing OS randomness in
//! [`signing::KeyPair::generate`]) or knows about HTTP; callers build on these primitives.

pub mod base64;
pub mod canonical_json;
pub mod lookup_hash;
pub mod random;
pub mod signing;
