//! Canonical JSON (`oxisd::crypto::canonical_json`): any JSON document that encodes gives text
//! that parses back to the same value, encodes to itself again, has its keys sorted and no
//! insignificant whitespace, and equals serde_json's compact writer when it holds only
//! integers. A document is refused exactly when it holds a number canonical JSON forbids.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::crypto::canonical_json::{encode, encode_object_excluding};
use serde_json::Value;

const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Whether every number is an integer in [-(2^53)+1, 2^53-1] (or a float holding one).
fn encodable(v: &Value) -> bool {
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.unsigned_abs() <= MAX_SAFE as u64,
            (None, Some(_), _) => false,
            (None, None, Some(f)) => f.is_finite() && f.fract() == 0.0 && f.abs() <= MAX_SAFE,
            _ => false,
        },
        Value::Array(items) => items.iter().all(encodable),
        Value::Object(map) => map.values().all(encodable),
        _ => true,
    }
}

/// Whether every number is stored as an integer (so serde_json writes it as canonical JSON does).
fn integers_only(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(integers_only),
        Value::Object(map) => map.values().all(integers_only),
        _ => true,
    }
}

/// Equality with numbers compared by value (the encoding writes `-0.0` as `0`, `1e3` as `1000`).
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

/// Whether the text has whitespace outside strings.
fn has_loose_whitespace(text: &str) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c.is_whitespace() {
            return true;
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let text = match encode(&value) {
        Ok(text) => text,
        Err(e) => {
            assert!(!encodable(&value), "refused an encodable value: {e}");
            return;
        }
    };
    assert!(encodable(&value), "encoded a value with a forbidden number");
    assert!(!has_loose_whitespace(&text), "whitespace in {text}");
    let back: Value = serde_json::from_str(&text).expect("canonical JSON is JSON");
    assert!(
        same(&value, &back),
        "{text} does not read back as the input"
    );
    assert_eq!(
        encode(&back).as_deref(),
        Ok(text.as_str()),
        "not idempotent"
    );
    if integers_only(&value) {
        // serde_json (without preserve_order) keeps objects in a BTreeMap: keys sorted by
        // code point, compact, the same string escapes.
        assert_eq!(serde_json::to_string(&value).ok(), Some(text.clone()));
    }
    if let Value::Object(map) = &value {
        // Leaving keys out is the same as encoding the object without them.
        let excluded: Vec<&str> = map.keys().step_by(2).map(String::as_str).collect();
        let mut rest = map.clone();
        rest.retain(|k, _| !excluded.contains(&k.as_str()));
        assert_eq!(
            encode_object_excluding(map, &excluded),
            encode(&Value::Object(rest))
        );
    }
});
