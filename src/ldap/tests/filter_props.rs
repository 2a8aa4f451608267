//! Random filters: formatted and parsed back, encoded and decoded back.

use proptest::prelude::*;

use crate::ldap::{Filter, parse_filter};

fn attr() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9-]{0,8}(;[a-zA-Z0-9-]{1,6}){0,2}",
        "[1-9][0-9]{0,3}(\\.(0|[1-9][0-9]{0,3})){1,4}",
    ]
}

fn rule() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9-]{0,8}"
            .prop_filter("dn is dnAttributes", |r| !r.eq_ignore_ascii_case("dn")),
        "[1-9][0-9]{0,3}(\\.(0|[1-9][0-9]{0,3})){1,4}",
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..8),
        "[ -~é€*()\\\\]{0,8}".prop_map(String::into_bytes),
    ]
}

fn part() -> impl Strategy<Value = Vec<u8>> {
    value().prop_filter("substrings are not empty", |v| !v.is_empty())
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (attr(), value()).prop_map(|(attr, value)| Filter::Equality { attr, value }),
        (attr(), value()).prop_map(|(attr, value)| Filter::GreaterOrEqual { attr, value }),
        (attr(), value()).prop_map(|(attr, value)| Filter::LessOrEqual { attr, value }),
        (attr(), value()).prop_map(|(attr, value)| Filter::Approx { attr, value }),
        attr().prop_map(Filter::Present),
        (
            attr(),
            proptest::option::of(part()),
            proptest::collection::vec(part(), 0..3),
            proptest::option::of(part())
        )
            .prop_filter("at least one part", |(_, i, a, f)| i.is_some()
                || !a.is_empty()
                || f.is_some())
            .prop_map(|(attr, initial, any, final_)| Filter::Substrings {
                attr,
                initial,
                any,
                final_
            }),
        (
            proptest::option::of(rule()),
            proptest::option::of(attr()),
            value(),
            any::<bool>()
        )
            .prop_filter("an attribute or a rule", |(r, a, _, _)| r.is_some()
                || a.is_some())
            .prop_map(|(rule, attr, value, dn_attributes)| Filter::Extensible {
                rule,
                attr,
                value,
                dn_attributes
            }),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #[test]
    fn formatted_filters_parse_back(filter in filter()) {
        let text = filter.to_string();
        prop_assert_eq!(parse_filter(&text), Ok(filter.clone()), "{}", text);
        let mut bytes = Vec::new();
        filter.encode(&mut bytes);
        prop_assert_eq!(Filter::decode(&bytes), Ok(filter));
    }

    #[test]
    fn parsing_never_panics(text in "[()&|!=*~<>:a-c0-2.;\\\\ ]{0,40}") {
        let _ = parse_filter(&text);
    }

    #[test]
    fn ber_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = Filter::decode(&bytes);
        let _ = crate::ldap::message::decode_response(&bytes);
    }
}
