//! Email addresses: what we accept, and the normal form we store, hash and compare.
//!
//! We accept one bare address (`local@domain`): no display name, no angle brackets, no comments,
//! no quoted local parts, no whitespace, control or format characters (Unicode category Cf:
//! zero-width spaces, soft hyphens, bidirectional overrides, which make two addresses look alike
//! or one look like another). The normal form is the Unicode
//! full case folding of the whole address (MSC2265; `Strauß@Example.com` is
//! `strauss@example.com`), as sydent stores it.

use crate::error::{Error, ErrorKind, Result};

/// Longest accepted address, in bytes (RFC 5321's path limit minus the brackets).
pub const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

/// Checks `input` and returns its normal form, or 400 `M_INVALID_EMAIL`.
pub fn normalise(input: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidEmail,
            format!("Invalid email address: {why}"),
        )
    };
    if input.is_empty() {
        return Err(bad("it is empty"));
    }
    if input.len() > MAX_LEN {
        return Err(bad("it is too long"));
    }
    if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("it contains spaces or control characters"));
    }
    if input.chars().any(is_format_char) {
        return Err(bad(
            "it contains invisible or direction-changing characters",
        ));
    }
    let Some((local, domain)) = input.rsplit_once('@') else {
        return Err(bad("it has no '@'"));
    };
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(bad("the part before '@' is empty or too long"));
    }
    const SPECIALS: &[char] = &['(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '"'];
    if local.contains(SPECIALS)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(bad("the part before '@' is not a plain mailbox name"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if domain.is_empty() || !labels.iter().all(label_ok) {
        return Err(bad("the domain is not a valid host name"));
    }
    Ok(caseless::default_case_fold_str(input))
}

/// Unicode general category Cf (format characters), as of Unicode 16.0.
pub fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_case_folded() {
        assert_eq!(normalise("Alice@Example.ORG").unwrap(), "alice@example.org");
        assert_eq!(
            normalise("Strauß@Example.com").unwrap(),
            "strauss@example.com"
        );
        assert_eq!(
            normalise("a.b+tag@sub.example.co.uk").unwrap(),
            "a.b+tag@sub.example.co.uk"
        );
        assert_eq!(normalise("x@localhost").unwrap(), "x@localhost");
    }

    #[test]
    fn anything_but_one_bare_address_is_refused() {
        for bad in [
            "",
            "noat",
            "@example.org",
            "a@",
            "Alice <alice@example.org>",
            "alice@example.org, bob@example.org",
            "a b@example.org",
            "alice@example.org\r\nBcc: x@y.z",
            "alice@exa mple.org",
            "a@b@c.org",
            "\"quoted\"@example.org",
            "a..b@example.org",
            ".a@example.org",
            "a@-example.org",
            "a@example..org",
            "a@exa_mple.org",
            "a\u{7}@example.org",
            // Format characters (category Cf): invisible or direction-changing.
            "al\u{200B}ice@example.org",
            "al\u{AD}ice@example.org",
            "\u{202E}gro.elpmaxe@ecila",
            "alice\u{2066}@example.org",
            "a\u{200D}b@example.org",
            "a\u{FEFF}@example.org",
            "a\u{2060}@example.org",
            "a\u{E0041}@example.org",
        ] {
            let e = normalise(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidEmail, "{bad:?}");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(normalise(&long).is_err());
        let longer = format!("a@{}.org", "b".repeat(260));
        assert!(normalise(&longer).is_err());
    }
}
