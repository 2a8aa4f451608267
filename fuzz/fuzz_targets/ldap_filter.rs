//! The RFC 4515 filter parser (`oxisd::ldap::parse_filter`), which reads `stores.ldap.filter`
//! and the per-user filters built with `escape_value`: any text parses or is refused without a
//! panic; a parsed filter printed again parses into the same filter, and survives the BER
//! round trip; a value escaped with `escape_value` stays one value.
//!
//! Input: any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::ldap::{Filter, escape_value, parse_filter};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(filter) = parse_filter(&text) {
        let printed = filter.to_string();
        let again = parse_filter(&printed).expect("a printed filter parses");
        assert_eq!(again, filter, "printed as {printed}");
        let mut encoded = Vec::new();
        filter.encode(&mut encoded);
        assert_eq!(Filter::decode(&encoded).expect("decodes"), filter);
    }
    // Whatever the value, escaped it is one equality item on `uid`.
    let one = parse_filter(&format!("(uid={})", escape_value(&text))).expect("escaped value");
    assert_eq!(one, Filter::equality("uid", &text));
});
