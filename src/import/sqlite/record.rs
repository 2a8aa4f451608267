//! The record format: varints, the record header of serial types, and the values after it.
//! Every length is checked against the payload; a bad record is an error.

use super::{Result, SqliteError, Value};

/// Reads a varint at `*pos` in `buf` (1 to 9 bytes, big-endian, 7 bits a byte but the 9th).
pub(super) fn varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| SqliteError::corrupt("a number runs past its page"))?;
        *pos += 1;
        if i == 8 {
            return Ok((v << 8) | b as u64);
        }
        v = (v << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Ok(v)
}

/// How many values a record holds: fewer than the table's columns when ALTER TABLE added
/// columns after it was written.
pub(super) fn field_count(payload: &[u8]) -> Result<usize> {
    let mut pos = 0;
    let header_len = usize::try_from(varint(payload, &mut pos)?)
        .ok()
        .filter(|&h| h >= pos && h <= payload.len())
        .ok_or_else(|| SqliteError::corrupt("a record header is longer than the record"))?;
    let mut n = 0;
    while pos < header_len {
        varint(&payload[..header_len], &mut pos)?;
        n += 1;
    }
    Ok(n)
}

/// Decodes the record of row `rowid` into `columns` values. `stored` maps the record's values,
/// in order, to columns (virtual generated columns have none); `alias` is the rowid alias
/// column, whose NULL stands for the rowid. Columns the record lacks (added later by ALTER
/// TABLE) are NULL; values beyond the declared columns are ignored.
pub(super) fn decode(
    payload: &[u8],
    rowid: i64,
    columns: usize,
    stored: &[usize],
    alias: Option<usize>,
) -> Result<Vec<Value>> {
    let bad = |what: &str| SqliteError::corrupt(format_args!("row {rowid}: {what}"));
    let mut pos = 0;
    let header_len = varint(payload, &mut pos)?;
    let header_len = usize::try_from(header_len)
        .ok()
        .filter(|&h| h >= pos && h <= payload.len())
        .ok_or_else(|| bad("its record header is longer than the record"))?;
    let mut types = Vec::new();
    while pos < header_len {
        // SQLite allows at most 32 767 columns.
        if types.len() >= 32_767 {
            return Err(bad("its record has too many columns"));
        }
        types.push(varint(&payload[..header_len], &mut pos)?);
    }
    let mut body = header_len;
    let mut values = vec![Value::Null; columns];
    for (n, t) in types.into_iter().enumerate() {
        let len = match t {
            0 | 8 | 9 => 0,
            1..=4 => t as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(bad("a reserved serial type")),
            t => ((t - 12) / 2) as usize,
        };
        let bytes = body
            .checked_add(len)
            .and_then(|end| payload.get(body..end))
            .ok_or_else(|| bad("a value runs past the record"))?;
        body += len;
        let value = match t {
            0 => Value::Null,
            8 => Value::Integer(0),
            9 => Value::Integer(1),
            1..=6 => {
                // Big-endian two's complement of 1, 2, 3, 4, 6 or 8 bytes.
                let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                for b in bytes {
                    v = (v << 8) | *b as i64;
                }
                Value::Integer(v)
            }
            7 => Value::Real(f64::from_be_bytes(
                bytes.try_into().map_err(|_| bad("a short number"))?,
            )),
            t if t % 2 == 0 => Value::Blob(bytes.to_vec()),
            _ => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
        };
        if let Some(&col) = stored.get(n).filter(|&&c| c < columns) {
            values[col] = value;
        }
    }
    if let Some(a) = alias.filter(|&a| a < columns)
        && values[a] == Value::Null
    {
        values[a] = Value::Integer(rowid);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_limits() {
        let mut pos = 0;
        assert_eq!(varint(&[0x7f], &mut pos).unwrap(), 0x7f);
        let mut pos = 0;
        assert_eq!(varint(&[0x81, 0x00], &mut pos).unwrap(), 0x80);
        assert_eq!(pos, 2);
        let mut pos = 0;
        assert_eq!(varint(&[0xff; 9], &mut pos).unwrap(), u64::MAX);
        assert_eq!(pos, 9);
        let mut pos = 0;
        assert!(varint(&[0x81], &mut pos).is_err());
    }

    #[test]
    fn records_decode_and_bad_ones_are_errors() {
        // Header of 4 bytes: NULL, 1-byte int, text of 2 bytes; then the body.
        let rec = [4, 0, 1, 17, 0xfe, b'h', b'i'];
        let v = decode(&rec, 9, 4, &[0, 1, 2], Some(0)).unwrap();
        assert_eq!(
            v,
            [
                Value::Integer(9),
                Value::Integer(-2),
                Value::Text("hi".into()),
                Value::Null
            ]
        );
        assert!(
            decode(&[9, 0], 1, 1, &[0], None).is_err(),
            "header past the end"
        );
        assert!(decode(&[2, 10], 1, 1, &[0], None).is_err(), "reserved type");
        assert!(
            decode(&[2, 6, 1], 1, 1, &[0], None).is_err(),
            "value past the end"
        );
        assert!(decode(&[], 1, 1, &[0], None).is_err());
    }
}
