use crate::ldap::ber;
use crate::ldap::message::{
    Response, bind_request, decode_response, search_request, start_tls_request, unbind_request,
};
use crate::ldap::{Entry, Filter, Scope, SearchRequest};

#[test]
fn requests_match_hand_encoded_bytes() {
    // LDAPMessage { messageID 1, BindRequest [APPLICATION 0] { version 3, name "cn=admin",
    // simple [0] "secret" } }
    assert_eq!(
        bind_request(1, "cn=admin", "secret"),
        b"\x30\x1a\x02\x01\x01\x60\x15\x02\x01\x03\x04\x08cn=admin\x80\x06secret"
    );
    // Anonymous bind: empty name and password.
    assert_eq!(
        bind_request(2, "", ""),
        b"\x30\x0c\x02\x01\x02\x60\x07\x02\x01\x03\x04\x00\x80\x00"
    );
    // UnbindRequest [APPLICATION 2] NULL.
    assert_eq!(unbind_request(3), b"\x30\x05\x02\x01\x03\x42\x00");
    // ExtendedRequest [APPLICATION 23] { requestName [0] "1.3.6.1.4.1.1466.20037" }.
    assert_eq!(
        start_tls_request(1),
        b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037"
    );
    // SearchRequest [APPLICATION 3] { base, scope, derefAliases, sizeLimit, timeLimit,
    // typesOnly, filter, attributes }.
    let filter = Filter::Present("cn".into());
    let request = SearchRequest {
        base: "o=x",
        scope: Scope::OneLevel,
        filter: &filter,
        attributes: &["cn"],
        size_limit: 5,
    };
    assert_eq!(
        search_request(128, &request, None),
        b"\x30\x24\x02\x02\x00\x80\x63\x1e\x04\x03o=x\x0a\x01\x01\x0a\x01\x00\x02\x01\x05\x02\x01\x00\x01\x01\x00\x87\x02cn\x30\x04\x04\x02cn"
    );
    // With the paged results control: controls [0] { Control { OID, value { size 2, cookie } } }.
    let paged = search_request(2, &request, Some((2, b"c")));
    let control =
        b"\xa0\x24\x30\x22\x04\x161.2.840.113556.1.4.319\x04\x08\x30\x06\x02\x01\x02\x04\x01c";
    assert!(paged.ends_with(control), "{paged:02x?}");
}

fn result_op(tag: u8, code: i64, message: &str, extra: &[u8]) -> Vec<u8> {
    let mut op = Vec::new();
    ber::write_constructed(&mut op, tag, |out| {
        ber::write_integer(out, ber::ENUMERATED, code);
        ber::write_tlv(out, ber::OCTET_STRING, b"");
        ber::write_tlv(out, ber::OCTET_STRING, message.as_bytes());
        out.extend_from_slice(extra);
    });
    op
}

pub(super) fn wrap(id: i64, op: &[u8], controls: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ber::write_constructed(&mut out, ber::SEQUENCE, |out| {
        ber::write_integer(out, ber::INTEGER, id);
        out.extend_from_slice(op);
        out.extend_from_slice(controls);
    });
    out
}

pub(super) fn done(id: i64, code: i64, cookie: Option<&[u8]>) -> Vec<u8> {
    let controls = cookie.map(|cookie| {
        let mut value = Vec::new();
        ber::write_constructed(&mut value, ber::SEQUENCE, |out| {
            ber::write_integer(out, ber::INTEGER, 0);
            ber::write_tlv(out, ber::OCTET_STRING, cookie);
        });
        let mut controls = Vec::new();
        ber::write_constructed(&mut controls, 0xa0, |out| {
            ber::write_constructed(out, ber::SEQUENCE, |out| {
                ber::write_tlv(out, ber::OCTET_STRING, b"1.2.3.4");
                ber::write_boolean(out, ber::BOOLEAN, false);
            });
            ber::write_constructed(out, ber::SEQUENCE, |out| {
                ber::write_tlv(out, ber::OCTET_STRING, b"1.2.840.113556.1.4.319");
                ber::write_tlv(out, ber::OCTET_STRING, &value);
            });
        });
        controls
    });
    wrap(
        id,
        &result_op(0x65, code, "", &[]),
        &controls.unwrap_or_default(),
    )
}

pub(super) fn bind_response(id: i64, code: i64, message: &str) -> Vec<u8> {
    // With a referral [3], which is ignored.
    wrap(
        id,
        &result_op(0x61, code, message, b"\xa3\x06\x04\x04ldap"),
        &[],
    )
}

pub(super) fn entry(id: i64, dn: &str, attributes: &[(&str, &[&[u8]])]) -> Vec<u8> {
    let mut op = Vec::new();
    ber::write_constructed(&mut op, 0x64, |out| {
        ber::write_tlv(out, ber::OCTET_STRING, dn.as_bytes());
        ber::write_constructed(out, ber::SEQUENCE, |out| {
            for (name, values) in attributes {
                ber::write_constructed(out, ber::SEQUENCE, |out| {
                    ber::write_tlv(out, ber::OCTET_STRING, name.as_bytes());
                    ber::write_constructed(out, ber::SET, |out| {
                        for value in *values {
                            ber::write_tlv(out, ber::OCTET_STRING, value);
                        }
                    });
                });
            }
        });
    });
    wrap(id, &op, &[])
}

pub(super) fn notice_of_disconnection() -> Vec<u8> {
    let op = result_op(0x78, 52, "shutting down", b"\x8a\x161.3.6.1.4.1.1466.20036");
    wrap(0, &op, &[])
}

#[test]
fn responses_decode() {
    match decode_response(&bind_response(1, 49, "nope")).unwrap() {
        (1, Response::Bind(result)) => {
            assert_eq!((result.code, result.message.as_str()), (49, "nope"))
        }
        other => panic!("{other:?}"),
    }
    match decode_response(&done(7, 0, Some(b"next"))).unwrap() {
        (7, Response::Done(result, cookie)) => {
            assert_eq!(result.code, 0);
            assert_eq!(cookie.as_deref(), Some(&b"next"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(decode_response(&done(7, 4, None)).unwrap(), (7, Response::Done(r, None)) if r.code == 4)
    );
    match decode_response(&notice_of_disconnection()).unwrap() {
        (0, Response::Extended(result, Some(name))) => {
            assert_eq!((result.code, name.as_str()), (52, "1.3.6.1.4.1.1466.20036"))
        }
        other => panic!("{other:?}"),
    }
    let bytes = entry(
        3,
        "uid=a,o=x",
        &[
            ("mail;lang-en", &[b"a@x", b"\xff"]),
            ("MAIL", &[b"b@x"]),
            ("mailer", &[b"no"]),
        ],
    );
    let Ok((3, Response::Entry(entry))) = decode_response(&bytes) else {
        panic!()
    };
    assert_eq!(entry.dn, "uid=a,o=x");
    assert_eq!(entry.values("mail").collect::<Vec<_>>(), ["a@x", "b@x"]);
    assert_eq!(entry.first("Mail"), Some("a@x"));
    assert_eq!(entry.first("mailer"), Some("no"));
    assert_eq!(entry.first("mai"), None);
    assert_eq!(entry.attributes[0].1[1], b"\xff");
    let empty = Entry {
        dn: String::new(),
        attributes: vec![],
    };
    assert_eq!(empty.first("mail"), None);
}

#[test]
fn malformed_responses_are_errors() {
    let good = bind_response(1, 0, "");
    assert!(decode_response(&good[..good.len() - 1]).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(decode_response(&trailing).is_err());
    // An unknown operation, a request where a response belongs.
    assert!(decode_response(&wrap(1, b"\x42\x00", &[])).is_err());
    // resultCode out of range.
    assert!(decode_response(&wrap(1, &result_op(0x61, -1, "", &[]), &[])).is_err());
    // Entry values not in a SET.
    assert!(
        decode_response(&wrap(
            1,
            b"\x64\x0b\x04\x00\x30\x07\x30\x05\x04\x01a\x30\x00",
            &[]
        ))
        .is_err()
    );
}

#[test]
fn values_do_not_borrow_the_name() {
    let entry = crate::ldap::Entry {
        dn: "uid=a".into(),
        attributes: vec![("mail".into(), vec![b"a@x".to_vec()])],
    };
    // The iterator outlives the temporary name.
    let values = entry.values(&String::from("MAIL"));
    assert_eq!(values.collect::<Vec<_>>(), ["a@x"]);
}
