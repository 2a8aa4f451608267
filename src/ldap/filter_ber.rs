//! The BER form of a [`Filter`] (RFC 4511 4.5.1): encoding for search requests, and decoding
//! (depth-bounded) for the round-trip tests.

use super::ber::{self, Reader, Tlv};
use super::filter::{Filter, MAX_FILTER_DEPTH};

const AND: u8 = ber::context(0, true);
const OR: u8 = ber::context(1, true);
const NOT: u8 = ber::context(2, true);
const EQUALITY: u8 = ber::context(3, true);
const SUBSTRINGS: u8 = ber::context(4, true);
const GREATER_OR_EQUAL: u8 = ber::context(5, true);
const LESS_OR_EQUAL: u8 = ber::context(6, true);
const PRESENT: u8 = ber::context(7, false);
const APPROX: u8 = ber::context(8, true);
const EXTENSIBLE: u8 = ber::context(9, true);

impl Filter {
    /// Appends the BER encoding of this filter.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                let tag = if matches!(self, Filter::And(_)) {
                    AND
                } else {
                    OR
                };
                ber::write_constructed(out, tag, |out| {
                    for part in parts {
                        part.encode(out);
                    }
                });
            }
            Filter::Not(inner) => ber::write_constructed(out, NOT, |out| inner.encode(out)),
            Filter::Equality { attr, value }
            | Filter::GreaterOrEqual { attr, value }
            | Filter::LessOrEqual { attr, value }
            | Filter::Approx { attr, value } => {
                let tag = match self {
                    Filter::GreaterOrEqual { .. } => GREATER_OR_EQUAL,
                    Filter::LessOrEqual { .. } => LESS_OR_EQUAL,
                    Filter::Approx { .. } => APPROX,
                    _ => EQUALITY,
                };
                ber::write_constructed(out, tag, |out| {
                    ber::write_tlv(out, ber::OCTET_STRING, attr.as_bytes());
                    ber::write_tlv(out, ber::OCTET_STRING, value);
                });
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => {
                ber::write_constructed(out, SUBSTRINGS, |out| {
                    ber::write_tlv(out, ber::OCTET_STRING, attr.as_bytes());
                    ber::write_constructed(out, ber::SEQUENCE, |out| {
                        if let Some(initial) = initial {
                            ber::write_tlv(out, ber::context(0, false), initial);
                        }
                        for part in any {
                            ber::write_tlv(out, ber::context(1, false), part);
                        }
                        if let Some(final_) = final_ {
                            ber::write_tlv(out, ber::context(2, false), final_);
                        }
                    });
                });
            }
            Filter::Present(attr) => ber::write_tlv(out, PRESENT, attr.as_bytes()),
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            } => {
                ber::write_constructed(out, EXTENSIBLE, |out| {
                    if let Some(rule) = rule {
                        ber::write_tlv(out, ber::context(1, false), rule.as_bytes());
                    }
                    if let Some(attr) = attr {
                        ber::write_tlv(out, ber::context(2, false), attr.as_bytes());
                    }
                    ber::write_tlv(out, ber::context(3, false), value);
                    if *dn_attributes {
                        ber::write_boolean(out, ber::context(4, false), true);
                    }
                });
            }
        }
    }

    /// Decodes a BER filter (exactly one value, nothing after it), at most
    /// [`MAX_FILTER_DEPTH`] levels deep.
    pub fn decode(bytes: &[u8]) -> Result<Filter, String> {
        let mut reader = Reader::new(bytes);
        let filter = decode_tlv(reader.read()?, 0)?;
        reader.finish("filter")?;
        Ok(filter)
    }
}

fn text(tlv: Tlv<'_>) -> Result<String, String> {
    Ok(tlv.utf8()?.to_string())
}

/// A SEQUENCE { attr OCTET STRING, value OCTET STRING }.
fn assertion(tlv: Tlv<'_>) -> Result<(String, Vec<u8>), String> {
    let mut reader = tlv.reader();
    let attr = text(reader.read_tag(ber::OCTET_STRING, "attribute")?)?;
    let value = reader
        .read_tag(ber::OCTET_STRING, "value")?
        .content
        .to_vec();
    reader.finish("assertion")?;
    Ok((attr, value))
}

fn decode_tlv(tlv: Tlv<'_>, depth: usize) -> Result<Filter, String> {
    if depth >= MAX_FILTER_DEPTH {
        return Err(format!(
            "filter nested more than {MAX_FILTER_DEPTH} levels deep"
        ));
    }
    Ok(match tlv.tag {
        AND | OR => {
            let mut reader = tlv.reader();
            let mut parts = Vec::new();
            while !reader.is_empty() {
                parts.push(decode_tlv(reader.read()?, depth + 1)?);
            }
            if tlv.tag == AND {
                Filter::And(parts)
            } else {
                Filter::Or(parts)
            }
        }
        NOT => {
            let mut reader = tlv.reader();
            let inner = decode_tlv(reader.read()?, depth + 1)?;
            reader.finish("not")?;
            Filter::Not(Box::new(inner))
        }
        EQUALITY | GREATER_OR_EQUAL | LESS_OR_EQUAL | APPROX => {
            let (attr, value) = assertion(tlv)?;
            match tlv.tag {
                EQUALITY => Filter::Equality { attr, value },
                GREATER_OR_EQUAL => Filter::GreaterOrEqual { attr, value },
                LESS_OR_EQUAL => Filter::LessOrEqual { attr, value },
                _ => Filter::Approx { attr, value },
            }
        }
        SUBSTRINGS => {
            let mut reader = tlv.reader();
            let attr = text(reader.read_tag(ber::OCTET_STRING, "attribute")?)?;
            let mut parts = reader.read_tag(ber::SEQUENCE, "substrings")?.reader();
            reader.finish("substrings")?;
            let (mut initial, mut any, mut final_) = (None, Vec::new(), None);
            while !parts.is_empty() {
                let part = parts.read()?;
                match part.tag {
                    0x80 if initial.is_none() && any.is_empty() => {
                        initial = Some(part.content.to_vec())
                    }
                    0x81 if final_.is_none() => any.push(part.content.to_vec()),
                    0x82 if final_.is_none() => final_ = Some(part.content.to_vec()),
                    tag => return Err(format!("substrings: unexpected part tag 0x{tag:02x}")),
                }
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            }
        }
        PRESENT => Filter::Present(text(tlv)?),
        EXTENSIBLE => {
            let mut reader = tlv.reader();
            let (mut rule, mut attr, mut value, mut dn_attributes) = (None, None, None, false);
            while !reader.is_empty() {
                let part = reader.read()?;
                match part.tag {
                    0x81 if rule.is_none() && attr.is_none() && value.is_none() => {
                        rule = Some(text(part)?)
                    }
                    0x82 if attr.is_none() && value.is_none() => attr = Some(text(part)?),
                    0x83 if value.is_none() => value = Some(part.content.to_vec()),
                    0x84 if value.is_some() => dn_attributes = part.boolean()?,
                    tag => return Err(format!("extensible match: unexpected tag 0x{tag:02x}")),
                }
            }
            let value = value.ok_or("extensible match: no matchValue")?;
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            }
        }
        tag => return Err(format!("unknown filter tag 0x{tag:02x}")),
    })
}
