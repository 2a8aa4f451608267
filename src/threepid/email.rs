//! Email addresses: what we accept, and the normal form we store, hash and compare.
//!
//! We accept one bare address (`local@domain`): no display name, no angle brackets, no comments,
//! no quoted local parts, no whitespace, control or format characters (Unicode category Cf:
//! zero-width spaces, soft hyphens, bidirectional overrides, which make two addresses look alike
//! or one look like another). The normal form is the Unicode
//! full case folding of the whole address (MSC2265; `Strauß@Example.com` is
//! `strauss@example.com`), as sydent stores it.
//!
//! Internationalised domains have one form too: the Unicode one (U-labels, case-folded), which
//! is what people type and what clients hash. An ASCII-compatible label (`xn--bcher-kva`) is
//! decoded (`x@XN--BCHER-KVA.example` is `x@bücher.example`), so both spellings are one 3PID
//! for sessions, binds, invites and lookups; an `xn--` label that is not the exact Punycode of
//! a non-ASCII label is refused. Mail is addressed to the ASCII form ([`to_ace`]). A client
//! that hashes the `xn--` spelling itself finds nothing, as it would for any other
//! unnormalised spelling. This is IDNA's label conversion (RFC 3492), not the whole UTS #46
//! mapping (no NFKC, no bidi or joiner rules): the `idna` crate would add about twenty crates
//! of Unicode tables to a binary near its size budget.

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
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if domain.is_empty() || !domain.split('.').all(label_ok) {
        return Err(bad("the domain is not a valid host name"));
    }
    if let Some(folded) = fold_ascii(input) {
        return Ok(folded);
    }
    let folded = caseless::default_case_fold_str(input);
    let (local, domain) = folded
        .rsplit_once('@')
        .ok_or_else(|| bad("it has no '@'"))?;
    let domain = unicode_domain(domain)
        .ok_or_else(|| bad("the domain is not a valid internationalised host name"))?;
    Ok(format!("{local}@{domain}"))
}

/// The normal form of a checked address that is all ASCII with no `xn--` label, or `None`.
/// Most addresses are; this is what [`normalise`]'s Unicode path gives them (full case folding
/// of ASCII is lower-casing, and such a domain is already in its one form), without its work
/// (bulk lookups normalise thousands of addresses per request).
fn fold_ascii(input: &str) -> Option<String> {
    if !input.is_ascii() {
        return None;
    }
    let folded = input.to_ascii_lowercase();
    let (_, domain) = folded.rsplit_once('@')?;
    if domain.split('.').any(|label| label.starts_with("xn--")) {
        return None;
    }
    Some(folded)
}

/// The Unicode form of a case-folded domain: `xn--` labels decoded (they must be the exact
/// Punycode of a non-ASCII label), and every label short enough in its ASCII form.
fn unicode_domain(domain: &str) -> Option<String> {
    let mut labels = Vec::new();
    for label in domain.split('.') {
        let unicode = match label.strip_prefix("xn--") {
            Some(puny) => {
                let decoded = super::punycode::decode(puny)?;
                let canonical = !decoded.is_ascii()
                    && super::punycode::encode(&decoded).as_deref() == Some(puny)
                    && caseless::default_case_fold_str(&decoded) == decoded
                    && !decoded.starts_with('-')
                    && !decoded.ends_with('-')
                    && decoded.chars().all(|c| c.is_alphanumeric() || c == '-');
                if !canonical {
                    return None;
                }
                decoded
            }
            None => label.to_string(),
        };
        if ace_label(&unicode)?.len() > 63 {
            return None;
        }
        labels.push(unicode);
    }
    Some(labels.join("."))
}

fn ace_label(label: &str) -> Option<String> {
    if label.is_ascii() {
        Some(label.to_string())
    } else {
        super::punycode::encode(label).map(|p| format!("xn--{p}"))
    }
}

/// `address` with its domain in ASCII form (`x@bücher.example` is `x@xn--bcher-kva.example`),
/// for the SMTP envelope.
pub fn to_ace(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return address.to_string();
    };
    if domain.is_ascii() {
        return address.to_string();
    }
    let labels: Option<Vec<String>> = domain.split('.').map(ace_label).collect();
    match labels {
        Some(labels) => format!("{local}@{}", labels.join(".")),
        None => address.to_string(),
    }
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
    fn the_ascii_shortcut_gives_what_the_unicode_path_gives() {
        let unicode_path = |input: &str| {
            let folded = caseless::default_case_fold_str(input);
            let (local, domain) = folded.rsplit_once('@').unwrap();
            format!("{local}@{}", unicode_domain(domain).unwrap())
        };
        for input in [
            "Alice@Example.ORG",
            "a.b+tag@sub.example.co.uk",
            "X_Y-z!#$%&'*/=?^`{|}~@Host-1.EXAMPLE",
            "UPPER@LOCALHOST",
            "0@0.0",
            "x@xn.example",
            "x@a-xn--b.example",
        ] {
            assert!(normalise(input).is_ok(), "{input}");
            assert_eq!(
                fold_ascii(input).as_deref(),
                Some(unicode_path(input).as_str()),
                "{input}"
            );
        }
        // Punycode labels and non-ASCII addresses take the Unicode path.
        for input in [
            "x@xn--bcher-kva.example",
            "x@XN--BCHER-KVA.example",
            "Strauß@x.org",
        ] {
            assert_eq!(fold_ascii(input), None, "{input}");
        }
    }

    #[test]
    fn internationalised_domains_have_one_form() {
        for spelling in [
            "x@bücher.example",
            "x@BÜCHER.example",
            "x@xn--bcher-kva.example",
            "X@XN--BCHER-KVA.EXAMPLE",
        ] {
            assert_eq!(
                normalise(spelling).unwrap(),
                "x@bücher.example",
                "{spelling}"
            );
        }
        assert_eq!(
            normalise("a@xn--mnchen-3ya.xn--bcher-kva.example").unwrap(),
            "a@münchen.bücher.example"
        );
        assert_eq!(
            to_ace("x@münchen.bücher.example"),
            "x@xn--mnchen-3ya.xn--bcher-kva.example"
        );
        assert_eq!(to_ace("x@example.org"), "x@example.org");
        for bad in [
            // Not Punycode, Punycode of an ASCII label, not the canonical encoding, a label
            // whose ASCII form is too long.
            "x@xn--bcher-kv!.example",
            "x@xn--abc-.example",
            "x@xn--.example",
            "x@xn--bcher-kva0.example",
            "x@xn--tda-.example",
        ] {
            assert_eq!(
                normalise(bad).unwrap_err().kind(),
                ErrorKind::InvalidEmail,
                "{bad}"
            );
        }
        // 60 bytes of UTF-8, 65 characters in ASCII form.
        let long = "x@aéböcdëfgïhîjkôlmùnoûpqüzñtçvwxyzåäæøaéböcd.example";
        assert_eq!(normalise(long).unwrap_err().kind(), ErrorKind::InvalidEmail);
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
