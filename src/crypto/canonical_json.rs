//! Matrix canonical JSON (appendix "Canonical JSON").
//!
//! This module owns the one byte-exact serialisation that every signature in the server is computed
//! over. The output matches Python's
//! `json.dumps(v, ensure_ascii=False, separators=(',', ':'), sort_keys=True)`:
//!
//! * no insignificant whitespace;
//! * object keys sorted by Unicode code point. The keys are sorted here, so the result does not
//!   depend on the map ordering of `serde_json` (for example with its `preserve_order` feature);
//! * strings as raw UTF-8, escaping only `"`, `\` and control characters, using the short escapes
//!   `\b \t \n \f \r \" \\` and `\u00xx` (lowercase hex) for the other control characters.
//!   Neither `/` nor non-ASCII characters are escaped;
//! * numbers must be integers in `[-(2^53)+1, 2^53-1]`. A float that holds an exact integer in that
//!   range (as `serde_json` produces for `-0` or `1e10`) is written as that integer; any other
//!   float, and any integer outside the range, is an error.

use std::fmt;

use serde_json::{Map, Number, Value};

/// The largest magnitude an integer may have in canonical JSON: 2^53 - 1.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Why a value cannot be encoded as canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanonicalJsonError {
    /// An integer (or integral float) outside `[-(2^53)+1, 2^53-1]`. Holds the number as text.
    IntegerOutOfRange(String),
    /// A number that is not an integer (a fraction, or not finite). Holds the number as text.
    NotAnInteger(String),
}

impl fmt::Display for CanonicalJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IntegerOutOfRange(n) => write!(
                f,
                "integer {n} is outside the canonical JSON range [-(2^53)+1, 2^53-1]"
            ),
            Self::NotAnInteger(n) => {
                write!(
                    f,
                    "number {n} is not an integer; canonical JSON forbids floats"
                )
            }
        }
    }
}

impl std::error::Error for CanonicalJsonError {}

/// Encodes `value` as Matrix canonical JSON.
///
/// # Errors
///
/// Returns [`CanonicalJsonError`] if the value contains a number that is not an integer in
/// `[-(2^53)+1, 2^53-1]` (integral floats such as `-0.0` or `1e10` are accepted and normalised).
pub fn encode(value: &Value) -> Result<String, CanonicalJsonError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

/// Encodes the JSON object `map` as canonical JSON, leaving out the top-level keys in `exclude`.
///
/// This is what signing needs: the canonical form of an object without its `signatures` and
/// `unsigned` members, computed without cloning or mutating the object.
///
/// # Errors
///
/// As for [`encode`].
pub fn encode_object_excluding(
    map: &Map<String, Value>,
    exclude: &[&str],
) -> Result<String, CanonicalJsonError> {
    let mut out = String::new();
    write_object(&mut out, map, exclude)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), CanonicalJsonError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map, &[])?,
    }
    Ok(())
}

fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
    exclude: &[&str],
) -> Result<(), CanonicalJsonError> {
    let mut entries: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(key, _)| !exclude.contains(&key.as_str()))
        .collect();
    // `str` ordering is byte-wise, and UTF-8 byte order equals code point order.
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

fn write_number(out: &mut String, n: &Number) -> Result<(), CanonicalJsonError> {
    let int = if let Some(i) = n.as_i64() {
        i
    } else if let Some(u) = n.as_u64() {
        // `as_i64` failed, so `u` exceeds `i64::MAX` and is certainly out of range.
        return Err(CanonicalJsonError::IntegerOutOfRange(u.to_string()));
    } else if let Some(f) = n.as_f64() {
        if !f.is_finite() || f.fract() != 0.0 {
            return Err(CanonicalJsonError::NotAnInteger(n.to_string()));
        }
        // Compare as floats first so the cast below can neither saturate nor lose precision
        // (2^53 - 1 is exactly representable as an f64).
        if f.abs() > MAX_SAFE_INTEGER as f64 {
            return Err(CanonicalJsonError::IntegerOutOfRange(n.to_string()));
        }
        f as i64
    } else {
        return Err(CanonicalJsonError::NotAnInteger(n.to_string()));
    };
    if !(-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&int) {
        return Err(CanonicalJsonError::IntegerOutOfRange(n.to_string()));
    }
    out.push_str(&int.to_string());
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\u{08}' => Some("\\b"),
            '\t' => Some("\\t"),
            '\n' => Some("\\n"),
            '\u{0c}' => Some("\\f"),
            '\r' => Some("\\r"),
            c if u32::from(c) < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => out.push_str(&format!("\\u{:04x}", u32::from(c))),
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod vectors;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(input: &str) -> String {
        let value: Value = serde_json::from_str(input).expect("test input is valid JSON");
        encode(&value).expect("test input is canonicalisable")
    }

    #[test]
    fn spec_examples() {
        let rows: &[(&str, &str)] = &[
            ("{}", "{}"),
            (r#"{"one": 1, "two": "Two"}"#, r#"{"one":1,"two":"Two"}"#),
            (r#"{"b": "2", "a": "1"}"#, r#"{"a":"1","b":"2"}"#),
            (r#"{"b":"2","a":"1"}"#, r#"{"a":"1","b":"2"}"#),
            (r#"{"a": "日本語"}"#, r#"{"a":"日本語"}"#),
            (r#"{"本": 2, "日": 1}"#, r#"{"日":1,"本":2}"#),
            (r#"{"a": "\u65E5"}"#, r#"{"a":"日"}"#),
            (r#"{"a": null}"#, r#"{"a":null}"#),
            (r#"{"a": -0, "b": 1e10}"#, r#"{"a":0,"b":10000000000}"#),
        ];
        for (input, expected) in rows {
            assert_eq!(
                canon(input).as_bytes(),
                expected.as_bytes(),
                "input {input}"
            );
        }
    }

    #[test]
    fn spec_nested_example() {
        let input = r#"{
            "auth": {
                "success": true,
                "mxid": "@john.doe:example.com",
                "profile": {
                    "display_name": "John Doe",
                    "three_pids": [
                        {"medium": "email", "address": "john.doe@example.org"},
                        {"medium": "msisdn", "address": "123456789"}
                    ]
                }
            }
        }"#;
        let expected = r#"{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}"#;
        assert_eq!(canon(input), expected);
    }

    #[test]
    fn scalars_and_arrays() {
        assert_eq!(canon("true"), "true");
        assert_eq!(canon("false"), "false");
        assert_eq!(canon("null"), "null");
        assert_eq!(canon("[1, [], {}, \"x\"]"), "[1,[],{},\"x\"]");
        assert_eq!(canon("-17"), "-17");
    }

    #[test]
    fn keys_sorted_by_code_point() {
        // Uppercase before lowercase, shorter prefix first, BMP before astral, é after z.
        let input = r#"{"b":1,"a":2,"B":3,"ab":4,"é":5,"z":6,"😀":7,"本":8,"":9}"#;
        assert_eq!(
            canon(input),
            r#"{"":9,"B":3,"a":2,"ab":4,"b":1,"z":6,"é":5,"本":8,"😀":7}"#
        );
    }

    #[test]
    fn sorting_does_not_rely_on_map_order() {
        // Keys are sorted by the encoder even when excluded keys and nesting are involved.
        let mut map = Map::new();
        map.insert("zeta".into(), json!({"y": 1, "x": 2}));
        map.insert("alpha".into(), json!(true));
        map.insert("signatures".into(), json!({}));
        assert_eq!(
            encode_object_excluding(&map, &["signatures", "unsigned"]).as_deref(),
            Ok(r#"{"alpha":true,"zeta":{"x":2,"y":1}}"#)
        );
    }

    #[test]
    fn string_escaping() {
        let s: String = (0u8..0x20).map(char::from).collect();
        let value = Value::String(format!("{s}\"\\/\u{7f}é日😀"));
        let expected = concat!(
            "\"",
            "\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007",
            "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f",
            "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017",
            "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f",
            "\\\"\\\\/\u{7f}é日😀",
            "\""
        );
        assert_eq!(encode(&value).as_deref(), Ok(expected));
    }

    #[test]
    fn escaping_in_keys() {
        let value = json!({"a\nb": "c\u{1}d"});
        assert_eq!(encode(&value).as_deref(), Ok(r#"{"a\nb":"c\u0001d"}"#));
    }

    #[test]
    fn integer_range_limits() {
        assert_eq!(canon("9007199254740991"), "9007199254740991");
        assert_eq!(canon("-9007199254740991"), "-9007199254740991");
        for input in [
            "9007199254740992",
            "-9007199254740992",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let value: Value = serde_json::from_str(input).expect("valid JSON");
            assert!(
                matches!(
                    encode(&value),
                    Err(CanonicalJsonError::IntegerOutOfRange(_))
                ),
                "{input} must be rejected"
            );
        }
        let nested = json!({"a": [1, {"b": 9_007_199_254_740_992_u64}]});
        assert!(matches!(
            encode(&nested),
            Err(CanonicalJsonError::IntegerOutOfRange(_))
        ));
    }

    #[test]
    fn integral_floats_normalised() {
        assert_eq!(canon("-0"), "0");
        assert_eq!(canon("-0.0"), "0");
        assert_eq!(canon("1e10"), "10000000000");
        assert_eq!(canon("2.0"), "2");
        assert_eq!(canon("-1E3"), "-1000");
        // Built directly: serde_json's default (not correctly rounded) float parser is off by one
        // ulp for some long decimal literals, which is a parsing matter, not an encoding one.
        assert_eq!(
            encode(&json!(9_007_199_254_740_991.0_f64)).as_deref(),
            Ok("9007199254740991")
        );
        assert_eq!(
            encode(&json!(-9_007_199_254_740_991.0_f64)).as_deref(),
            Ok("-9007199254740991")
        );
        assert!(matches!(
            encode(&json!(1e300)),
            Err(CanonicalJsonError::IntegerOutOfRange(_))
        ));
        assert!(matches!(
            encode(&json!(9_007_199_254_740_992.0)),
            Err(CanonicalJsonError::IntegerOutOfRange(_))
        ));
    }

    #[test]
    fn fractions_rejected() {
        for input in ["1.5", "-0.25", r#"{"a": [0.1]}"#, "1e-3"] {
            let value: Value = serde_json::from_str(input).expect("valid JSON");
            assert!(
                matches!(encode(&value), Err(CanonicalJsonError::NotAnInteger(_))),
                "{input} must be rejected"
            );
        }
    }

    #[test]
    fn error_display() {
        let err = encode(&json!(1.5)).expect_err("fraction");
        assert!(err.to_string().contains("1.5"));
        let err: Box<dyn std::error::Error> = Box::new(err);
        assert!(err.source().is_none());
    }
}

/// Property tests (issue 16; `fuzz/fuzz_targets/canonical_json.rs` is the fuzz target).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use super::*;

    /// JSON values whose numbers are all allowed: integers in range, some as integral floats.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).prop_map(|n| json!(n)),
            (-(1i64 << 40)..(1i64 << 40)).prop_map(|n| json!(n as f64)),
            any::<String>().prop_map(Value::String),
            "[\\u{0}-\\u{1f}\"\\\\/a-z]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    /// Equality with numbers compared by value (`2.0` is written as `2`).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    fn integers_only(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.is_i64() || n.is_u64(),
            Value::Array(items) => items.iter().all(integers_only),
            Value::Object(map) => map.values().all(integers_only),
            _ => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn output_reads_back_as_the_input_and_is_a_fixed_point(v in value()) {
            let text = encode(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            prop_assert!(same(&v, &back), "{} does not read back as the input", text);
            prop_assert_eq!(encode(&back).unwrap(), text.clone());
            // serde_json without preserve_order keeps objects sorted by code point, compact,
            // with the same escapes: for integers it writes canonical JSON too.
            if integers_only(&v) {
                prop_assert_eq!(serde_json::to_string(&v).unwrap(), text);
            }
        }

        #[test]
        fn excluding_keys_is_encoding_without_them(
            map in prop::collection::btree_map("[a-c]{0,2}", value(), 0..6),
            exclude in prop::collection::vec("[a-c]{0,2}", 0..3),
        ) {
            let map: Map<String, Value> = map.into_iter().collect();
            let exclude: Vec<&str> = exclude.iter().map(String::as_str).collect();
            let mut rest = map.clone();
            rest.retain(|k, _| !exclude.contains(&k.as_str()));
            prop_assert_eq!(
                encode_object_excluding(&map, &exclude),
                encode(&Value::Object(rest))
            );
        }

        #[test]
        fn forbidden_numbers_are_refused_wherever_they_are(
            v in value(),
            bad in prop_oneof![
                (MAX_SAFE_INTEGER + 1..=i64::MAX).prop_map(|n| json!(n)),
                (i64::MIN..=-MAX_SAFE_INTEGER - 1).prop_map(|n| json!(n)),
                (i64::MAX as u64 + 1..=u64::MAX).prop_map(|n| json!(n)),
                (-1e6f64..1e6).prop_filter("a fraction", |f| f.fract() != 0.0).prop_map(|f| json!(f)),
                (9.1e15f64..1e300).prop_map(|f| json!(f)),
            ],
            key in any::<String>(),
        ) {
            let wrapped = json!([v.clone(), {key: [bad.clone()]}]);
            prop_assert!(encode(&bad).is_err(), "{} was encoded", bad);
            prop_assert!(encode(&wrapped).is_err());
        }
    }
}
