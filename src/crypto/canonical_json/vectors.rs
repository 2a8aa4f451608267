//! Our encoder against Python's `canonicaljson` (the package Synapse and sydent sign with), on
//! the vectors of `tests/fixtures/canonical_json/vectors.jsonl`, written by `generate.py` next
//! to them (see the README there for the command). Each input is parsed here with `serde_json`
//! and encoded; the result must match byte for byte.
//!
//! Deliberate differences, both required by the Matrix spec's canonical JSON (and by
//! shared/spec/identity-api.md section 11), which canonicaljson 2.0.0 does not enforce:
//! - an integral float (`-0.0`, `1e10`, `2.0`) is written as the integer (`0`, `10000000000`,
//!   `2`), where canonicaljson writes Python's float form (`-0.0`, `10000000000.0`, `2.0`);
//! - a fraction, or an integer outside [-(2^53)+1, 2^53-1], is refused, where canonicaljson
//!   writes it as it is.

use serde::Deserialize;
use serde_json::Value;

use super::encode;

#[derive(Deserialize)]
struct Vector {
    name: String,
    /// A JSON text.
    input: String,
    /// canonicaljson's encoding, or `None` where it raised.
    canonicaljson: Option<String>,
    /// "same", "normalised" or "rejected".
    expect: String,
    /// Our expected encoding, for "normalised".
    ours: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/canonical_json/vectors.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("the vector file is committed");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad vector line {l}: {e}")))
        .collect()
}

#[test]
fn encodings_match_python_canonicaljson_byte_for_byte() {
    let vectors = vectors();
    assert!(vectors.len() >= 500, "only {} vectors", vectors.len());
    let mut counts = [0usize; 3];
    let mut failures = Vec::new();
    for v in &vectors {
        let value: Value = serde_json::from_str(&v.input)
            .unwrap_or_else(|e| panic!("{}: serde_json cannot parse the input: {e}", v.name));
        let ours = encode(&value);
        let ok = match v.expect.as_str() {
            "same" => {
                counts[0] += 1;
                let theirs = v
                    .canonicaljson
                    .as_deref()
                    .expect("a 'same' vector has bytes");
                ours.as_deref().ok().map(str::as_bytes) == Some(theirs.as_bytes())
            }
            "normalised" => {
                counts[1] += 1;
                let want = v.ours.as_deref().expect("a 'normalised' vector has 'ours'");
                // The difference is real: canonicaljson keeps the float form.
                assert_ne!(v.canonicaljson.as_deref(), Some(want), "{}", v.name);
                ours.as_deref().ok() == Some(want)
            }
            "rejected" => {
                counts[2] += 1;
                ours.is_err()
            }
            other => panic!("{}: unknown expectation {other}", v.name),
        };
        if !ok {
            failures.push(format!(
                "{} ({}): input {:?}\n  canonicaljson {:?}\n  ours          {:?}",
                v.name, v.expect, v.input, v.canonicaljson, ours
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
    // Each kind is exercised, so a regenerated file cannot silently drop one.
    assert!(counts.iter().all(|&n| n >= 10), "{counts:?}");
}
