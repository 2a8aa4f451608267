//! The byte layouts of the binding keyspaces' keys and values (see the [keyspaces](super)),
//! and of the stored peppers.

use super::{BindingRecord, HashedThreepid, IndexedBinding, Pepper};
use crate::error::{Error, Result};

/// `medium 0x00 address 0x00`: the prefix of a 3PID's `threepid_binding` keys.
pub(super) fn threepid_prefix(medium: &str, address: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(medium.len() + address.len() + 2);
    key.extend_from_slice(medium.as_bytes());
    key.push(0);
    key.extend_from_slice(address.as_bytes());
    key.push(0);
    key
}

/// `source 0x00 medium 0x00 address`: a `source_threepid` key.
pub(super) fn source_key(source: &str, medium: &str, address: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.len() + medium.len() + address.len() + 2);
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key.extend_from_slice(medium.as_bytes());
    key.push(0);
    key.extend_from_slice(address.as_bytes());
    key
}

/// `medium 0x00 address 0x00 source`: a `threepid_binding` key.
pub(super) fn binding_key(medium: &str, address: &str, source: &str) -> Vec<u8> {
    let mut key = threepid_prefix(medium, address);
    key.extend_from_slice(source.as_bytes());
    key
}

/// `generation digest`: a `pephash_threepid` key.
pub(super) fn hash_key(generation: u32, digest: &[u8; 32]) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&generation.to_be_bytes());
    key[4..].copy_from_slice(digest);
    key
}

/// The hash entry of a 3PID bound by `bindings` (source, record).
pub(super) fn hash_value(
    medium: &str,
    address: &str,
    bindings: &[(String, BindingRecord)],
) -> Vec<u8> {
    let mut v = threepid_prefix(medium, address);
    let mut sorted: Vec<&(String, BindingRecord)> = bindings.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (source, record) in sorted {
        v.extend_from_slice(source.as_bytes());
        v.push(0);
        v.extend_from_slice(record.mxid.as_bytes());
        v.push(0);
        v.extend_from_slice(&record.not_before.to_be_bytes());
        v.extend_from_slice(&record.not_after.to_be_bytes());
    }
    v
}

/// Reads a hash entry written by [`hash_value`]; `None` when it is damaged.
pub(super) fn decode_hash_value(bytes: &[u8]) -> Option<HashedThreepid> {
    fn text(bytes: &[u8]) -> Option<(String, &[u8])> {
        let end = bytes.iter().position(|b| *b == 0)?;
        let s = std::str::from_utf8(&bytes[..end]).ok()?.to_string();
        Some((s, &bytes[end + 1..]))
    }
    fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let n = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        Some((n, &bytes[8..]))
    }
    let (medium, rest) = text(bytes)?;
    let (address, mut rest) = text(rest)?;
    let mut bindings = Vec::new();
    while !rest.is_empty() {
        let (source, r) = text(rest)?;
        let (mxid, r) = text(r)?;
        let (not_before, r) = number(r)?;
        let (not_after, r) = number(r)?;
        bindings.push(IndexedBinding {
            source,
            mxid,
            not_before,
            not_after,
        });
        rest = r;
    }
    Some(HashedThreepid {
        medium,
        address,
        bindings,
    })
}

/// `generation (u32 BE) pepper`, as `meta` keeps a pepper.
pub(super) fn encode_pepper(p: &Pepper) -> Vec<u8> {
    let mut v = p.generation.to_be_bytes().to_vec();
    v.extend_from_slice(p.pepper.as_bytes());
    v
}

/// Reads a pepper written by [`encode_pepper`].
pub(super) fn decode_pepper(bytes: &[u8]) -> Option<Pepper> {
    let generation = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let pepper = std::str::from_utf8(bytes.get(4..)?).ok()?.to_string();
    Some(Pepper { generation, pepper })
}

/// Reads a `threepid_binding` value (JSON).
pub(super) fn decode_binding(bytes: &[u8]) -> Result<BindingRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::internal(format_args!("corrupt binding record: {e}")))
}
