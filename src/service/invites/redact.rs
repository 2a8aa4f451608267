//! The redacted `display_name` of an invited address: it ends up in room state, so it must
//! not reveal the address.

/// `local@domain` with each part shortened by [`redact_part`].
pub fn redact_address(address: &str, local_chars: usize, domain_chars: usize) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!(
            "{}@{}",
            redact_part(local, local_chars),
            redact_part(domain, domain_chars)
        ),
        None => redact_part(address, local_chars),
    }
}

/// Sydent's rule: a part longer than `keep` keeps its first `keep` characters; a shorter one
/// keeps a quarter of its characters (rounded down), so short parts are not given away whole.
/// Either way `...` follows.
pub fn redact_part(part: &str, keep: usize) -> String {
    let chars: Vec<char> = part.chars().collect();
    let shown = if chars.len() > keep {
        keep
    } else {
        chars.len() / 4
    };
    let mut out: String = chars[..shown].iter().collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_redacted_part_by_part() {
        let cases = [
            ("carol.longname@example.test", 3, 3, "car...@exa..."),
            ("bo@x.io", 3, 3, "...@x.i..."),
            ("abc@abcd", 3, 3, "...@abc..."),
            ("abcdefgh@ab", 9, 3, "ab...@..."),
            ("a@b", 3, 3, "...@..."),
            ("carol.longname@example.test", 5, 1, "carol...@e..."),
            ("émilie@café.fr", 3, 3, "émi...@caf..."),
            ("x@example.org", 0, 0, "...@..."),
        ];
        for (address, local, domain, expected) in cases {
            assert_eq!(
                redact_address(address, local, domain),
                expected,
                "{address}"
            );
        }
    }
}
