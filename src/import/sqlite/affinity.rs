//! Column affinity where it changes what a stored value reads as: a REAL column stores whole
//! numbers as integers and reads them back as reals, and a column added by ALTER TABLE reads
//! as its DEFAULT (converted by the column's affinity) in records written before it existed.
//! Only literal defaults are computed; others are `None` and reading a record that needs one
//! is an error (datatype3.html, lang_altertable.html).

use super::Value;
use super::schema::Affinity;

/// The value of a literal DEFAULT (`'x'`, `-5`, `1.5e3`, `0x1F`, `X'00ff'`, `NULL`, `TRUE`) with
/// the column's affinity applied, as SQLite reads it; `None` for an expression.
pub(super) fn default_value(sql: &str, affinity: Affinity) -> Option<Value> {
    apply(literal(sql)?, affinity)
}

fn literal(sql: &str) -> Option<Value> {
    match sql.to_ascii_uppercase().as_str() {
        "NULL" => return Some(Value::Null),
        "TRUE" => return Some(Value::Integer(1)),
        "FALSE" => return Some(Value::Integer(0)),
        _ => {}
    }
    if let Some(inner) = sql.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return Some(Value::Text(inner.replace("''", "'")));
    }
    if let Some(hex) = sql
        .strip_prefix(['x', 'X'])
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.strip_suffix('\''))
    {
        if hex.len() % 2 != 0 {
            return None;
        }
        return (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
            .map(Value::Blob);
    }
    let unsigned = sql.trim_start_matches(['+', '-']);
    let negative = sql.len() - unsigned.len() > 0
        && sql[..sql.len() - unsigned.len()].matches('-').count() % 2 == 1;
    if let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        // A hexadecimal literal is the 64-bit two's complement of its digits.
        let n = u64::from_str_radix(hex, 16).ok()? as i64;
        return Some(Value::Integer(if negative { n.wrapping_neg() } else { n }));
    }
    match number(unsigned)? {
        Value::Integer(n) if negative => Some(match n.checked_neg() {
            Some(n) => Value::Integer(n),
            None => Value::Real(-(n as f64)),
        }),
        Value::Real(f) if negative => Some(Value::Real(-f)),
        v => Some(v),
    }
}

/// A decimal number: an integer when it is one and fits 64 bits, else a real.
fn number(s: &str) -> Option<Value> {
    let (sign, digits) = match s.strip_prefix(['+', '-']) {
        Some(rest) => (&s[..1], rest),
        None => ("", s),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match format!("{sign}{digits}").parse::<i64>() {
            Ok(n) => Value::Integer(n),
            Err(_) => Value::Real(s.parse().ok()?),
        });
    }
    // Digits with one '.', then an optional exponent; no "inf" or "nan".
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(at) => (&digits[..at], Some(&digits[at + 1..])),
        None => (digits, None),
    };
    let mantissa_ok = mantissa.bytes().filter(|&b| b == b'.').count() <= 1
        && mantissa.bytes().any(|b| b.is_ascii_digit())
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    (mantissa_ok && exponent_ok)
        .then(|| s.parse().ok().map(Value::Real))
        .flatten()
}

/// A real that is a whole number in the 64-bit range, as an integer.
fn whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f > -9.223_372_036_854_775e18 && f < 9.223_372_036_854_775e18)
        .then_some(f as i64)
}

/// `v` converted as storing it in a column of this affinity does; `None` where the result
/// would depend on SQLite's own formatting of reals (a real into a TEXT column).
pub(super) fn apply(v: Value, affinity: Affinity) -> Option<Value> {
    Some(match (affinity, v) {
        (Affinity::Text, Value::Integer(n)) => Value::Text(n.to_string()),
        (Affinity::Text, Value::Real(_)) => return None,
        (Affinity::Integer | Affinity::Numeric, Value::Text(s)) => match number(s.trim()) {
            Some(Value::Real(f)) => whole(f).map_or(Value::Real(f), Value::Integer),
            Some(n) => n,
            None => Value::Text(s),
        },
        (Affinity::Integer | Affinity::Numeric, Value::Real(f)) => {
            whole(f).map_or(Value::Real(f), Value::Integer)
        }
        (Affinity::Real, Value::Integer(n)) => Value::Real(n as f64),
        (Affinity::Real, Value::Text(s)) => match number(s.trim()) {
            Some(Value::Integer(n)) => Value::Real(n as f64),
            Some(n) => n,
            None => Value::Text(s),
        },
        (_, v) => v,
    })
}
