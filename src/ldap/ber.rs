//! The subset of BER (X.690) that LDAP uses (RFC 4511 5.1): one-byte tags, definite lengths,
//! primitive INTEGER / ENUMERATED / BOOLEAN / OCTET STRING and constructed SEQUENCE / SET and
//! context-tagged values. Encoding writes definite lengths in the shortest form; decoding reads
//! from a borrowed slice and never allocates what a length field declares.

/// Universal BOOLEAN.
pub const BOOLEAN: u8 = 0x01;
/// Universal INTEGER.
pub const INTEGER: u8 = 0x02;
/// Universal OCTET STRING.
pub const OCTET_STRING: u8 = 0x04;
/// Universal ENUMERATED.
pub const ENUMERATED: u8 = 0x0a;
/// Universal SEQUENCE (constructed).
pub const SEQUENCE: u8 = 0x30;
/// Universal SET (constructed).
pub const SET: u8 = 0x31;

/// Tag of an APPLICATION class value (constructed when `constructed`).
pub const fn application(number: u8, constructed: bool) -> u8 {
    0x40 | if constructed { 0x20 } else { 0 } | (number & 0x1f)
}

/// Tag of a context-specific value (constructed when `constructed`).
pub const fn context(number: u8, constructed: bool) -> u8 {
    0x80 | if constructed { 0x20 } else { 0 } | (number & 0x1f)
}

/// Appends a definite length in the shortest form.
pub fn write_length(out: &mut Vec<u8>, length: usize) {
    if length < 0x80 {
        out.push(length as u8);
        return;
    }
    let bytes = (length as u64).to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends one tag-length-value.
pub fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    write_length(out, content.len());
    out.extend_from_slice(content);
}

/// Appends a constructed value whose content `build` writes.
pub fn write_constructed(out: &mut Vec<u8>, tag: u8, build: impl FnOnce(&mut Vec<u8>)) {
    let mut content = Vec::new();
    build(&mut content);
    write_tlv(out, tag, &content);
}

/// Appends an INTEGER (or ENUMERATED, with that tag) in the shortest two's complement form.
pub fn write_integer(out: &mut Vec<u8>, tag: u8, value: i64) {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7 {
        let (first, next) = (bytes[start], bytes[start + 1]);
        if (first == 0 && next & 0x80 == 0) || (first == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    write_tlv(out, tag, &bytes[start..]);
}

/// Appends a BOOLEAN (TRUE as 0xFF).
pub fn write_boolean(out: &mut Vec<u8>, tag: u8, value: bool) {
    write_tlv(out, tag, &[if value { 0xff } else { 0 }]);
}

/// One decoded tag-length-value, its content borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier octet.
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// A reader over the content of this (constructed) value.
    pub fn reader(&self) -> Reader<'a> {
        Reader::new(self.content)
    }

    /// Fails unless the tag is `tag`; `what` names the value in the error.
    pub fn expect_tag(self, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(format!(
                "{what}: expected tag 0x{tag:02x}, got 0x{:02x}",
                self.tag
            ))
        }
    }

    /// The content as a two's complement integer (at most 8 bytes).
    pub fn integer(&self) -> Result<i64, String> {
        decode_integer(self.content)
    }

    /// The content as a BOOLEAN (any non-zero octet is TRUE).
    pub fn boolean(&self) -> Result<bool, String> {
        match self.content {
            [b] => Ok(*b != 0),
            _ => Err("BOOLEAN: content must be one octet".into()),
        }
    }

    /// The content as UTF-8 text.
    pub fn utf8(&self) -> Result<&'a str, String> {
        std::str::from_utf8(self.content).map_err(|_| "string: not UTF-8".to_string())
    }
}

/// Decodes a two's complement integer of 1 to 8 content octets.
pub fn decode_integer(content: &[u8]) -> Result<i64, String> {
    if content.is_empty() {
        return Err("INTEGER: empty".into());
    }
    if content.len() > 8 {
        return Err("INTEGER: more than 8 octets".into());
    }
    let mut value: i64 = if content[0] & 0x80 != 0 { -1 } else { 0 };
    for b in content {
        value = (value << 8) | i64::from(*b);
    }
    Ok(value)
}

/// Reads consecutive TLVs from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tag of the next value, if any.
    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Reads the next TLV (errors on truncation, high tag numbers, indefinite or overflowing
    /// lengths).
    pub fn read(&mut self) -> Result<Tlv<'a>, String> {
        let (tag, header, length) = parse_header(self.data)?.ok_or("truncated value header")?;
        let rest = &self.data[header..];
        if rest.len() < length {
            return Err(format!(
                "truncated value: {length} content octets declared, {} present",
                rest.len()
            ));
        }
        let (content, after) = rest.split_at(length);
        self.data = after;
        Ok(Tlv { tag, content })
    }

    /// Reads the next TLV and checks its tag.
    pub fn read_tag(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        self.read()?.expect_tag(tag, what)
    }

    /// Fails unless everything was read.
    pub fn finish(&self, what: &str) -> Result<(), String> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {} unexpected trailing octets",
                self.data.len()
            ))
        }
    }
}

/// Parses a value header at the start of `data`: Ok(Some((tag, header length, content
/// length))), or Ok(None) when more bytes are needed to know. Errors on high tag numbers,
/// indefinite lengths, the reserved length octet and lengths over 4 octets (or that do not fit
/// a usize).
pub fn parse_header(data: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let Some(&tag) = data.first() else {
        return Ok(None);
    };
    if tag & 0x1f == 0x1f {
        return Err(format!("unsupported high tag number form (0x{tag:02x})"));
    }
    let Some(&first) = data.get(1) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((tag, 2, usize::from(first))));
    }
    if first == 0x80 {
        return Err("indefinite length is not allowed".into());
    }
    let count = usize::from(first & 0x7f);
    if count > 4 {
        return Err(format!("length of {count} octets is too long"));
    }
    let Some(octets) = data.get(2..2 + count) else {
        return Ok(None);
    };
    let mut length: u64 = 0;
    for b in octets {
        length = (length << 8) | u64::from(*b);
    }
    let length = usize::try_from(length).map_err(|_| "length does not fit".to_string())?;
    Ok(Some((tag, 2 + count, length)))
}
