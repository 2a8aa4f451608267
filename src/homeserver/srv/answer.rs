//! What a response that matches the query means: the SRV records of a NOERROR answer, none for
//! NXDOMAIN, an error otherwise. Also [`read_answer`], the parser's whole path from the bytes
//! of a message, for the fuzz targets in `fuzz/` and the property tests.

use super::{
    Question, RCODE_NXDOMAIN, Response, SrvError, SrvRecord, match_response, parse_answers,
};

/// The records of a response whose id and question match the query.
pub(super) fn records(
    response: &Response,
    question: &Question,
) -> Result<Vec<SrvRecord>, SrvError> {
    match response.rcode {
        0 => parse_answers(response, question),
        RCODE_NXDOMAIN => Ok(Vec::new()),
        rcode => Err(SrvError::Server {
            name: question.display.clone(),
            rcode,
        }),
    }
}

/// Reads one message as [`super::SrvResolver::lookup`] does for a query of `name` with id
/// `id`: `Ok(None)` when it does not answer that query (the resolver would ignore it), else
/// the records (unordered) or the error. Not part of the API otherwise.
pub fn read_answer(
    name: &str,
    id: u16,
    message: &[u8],
) -> Result<Option<Vec<SrvRecord>>, SrvError> {
    let question = Question::new(name)?;
    match match_response(message, id, &question) {
        Some(response) => records(&response, &question).map(Some),
        None => Ok(None),
    }
}

/// Property tests (issue 16; `fuzz/fuzz_targets/dns_answer.rs` is the fuzz target).
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    const NAME: &str = "_matrix-fed._tcp.example.org";
    const ID: u16 = 0x1234;

    fn wire(labels: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for label in labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// The header and question of an answer to the query, with `count` answers.
    fn head(count: u16) -> Vec<u8> {
        let mut m = ID.to_be_bytes().to_vec();
        m.extend([0x81, 0x80, 0, 1]);
        m.extend(count.to_be_bytes());
        m.extend([0, 0, 0, 0]);
        let labels: Vec<String> = NAME.split('.').map(String::from).collect();
        m.extend(wire(&labels));
        m.extend([0, 33, 0, 1]);
        m
    }

    /// One SRV answer for the question (owner: a pointer to it), target written out.
    fn srv(m: &mut Vec<u8>, (priority, weight, port, ttl): Fields, target: &[u8]) {
        m.extend([0xc0, 12, 0, 33, 0, 1]);
        m.extend(ttl.to_be_bytes());
        m.extend((6 + target.len() as u16).to_be_bytes());
        for v in [priority, weight, port] {
            m.extend(v.to_be_bytes());
        }
        m.extend_from_slice(target);
    }

    fn usable(target: &str) -> bool {
        target.len() <= 253
            && target.split('.').all(|l| {
                (1..=63).contains(&l.len())
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    /// The invariants of whatever the parser returns for `message`.
    fn check(message: &[u8]) {
        if let Ok(Some(records)) = read_answer(NAME, ID, message) {
            let count = usize::from(u16::from_be_bytes([message[6], message[7]]));
            assert!(records.len() <= count);
            assert!(12 + 6 + 20 * records.len() <= message.len());
            for r in records {
                assert!(usable(&r.target), "{r:?}");
                assert!(r.ttl <= i32::MAX as u32);
            }
        }
    }

    /// Priority, weight, port and TTL of one record.
    type Fields = (u16, u16, u16, u32);

    fn records() -> impl Strategy<Value = Vec<(Fields, Vec<String>)>> {
        let label = "[a-zA-Z0-9_-]{1,63}";
        let fields = (any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>());
        prop::collection::vec((fields, prop::collection::vec(label, 1..4)), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn well_formed_answers_give_their_records(records in records()) {
            let mut m = head(records.len() as u16);
            for (fields, target) in &records {
                srv(&mut m, *fields, &wire(target));
            }
            let got = read_answer(NAME, ID, &m).unwrap().unwrap();
            let want: Vec<SrvRecord> = records
                .iter()
                .map(|((priority, weight, port, ttl), target)| SrvRecord {
                    target: target.join("."),
                    port: *port,
                    priority: *priority,
                    weight: *weight,
                    ttl: if *ttl > i32::MAX as u32 { 0 } else { *ttl },
                })
                .collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn damaged_answers_are_errors_or_usable_records(
            records in records(),
            damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut m = head(records.len() as u16);
            for (fields, target) in &records {
                srv(&mut m, *fields, &wire(target));
            }
            for (at, byte) in damage {
                let at = at.index(m.len());
                m[at] = byte;
            }
            check(&m);
            m.truncate(cut.index(m.len() + 1));
            check(&m);
        }

        #[test]
        fn any_bytes_after_the_question_are_errors_or_usable_records(
            count in any::<u16>(),
            tail in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut m = head(count);
            m.extend(tail);
            check(&m);
        }

        #[test]
        fn any_message_is_read_without_panic(m in prop::collection::vec(any::<u8>(), 0..120)) {
            check(&m);
        }
    }
}
