//! Percent decoding of paths and query strings (`oxisd::http::percent_decode`, `parse_query`):
//! any text decodes without a panic and never grows; a string with every byte (or a mix of
//! bytes) percent-encoded, in upper- or lower-case hex, decodes to itself; a query string
//! built from encoded pairs parses back into those pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::http::{parse_query, percent_decode};

/// Encodes `s` for the decoder: `%`, `+`, `&` and `=` always (they mean something), other bytes
/// when the matching bit of `mask` says so; hex in upper or lower case after another bit.
fn encode(s: &str, mask: &[u8]) -> String {
    let mut out = String::new();
    for (i, b) in s.bytes().enumerate() {
        let bits = mask.get(i % mask.len().max(1)).copied().unwrap_or(0xff);
        let must = matches!(b, b'%' | b'+' | b'&' | b'=') || !b.is_ascii();
        if must || bits & 1 == 1 {
            if bits & 2 == 2 {
                out.push_str(&format!("%{b:02x}"));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let (mask, text) = rest.split_at(cut);
    let text = String::from_utf8_lossy(text);

    // Anything decodes, and never into more bytes than it had.
    for plus in [false, true] {
        let decoded = percent_decode(&text, plus);
        assert!(
            decoded.len() <= text.len(),
            "{text:?} grew into {decoded:?}"
        );
        if !text.contains('%') && !(plus && text.contains('+')) {
            assert_eq!(decoded, text, "nothing to decode");
        }
    }
    // Encoded text decodes to itself.
    let encoded = encode(&text, mask);
    assert_eq!(percent_decode(&encoded, false), text, "{encoded}");
    assert_eq!(percent_decode(&encoded, true), text, "{encoded}");

    // A query string: pairs split at NUL and at the first '=' of each piece of the text.
    let pairs: Vec<(String, String)> = text
        .split('\0')
        .map(|p| {
            let (k, v) = p.split_once('\u{1}').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k, mask), encode(v, mask)))
        .collect();
    assert_eq!(parse_query(&query.join("&")), pairs);
    let _ = parse_query(&text);
});
