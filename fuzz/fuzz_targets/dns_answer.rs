//! The DNS answer parser of the SRV resolver (`oxisd::homeserver::srv`): any message gives
//! records or an error, never a panic, a read past the message or a loop (libFuzzer's
//! `-timeout` catches the latter), and every record it returns is usable: a target of 1 to
//! 63-byte labels of letters, digits, `-` and `_`, at most 253 characters, and no more records
//! than the answer count and the message's size allow.
//!
//! The first byte picks the mode: odd, the input is the whole message (its id is taken as the
//! query's); even, a matching header and question are put before the rest of the input, which
//! is read as the answer section (its first two bytes as the answer count).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxisd::homeserver::srv::read_answer;

const NAME: &str = "_matrix-fed._tcp.example.org";

fn question() -> Vec<u8> {
    let mut wire = Vec::new();
    for label in NAME.split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire.extend_from_slice(&33u16.to_be_bytes()); // SRV
    wire.extend_from_slice(&1u16.to_be_bytes()); // IN
    wire
}

fn usable_target(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 253
        && target.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let message: Vec<u8> = if mode & 1 == 1 {
        rest.to_vec()
    } else {
        let (count, answers) = if rest.len() >= 2 {
            (&rest[..2], &rest[2..])
        } else {
            (&[0u8, 1][..], rest)
        };
        let mut m = vec![
            0x12,
            0x34,
            0x81,
            0x80 | (mode >> 4),
            0,
            1,
            count[0],
            count[1],
            0,
            0,
            0,
            0,
        ];
        m.extend(question());
        m.extend_from_slice(answers);
        m
    };
    let id = match message.get(..2) {
        Some(id) => u16::from_be_bytes([id[0], id[1]]),
        None => 0,
    };
    let first = read_answer(NAME, id, &message);
    // The same bytes give the same answer.
    assert_eq!(
        format!("{first:?}"),
        format!("{:?}", read_answer(NAME, id, &message))
    );
    let Ok(Some(records)) = first else {
        return;
    };
    let answer_count = usize::from(u16::from_be_bytes([message[6], message[7]]));
    assert!(records.len() <= answer_count, "more records than answers");
    // Header, question (at least 2 bytes of name + 4) and 20 bytes per SRV record at least:
    // a 2-byte owner, 10 bytes of type, class, TTL and length, 6 of fields, a 2-byte target.
    assert!(
        12 + 6 + 20 * records.len() <= message.len(),
        "records from nowhere"
    );
    for record in &records {
        assert!(usable_target(&record.target), "target {:?}", record.target);
        assert!(record.ttl <= i32::MAX as u32);
    }
});
