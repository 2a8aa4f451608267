//! Deterministic random content for the databases the differential tests write: a seeded
//! generator, and texts, lengths and values that reach every edge of the record format.

use rusqlite::types::Value as SqlValue;

/// xorshift64*: deterministic noise without a dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Integers at the edges of every integer serial type (1, 2, 3, 4, 6 and 8 bytes, and the
/// constants 0 and 1).
pub(super) const EDGE_INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    127,
    -128,
    128,
    -129,
    32767,
    -32768,
    32768,
    (1 << 23) - 1,
    -(1 << 23),
    1 << 23,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 31,
    (1 << 47) - 1,
    -(1 << 47),
    1 << 47,
    i64::MAX,
    i64::MIN,
];

/// Characters of every UTF-8 length, quotes, escapes, controls and non-characters.
const CHARS: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    'Z',
    '0',
    '9',
    ' ',
    '\'',
    '"',
    '\\',
    '\n',
    '\0',
    'é',
    'ß',
    '日',
    '本',
    '\u{2028}',
    '\u{feff}',
    '\u{ffff}',
    '😀',
    '\u{10ffff}',
    '@',
    '.',
    '+',
];

/// `len` characters drawn from [`CHARS`].
pub(super) fn text(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| CHARS[rng.below(CHARS.len() as u64) as usize])
        .collect()
}

/// A length: mostly short, often past what fits on a page, sometimes many pages long.
pub(super) fn length(rng: &mut Rng, page_size: usize) -> usize {
    match rng.below(200) {
        0..=9 => 0,
        10..=139 => rng.below(60) as usize,
        140..=189 => rng.below(3 * page_size as u64) as usize,
        // Around the largest payload that still fits on a leaf page.
        190..=197 => page_size - 39 + rng.below(8) as usize,
        _ => rng.below(120_000) as usize,
    }
}

/// A text of a [`length`].
pub(super) fn random_text(rng: &mut Rng, page_size: usize) -> String {
    let n = length(rng, page_size);
    text(rng, n)
}

/// Any value SQLite stores: NULL, edge and random integers, special and random reals, texts
/// and blobs of every [`length`].
pub(super) fn random_value(rng: &mut Rng, page_size: usize) -> SqlValue {
    match rng.below(20) {
        0..=1 => SqlValue::Null,
        2..=5 => SqlValue::Integer(EDGE_INTS[rng.below(EDGE_INTS.len() as u64) as usize]),
        6..=7 => {
            let bits = rng.below(64);
            SqlValue::Integer((rng.next() as i64) >> bits)
        }
        8..=10 => SqlValue::Real(match rng.below(8) {
            0 => -0.0,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            // NaN: SQLite stores NULL.
            3 => f64::NAN,
            4 => (rng.below(2000) as f64 - 1000.0) / 4.0,
            5 => f64::MIN_POSITIVE / 4.0,
            _ => f64::from_bits(rng.next()),
        }),
        11..=15 => SqlValue::Text(random_text(rng, page_size)),
        _ => {
            let n = length(rng, page_size);
            SqlValue::Blob((0..n).map(|_| rng.next() as u8).collect())
        }
    }
}
