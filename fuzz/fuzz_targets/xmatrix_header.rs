//! The `Authorization: X-Matrix ...` parser (`oxisd::service::xmatrix::parse_header`): any
//! header value parses or is refused without a panic; a header formatted from any four values
//! (quoted, `"` and `\` escaped, as the spec writes it) parses back into them; and what one
//! header parses into, formatted again, parses into the same.
//!
//! Input: four values separated by NUL bytes (origin, key, sig, destination), or any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::service::xmatrix::{XMatrix, parse_header};

fn quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn format(x: &XMatrix) -> String {
    let mut header = format!(
        "X-Matrix origin={},key={},sig={}",
        quoted(&x.origin),
        quoted(&x.key),
        quoted(&x.sig)
    );
    if let Some(d) = &x.destination {
        header.push_str(&format!(",destination={}", quoted(d)));
    }
    header
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(parsed) = parse_header(&text) {
        assert_eq!(
            parse_header(&format(&parsed)).as_ref(),
            Some(&parsed),
            "{text:?}"
        );
    }
    // Header values cannot hold control characters (RFC 9110, 5.5).
    let parts: Vec<String> = text
        .split('\0')
        .map(|p| p.chars().filter(|c| !c.is_control()).collect())
        .collect();
    if let [origin, key, sig, rest @ ..] = parts.as_slice() {
        let x = XMatrix {
            origin: origin.clone(),
            key: key.clone(),
            sig: sig.clone(),
            destination: rest.first().cloned(),
        };
        assert_eq!(parse_header(&format(&x)), Some(x));
    }
});
