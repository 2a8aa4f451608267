use crate::ldap::ber::{self, Reader, parse_header};

fn integer(value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    ber::write_integer(&mut out, ber::INTEGER, value);
    out
}

#[test]
fn integers_use_the_shortest_twos_complement_form() {
    assert_eq!(integer(0), [0x02, 0x01, 0x00]);
    assert_eq!(integer(127), [0x02, 0x01, 0x7f]);
    assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
    assert_eq!(integer(256), [0x02, 0x02, 0x01, 0x00]);
    assert_eq!(integer(-1), [0x02, 0x01, 0xff]);
    assert_eq!(integer(-128), [0x02, 0x01, 0x80]);
    assert_eq!(integer(-129), [0x02, 0x02, 0xff, 0x7f]);
    assert_eq!(
        integer(i64::from(i32::MAX)),
        [0x02, 0x04, 0x7f, 0xff, 0xff, 0xff]
    );
    for value in [
        0,
        1,
        -1,
        127,
        128,
        -128,
        -129,
        255,
        256,
        65535,
        i64::MAX,
        i64::MIN,
        1 << 40,
    ] {
        let bytes = integer(value);
        let tlv = Reader::new(&bytes).read().unwrap();
        assert_eq!(tlv.integer().unwrap(), value, "{bytes:02x?}");
    }
}

#[test]
fn lengths_use_the_shortest_definite_form() {
    let mut out = Vec::new();
    ber::write_length(&mut out, 0x7f);
    ber::write_length(&mut out, 0x80);
    ber::write_length(&mut out, 200);
    ber::write_length(&mut out, 300);
    ber::write_length(&mut out, 0x1_0000);
    assert_eq!(
        out,
        [
            0x7f, 0x81, 0x80, 0x81, 0xc8, 0x82, 0x01, 0x2c, 0x83, 0x01, 0x00, 0x00
        ]
    );
}

#[test]
fn long_values_round_trip() {
    for size in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 200_000] {
        let content = vec![0x5a; size];
        let mut out = Vec::new();
        ber::write_tlv(&mut out, ber::OCTET_STRING, &content);
        let mut reader = Reader::new(&out);
        let tlv = reader.read().unwrap();
        assert_eq!((tlv.tag, tlv.content.len()), (ber::OCTET_STRING, size));
        assert!(reader.is_empty());
    }
}

#[test]
fn nested_values_round_trip() {
    let mut out = Vec::new();
    ber::write_constructed(&mut out, ber::SEQUENCE, |out| {
        ber::write_integer(out, ber::INTEGER, 7);
        ber::write_constructed(out, ber::SET, |out| {
            ber::write_tlv(out, ber::OCTET_STRING, b"a");
            ber::write_boolean(out, ber::BOOLEAN, true);
        });
    });
    assert_eq!(
        out,
        [
            0x30, 0x0b, 0x02, 0x01, 0x07, 0x31, 0x06, 0x04, 0x01, b'a', 0x01, 0x01, 0xff
        ]
    );
    let mut seq = Reader::new(&out)
        .read_tag(ber::SEQUENCE, "seq")
        .unwrap()
        .reader();
    assert_eq!(
        seq.read_tag(ber::INTEGER, "int")
            .unwrap()
            .integer()
            .unwrap(),
        7
    );
    let mut set = seq.read_tag(ber::SET, "set").unwrap().reader();
    assert_eq!(set.read().unwrap().content, b"a");
    assert!(set.read().unwrap().boolean().unwrap());
    set.finish("set").unwrap();
    seq.finish("seq").unwrap();
    assert!(seq.read().is_err());
}

#[test]
fn malformed_input_is_an_error() {
    // Truncated header, truncated content.
    assert_eq!(parse_header(&[]).unwrap(), None);
    assert_eq!(parse_header(&[0x30]).unwrap(), None);
    assert_eq!(parse_header(&[0x30, 0x82, 0x01]).unwrap(), None);
    assert!(Reader::new(&[0x30]).read().is_err());
    let error = Reader::new(&[0x30, 0x05, 0x02, 0x01]).read().unwrap_err();
    assert!(error.contains("truncated"), "{error}");
    // A huge declared length with few bytes present: an error, nothing allocated for it.
    let error = Reader::new(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00])
        .read()
        .unwrap_err();
    assert!(
        error.contains("4294967295 content octets declared, 1 present"),
        "{error}"
    );
    assert_eq!(
        parse_header(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]).unwrap(),
        Some((4, 6, 0xffff_ffff))
    );
    // Lengths of more than 4 octets (and the reserved 0xff) overflow our bound.
    assert!(parse_header(&[0x04, 0x85, 1, 0, 0, 0, 0]).is_err());
    assert!(parse_header(&[0x04, 0xff]).is_err());
    // Indefinite length.
    let error = Reader::new(&[0x30, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00])
        .read()
        .unwrap_err();
    assert!(error.contains("indefinite"), "{error}");
    // High tag number form.
    assert!(Reader::new(&[0x1f, 0x81, 0x00, 0x00]).read().is_err());
    // Bad primitives.
    assert!(ber::decode_integer(&[]).is_err());
    assert!(ber::decode_integer(&[1; 9]).is_err());
    assert!(
        Reader::new(&[0x01, 0x02, 0xff, 0xff])
            .read()
            .unwrap()
            .boolean()
            .is_err()
    );
    // Wrong tag, trailing bytes.
    assert!(
        Reader::new(&[0x02, 0x01, 0x00])
            .read_tag(ber::OCTET_STRING, "x")
            .is_err()
    );
    let mut reader = Reader::new(&[0x02, 0x01, 0x00, 0x05]);
    reader.read().unwrap();
    assert!(reader.finish("x").is_err());
}
