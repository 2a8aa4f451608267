//! Search filters: the [`Filter`] tree, its RFC 4515 string form (parsing and formatting) and
//! value escaping. The BER form is in `filter_ber.rs`.

use std::fmt;

/// How deep filters may nest (`(&(|(!(...` levels) when parsed from text or BER.
pub const MAX_FILTER_DEPTH: usize = 64;

/// A search filter (RFC 4511 4.5.1). Values are octets: `\XX` escapes may make them non-UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `(&...)`: all of them match (at least one part).
    And(Vec<Filter>),
    /// `(|...)`: any of them matches (at least one part).
    Or(Vec<Filter>),
    /// `(!...)`: the filter does not match.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equality {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr=initial*any*...*final)`: at least one of the parts is present; none is empty.
    Substrings {
        /// Attribute description.
        attr: String,
        /// The part before the first `*`, if any.
        initial: Option<Vec<u8>>,
        /// The parts between two `*`.
        any: Vec<Vec<u8>>,
        /// The part after the last `*`, if any.
        final_: Option<Vec<u8>>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr<=value)`.
    LessOrEqual {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr=*)`: the attribute is present.
    Present(String),
    /// `(attr~=value)`.
    Approx {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr:dn:rule:=value)` and its variants: at least one of `attr` and `rule`.
    Extensible {
        /// The matching rule (OID or name), if given.
        rule: Option<String>,
        /// The attribute description, if given.
        attr: Option<String>,
        /// The assertion value.
        value: Vec<u8>,
        /// `:dn`: also match the attributes of the entry's DN.
        dn_attributes: bool,
    },
}

impl Filter {
    /// `(&parts...)`.
    pub fn and(parts: Vec<Filter>) -> Filter {
        Filter::And(parts)
    }

    /// `(attr=value)`, the value taken literally (no escapes, no wildcards).
    pub fn equality(attr: &str, value: &str) -> Filter {
        Filter::Equality {
            attr: attr.to_string(),
            value: value.as_bytes().to_vec(),
        }
    }
}

/// RFC 4515 escaping of a value for a filter string: `*`, `(`, `)`, `\` and NUL become `\2a`,
/// `\28`, `\29`, `\5c` and `\00`; every other character is kept.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes octets for the string form: the specials always, and every non-ASCII octet too
/// when the value is not UTF-8.
fn write_value(f: &mut fmt::Formatter<'_>, value: &[u8]) -> fmt::Result {
    match std::str::from_utf8(value) {
        Ok(text) => f.write_str(&escape_value(text)),
        Err(_) => {
            for b in value {
                match b {
                    b'*' | b'(' | b')' | b'\\' | 0 | 0x80.. => write!(f, "\\{b:02x}")?,
                    b => write!(f, "{}", char::from(*b))?,
                }
            }
            Ok(())
        }
    }
}

impl fmt::Display for Filter {
    /// The RFC 4515 string form, parenthesised; [`parse_filter`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                f.write_str(if matches!(self, Filter::And(_)) {
                    "(&"
                } else {
                    "(|"
                })?;
                for part in parts {
                    write!(f, "{part}")?;
                }
                f.write_str(")")
            }
            Filter::Not(inner) => write!(f, "(!{inner})"),
            Filter::Equality { attr, value }
            | Filter::GreaterOrEqual { attr, value }
            | Filter::LessOrEqual { attr, value }
            | Filter::Approx { attr, value } => {
                let op = match self {
                    Filter::GreaterOrEqual { .. } => ">=",
                    Filter::LessOrEqual { .. } => "<=",
                    Filter::Approx { .. } => "~=",
                    _ => "=",
                };
                write!(f, "({attr}{op}")?;
                write_value(f, value)?;
                f.write_str(")")
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => {
                write!(f, "({attr}=")?;
                if let Some(initial) = initial {
                    write_value(f, initial)?;
                }
                f.write_str("*")?;
                for part in any {
                    write_value(f, part)?;
                    f.write_str("*")?;
                }
                if let Some(final_) = final_ {
                    write_value(f, final_)?;
                }
                f.write_str(")")
            }
            Filter::Present(attr) => write!(f, "({attr}=*)"),
            Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes,
            } => {
                f.write_str("(")?;
                if let Some(attr) = attr {
                    f.write_str(attr)?;
                }
                if *dn_attributes {
                    f.write_str(":dn")?;
                }
                if let Some(rule) = rule {
                    write!(f, ":{rule}")?;
                }
                f.write_str(":=")?;
                write_value(f, value)?;
                f.write_str(")")
            }
        }
    }
}

/// Parses an RFC 4515 filter string. The whole filter must be parenthesised, except that a
/// single simple item without parentheses (`objectClass=person`) is accepted too. Surrounding
/// white space is ignored. Errors say at which byte offset what was expected.
pub fn parse_filter(text: &str) -> Result<Filter, String> {
    let trimmed = text.trim();
    let offset = text.len() - text.trim_start().len();
    let mut parser = Parser {
        text: trimmed.as_bytes(),
        pos: 0,
        offset,
    };
    if trimmed.is_empty() {
        return Err("empty filter".into());
    }
    let filter = if trimmed.starts_with('(') {
        parser.filter(0)?
    } else {
        parser.item()?
    };
    if parser.pos != parser.text.len() {
        return Err(parser.error("end of filter"));
    }
    Ok(filter)
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    /// Where `text` starts in what the caller passed (for error offsets).
    offset: usize,
}

impl Parser<'_> {
    fn error(&self, expected: &str) -> String {
        match self.text.get(self.pos) {
            Some(b) if b.is_ascii_graphic() || *b == b' ' => format!(
                "at offset {}: expected {expected}, found '{}'",
                self.pos + self.offset,
                char::from(*b)
            ),
            Some(b) => format!(
                "at offset {}: expected {expected}, found byte 0x{b:02x}",
                self.pos + self.offset
            ),
            None => format!(
                "at offset {}: expected {expected}, found the end",
                self.pos + self.offset
            ),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8, expected: &str) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    /// filter = "(" filtercomp ")"
    fn filter(&mut self, depth: usize) -> Result<Filter, String> {
        if depth >= MAX_FILTER_DEPTH {
            return Err(format!(
                "at offset {}: filter nested more than {MAX_FILTER_DEPTH} levels deep",
                self.pos + self.offset
            ));
        }
        self.eat(b'(', "'('")?;
        let filter = match self.peek() {
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list(depth)?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list(depth)?)
            }
            Some(b'!') => {
                self.pos += 1;
                Filter::Not(Box::new(self.filter(depth + 1)?))
            }
            _ => self.item()?,
        };
        self.eat(b')', "')'")?;
        Ok(filter)
    }

    /// filterlist = 1*filter
    fn list(&mut self, depth: usize) -> Result<Vec<Filter>, String> {
        let mut parts = Vec::new();
        while self.peek() == Some(b'(') {
            parts.push(self.filter(depth + 1)?);
        }
        if parts.is_empty() {
            return Err(self.error("'(' (a filter list needs at least one filter)"));
        }
        Ok(parts)
    }

    /// An attribute description or a matching rule: descr or numericoid, then ;options
    /// (options only when `options`).
    fn name(&mut self, what: &str, options: bool) -> Result<String, String> {
        let start = self.pos;
        let first = self.peek().ok_or_else(|| self.error(what))?;
        if first.is_ascii_alphabetic() {
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                self.pos += 1;
            }
        } else if first.is_ascii_digit() {
            loop {
                let number_start = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
                let number = &self.text[number_start..self.pos];
                if number.is_empty() || (number.len() > 1 && number[0] == b'0') {
                    return Err(self.error("a number in the OID (no leading zeros)"));
                }
                if self.peek() == Some(b'.') {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        } else {
            return Err(self.error(what));
        }
        while options && self.peek() == Some(b';') {
            self.pos += 1;
            let option_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                self.pos += 1;
            }
            if self.pos == option_start {
                return Err(self.error("an attribute option after ';'"));
            }
        }
        Ok(String::from_utf8_lossy(&self.text[start..self.pos]).into_owned())
    }

    /// item = simple / present / substring / extensible (without the parentheses).
    fn item(&mut self) -> Result<Filter, String> {
        let attr = if self.peek() == Some(b':') {
            None
        } else {
            Some(self.name("an attribute description", true)?)
        };
        if self.peek() == Some(b':') {
            return self.extensible(attr);
        }
        let attr = attr.unwrap_or_default();
        let op = match (self.peek(), self.text.get(self.pos + 1).copied()) {
            (Some(b'='), _) => b'=',
            (Some(op @ (b'~' | b'>' | b'<')), Some(b'=')) => op,
            _ => return Err(self.error("'=', '~=', '>=', '<=' or ':'")),
        };
        self.pos += if op == b'=' { 1 } else { 2 };
        if op != b'=' {
            let value = self.value()?;
            return Ok(match op {
                b'~' => Filter::Approx { attr, value },
                b'>' => Filter::GreaterOrEqual { attr, value },
                _ => Filter::LessOrEqual { attr, value },
            });
        }
        // "=": equality, presence or substrings, told apart by unescaped '*'.
        let mut parts = vec![self.value()?];
        while self.peek() == Some(b'*') {
            self.pos += 1;
            parts.push(self.value()?);
        }
        if parts.len() == 1 {
            let value = parts.pop().unwrap_or_default();
            return Ok(Filter::Equality { attr, value });
        }
        if parts.len() == 2 && parts.iter().all(Vec::is_empty) {
            return Ok(Filter::Present(attr));
        }
        let final_ = parts.pop().filter(|p| !p.is_empty());
        let initial = Some(parts.remove(0)).filter(|p| !p.is_empty());
        if parts.iter().any(Vec::is_empty) {
            return Err(format!(
                "at offset {}: empty substring between two '*'",
                self.pos + self.offset
            ));
        }
        Ok(Filter::Substrings {
            attr,
            initial,
            any: parts,
            final_,
        })
    }

    /// extensible = attr [":dn"] [":" rule] ":=" value / [":dn"] ":" rule ":=" value
    fn extensible(&mut self, attr: Option<String>) -> Result<Filter, String> {
        let mut dn_attributes = false;
        let mut rule = None;
        // ":dn" (ABNF strings are case-insensitive) followed by ':' is dnAttributes, never a
        // matching rule named "dn".
        if self
            .text
            .get(self.pos..self.pos + 4)
            .is_some_and(|t| t.eq_ignore_ascii_case(b":dn:"))
        {
            dn_attributes = true;
            self.pos += 3;
        }
        if self.text[self.pos..].starts_with(b":=") {
            self.pos += 2;
        } else {
            self.eat(b':', "':'")?;
            rule = Some(self.name("a matching rule OID or name", false)?);
            if !self.text[self.pos..].starts_with(b":=") {
                return Err(self.error("':='"));
            }
            self.pos += 2;
        }
        if attr.is_none() && rule.is_none() {
            return Err(
                self.error("a matching rule (an extensible filter without an attribute needs one)")
            );
        }
        let value = self.value()?;
        Ok(Filter::Extensible {
            rule,
            attr,
            value,
            dn_attributes,
        })
    }

    /// An assertion value up to the next unescaped '*' or ')' (or the end), \XX decoded.
    fn value(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b'*' | b')' => break,
                b'(' => return Err(self.error("a value ('(' must be escaped as \\28)")),
                0 => return Err(self.error("a value (NUL must be escaped as \\00)")),
                b'\\' => {
                    let hex = self.text.get(self.pos + 1..self.pos + 3);
                    let byte = hex
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match byte {
                        Some(byte) => {
                            out.push(byte);
                            self.pos += 3;
                        }
                        None => return Err(self.error("two hex digits after '\\'")),
                    }
                }
                b => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        Ok(out)
    }
}
