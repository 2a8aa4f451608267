//! The LDAP client's reading of what a directory server sends (`oxisd::ldap::message::
//! decode_response`, and the BER filter decoder `Filter::decode`): any bytes decode or are
//! refused without a panic, and a filter decoded from bytes encodes into bytes that decode
//! into the same filter.
//!
//! Input: any bytes (an LDAPMessage, or a BER filter).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::ldap::Filter;
use oxisd::ldap::message::decode_response;

fuzz_target!(|data: &[u8]| {
    let _ = decode_response(data);
    if let Ok(filter) = Filter::decode(data) {
        let mut encoded = Vec::new();
        filter.encode(&mut encoded);
        let again = Filter::decode(&encoded).expect("an encoded filter decodes");
        assert_eq!(again, filter, "BER round trip");
    }
});
