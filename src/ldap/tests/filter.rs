use crate::ldap::{Filter, MAX_FILTER_DEPTH, escape_value, parse_filter};

fn eq(attr: &str, value: &[u8]) -> Filter {
    Filter::Equality {
        attr: attr.into(),
        value: value.to_vec(),
    }
}

fn ber(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    parse_filter(text).unwrap().encode(&mut out);
    out
}

#[test]
fn rfc4515_examples_parse() {
    assert_eq!(
        parse_filter("(cn=Babs Jensen)").unwrap(),
        eq("cn", b"Babs Jensen")
    );
    assert_eq!(
        parse_filter("(!(cn=Tim Howes))").unwrap(),
        Filter::Not(Box::new(eq("cn", b"Tim Howes")))
    );
    assert_eq!(
        parse_filter("(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))").unwrap(),
        Filter::And(vec![
            eq("objectClass", b"Person"),
            Filter::Or(vec![
                eq("sn", b"Jensen"),
                Filter::Substrings {
                    attr: "cn".into(),
                    initial: Some(b"Babs J".to_vec()),
                    any: vec![],
                    final_: None
                },
            ]),
        ])
    );
    assert_eq!(
        parse_filter("(o=univ*of*mich*)").unwrap(),
        Filter::Substrings {
            attr: "o".into(),
            initial: Some(b"univ".to_vec()),
            any: vec![b"of".to_vec(), b"mich".to_vec()],
            final_: None
        }
    );
    assert_eq!(parse_filter("(seeAlso=)").unwrap(), eq("seeAlso", b""));
    assert_eq!(
        parse_filter("(cn:caseExactMatch:=Fred Flintstone)").unwrap(),
        Filter::Extensible {
            rule: Some("caseExactMatch".into()),
            attr: Some("cn".into()),
            value: b"Fred Flintstone".to_vec(),
            dn_attributes: false
        }
    );
    assert_eq!(
        parse_filter("(cn:=Betty Rubble)").unwrap(),
        Filter::Extensible {
            rule: None,
            attr: Some("cn".into()),
            value: b"Betty Rubble".to_vec(),
            dn_attributes: false
        }
    );
    assert_eq!(
        parse_filter("(sn:dn:2.4.6.8.10:=Barney Rubble)").unwrap(),
        Filter::Extensible {
            rule: Some("2.4.6.8.10".into()),
            attr: Some("sn".into()),
            value: b"Barney Rubble".to_vec(),
            dn_attributes: true
        }
    );
    assert_eq!(
        parse_filter("(o:dn:=Ace Industry)").unwrap(),
        Filter::Extensible {
            rule: None,
            attr: Some("o".into()),
            value: b"Ace Industry".to_vec(),
            dn_attributes: true
        }
    );
    assert_eq!(
        parse_filter("(:1.2.3:=Wilma Flintstone)").unwrap(),
        Filter::Extensible {
            rule: Some("1.2.3".into()),
            attr: None,
            value: b"Wilma Flintstone".to_vec(),
            dn_attributes: false
        }
    );
    assert_eq!(
        parse_filter("(:DN:2.4.6.8.10:=Dino)").unwrap(),
        Filter::Extensible {
            rule: Some("2.4.6.8.10".into()),
            attr: None,
            value: b"Dino".to_vec(),
            dn_attributes: true
        }
    );
    assert_eq!(
        parse_filter("(o=Parens R Us \\28for all your parenthetical needs\\29)").unwrap(),
        eq("o", b"Parens R Us (for all your parenthetical needs)")
    );
    assert_eq!(
        parse_filter("(cn=*\\2A*)").unwrap(),
        Filter::Substrings {
            attr: "cn".into(),
            initial: None,
            any: vec![b"*".to_vec()],
            final_: None
        }
    );
    assert_eq!(
        parse_filter("(filename=C:\\5cMyFile)").unwrap(),
        eq("filename", b"C:\\MyFile")
    );
    assert_eq!(
        parse_filter("(bin=\\00\\00\\00\\04)").unwrap(),
        eq("bin", &[0, 0, 0, 4])
    );
    assert_eq!(
        parse_filter("(sn=Lu\\c4\\8di\\c4\\87)").unwrap(),
        eq("sn", "Lučić".as_bytes())
    );
    assert_eq!(
        parse_filter("(1.3.6.1.4.1.1466.0=\\04\\02\\48\\69)").unwrap(),
        eq("1.3.6.1.4.1.1466.0", &[4, 2, b'H', b'i'])
    );
}

#[test]
fn other_filters_parse() {
    assert_eq!(
        parse_filter("(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))")
            .unwrap(),
        Filter::And(vec![
            eq("objectClass", b"person"),
            Filter::Not(Box::new(Filter::Extensible {
                rule: Some("1.2.840.113556.1.4.803".into()),
                attr: Some("userAccountControl".into()),
                value: b"2".to_vec(),
                dn_attributes: false
            })),
        ])
    );
    assert_eq!(
        parse_filter("(cn=*a*b*)").unwrap(),
        Filter::Substrings {
            attr: "cn".into(),
            initial: None,
            any: vec![b"a".to_vec(), b"b".to_vec()],
            final_: None
        }
    );
    assert_eq!(
        parse_filter("(cn=a*b*c)").unwrap(),
        Filter::Substrings {
            attr: "cn".into(),
            initial: Some(b"a".to_vec()),
            any: vec![b"b".to_vec()],
            final_: Some(b"c".to_vec())
        }
    );
    assert_eq!(
        parse_filter("(mail=*@example.org)").unwrap(),
        Filter::Substrings {
            attr: "mail".into(),
            initial: None,
            any: vec![],
            final_: Some(b"@example.org".to_vec())
        }
    );
    assert_eq!(
        parse_filter("(objectClass=*)").unwrap(),
        Filter::Present("objectClass".into())
    );
    assert_eq!(
        parse_filter("(mail;lang-en>=m)").unwrap(),
        Filter::GreaterOrEqual {
            attr: "mail;lang-en".into(),
            value: b"m".to_vec()
        }
    );
    assert_eq!(
        parse_filter("(uidNumber<=1000)").unwrap(),
        Filter::LessOrEqual {
            attr: "uidNumber".into(),
            value: b"1000".to_vec()
        }
    );
    assert_eq!(
        parse_filter("(cn~=jensen)").unwrap(),
        Filter::Approx {
            attr: "cn".into(),
            value: b"jensen".to_vec()
        }
    );
    // Operator convenience: no parentheses around a single item, white space around it.
    assert_eq!(
        parse_filter("objectClass=person").unwrap(),
        eq("objectClass", b"person")
    );
    assert_eq!(parse_filter("  (uid=a b)\n").unwrap(), eq("uid", b"a b"));
    // Values may hold '=', '~', '>' and UTF-8.
    assert_eq!(parse_filter("(cn=a=b~c>d)").unwrap(), eq("cn", b"a=b~c>d"));
    assert_eq!(
        parse_filter("(cn=Łódź)").unwrap(),
        eq("cn", "Łódź".as_bytes())
    );
}

#[test]
fn bad_filters_say_where_and_what() {
    for (text, wanted) in [
        ("", "empty filter"),
        (
            "(",
            "offset 1: expected an attribute description, found the end",
        ),
        ("(cn=a", "offset 5: expected ')', found the end"),
        ("(cn=a))", "offset 6: expected end of filter, found ')'"),
        ("cn=a)", "offset 4: expected end of filter"),
        (
            "(cn=a(b)",
            "offset 5: expected a value ('(' must be escaped",
        ),
        ("(cn=\\2)", "offset 4: expected two hex digits after '\\'"),
        ("(cn=\\zz)", "offset 4: expected two hex digits"),
        (
            "(&)",
            "offset 2: expected '(' (a filter list needs at least one filter)",
        ),
        ("(|(a=b)c=d)", "offset 7: expected ')', found 'c'"),
        ("(!a=b)", "offset 2: expected '('"),
        (
            "(=a)",
            "offset 1: expected an attribute description, found '='",
        ),
        ("(c n=a)", "offset 2: expected '=', '~=', '>=', '<=' or ':'"),
        ("(cn>a)", "offset 3: expected '='"),
        ("(cn=a**b)", "empty substring between two '*'"),
        ("(:=a)", "expected a matching rule"),
        ("(cn:dn:1.2:a)", "expected ':='"),
        ("(cn:1.02:=a)", "no leading zeros"),
        ("(cn;=a)", "an attribute option after ';'"),
        ("(cn=a\0)", "NUL must be escaped"),
        (
            "(-cn=a)",
            "offset 1: expected an attribute description, found '-'",
        ),
    ] {
        let error = parse_filter(text).unwrap_err();
        assert!(error.contains(wanted), "{text:?}: {error}");
    }
}

#[test]
fn nesting_is_bounded() {
    let nested = |depth: usize| format!("{}(a=b){}", "(!".repeat(depth), ")".repeat(depth));
    assert!(parse_filter(&nested(MAX_FILTER_DEPTH - 1)).is_ok());
    let error = parse_filter(&nested(MAX_FILTER_DEPTH)).unwrap_err();
    assert!(error.contains("nested more than 64 levels"), "{error}");
    let error = parse_filter(&nested(100_000)).unwrap_err();
    assert!(error.contains("nested"), "{error}");
    // The BER decoder too.
    let mut bytes = ber("(a=b)");
    for _ in 0..MAX_FILTER_DEPTH {
        let mut outer = Vec::new();
        crate::ldap::ber::write_tlv(&mut outer, 0xa2, &bytes);
        bytes = outer;
    }
    let error = Filter::decode(&bytes).unwrap_err();
    assert!(error.contains("nested"), "{error}");
}

#[test]
fn escape_value_makes_injection_harmless() {
    assert_eq!(escape_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
    assert_eq!(escape_value("a\\b\0c(é)"), "a\\5cb\\00c\\28é\\29");
    let text = format!("(uid={})", escape_value("*)(uid=*"));
    assert_eq!(
        parse_filter(&text).unwrap(),
        Filter::equality("uid", "*)(uid=*")
    );
    let and = Filter::and(vec![
        Filter::equality("objectClass", "person"),
        Filter::equality("uid", "x*"),
    ]);
    assert_eq!(and.to_string(), "(&(objectClass=person)(uid=x\\2a))");
    assert_eq!(parse_filter(&and.to_string()).unwrap(), and);
}

#[test]
fn display_escapes_non_utf8_values() {
    let filter = eq("bin", &[0xc4, 0x00, b'*', 0xff, b'a']);
    assert_eq!(filter.to_string(), "(bin=\\c4\\00\\2a\\ffa)");
    assert_eq!(parse_filter(&filter.to_string()).unwrap(), filter);
}

#[test]
fn ber_matches_hand_encoded_bytes() {
    // equalityMatch [3] { "cn", "Babs" }
    assert_eq!(ber("(cn=Babs)"), b"\xa3\x0a\x04\x02cn\x04\x04Babs");
    // present [7] "objectClass"
    assert_eq!(ber("(objectClass=*)"), b"\x87\x0bobjectClass");
    // and [0] { equalityMatch cn=a, not [2] { equalityMatch sn=b } }
    assert_eq!(
        ber("(&(cn=a)(!(sn=b)))"),
        b"\xa0\x14\xa3\x07\x04\x02cn\x04\x01a\xa2\x09\xa3\x07\x04\x02sn\x04\x01b"
    );
    // substrings [4] { "cn", SEQUENCE { any [1] "a", any [1] "b" } }
    assert_eq!(
        ber("(cn=*a*b*)"),
        b"\xa4\x0c\x04\x02cn\x30\x06\x81\x01a\x81\x01b"
    );
    // substrings with initial [0] and final [2]
    assert_eq!(
        ber("(cn=x*y)"),
        b"\xa4\x0c\x04\x02cn\x30\x06\x80\x01x\x82\x01y"
    );
    // greaterOrEqual [5], lessOrEqual [6], approxMatch [8]
    assert_eq!(ber("(n>=1)"), b"\xa5\x06\x04\x01n\x04\x011");
    assert_eq!(ber("(n<=1)"), b"\xa6\x06\x04\x01n\x04\x011");
    assert_eq!(ber("(n~=1)"), b"\xa8\x06\x04\x01n\x04\x011");
    // extensibleMatch [9] { matchingRule [1], type [2], matchValue [3] }
    assert_eq!(
        ber("(cn:caseExactMatch:=Fred)"),
        b"\xa9\x1a\x81\x0ecaseExactMatch\x82\x02cn\x83\x04Fred"
    );
    // extensibleMatch { matchingRule [1], matchValue [3], dnAttributes [4] TRUE }
    assert_eq!(
        ber("(:dn:2.4.6.8.10:=Dino)"),
        b"\xa9\x15\x81\x0a2.4.6.8.10\x83\x04Dino\x84\x01\xff"
    );
    // Escaped octets are sent as octets.
    assert_eq!(ber("(o=\\28x\\29)"), b"\xa3\x08\x04\x01o\x04\x03(x)");
}

#[test]
fn ber_round_trips_and_bad_ber_is_refused() {
    for text in [
        "(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        "(|(cn=*a*b*)(o=x*)(o=*y)(mail=*)(n>=1)(n<=2)(n~=3))",
        "(sn:dn:2.4.6.8.10:=Barney Rubble)",
        "(sn=Lu\\c4\\8di\\c4\\87)",
    ] {
        let filter = parse_filter(text).unwrap();
        let mut bytes = Vec::new();
        filter.encode(&mut bytes);
        assert_eq!(Filter::decode(&bytes).unwrap(), filter, "{text}");
    }
    for bad in [
        &b"\xa3\x05\x04\x02cn\x04"[..],
        b"\xa3\x04\x04\x02cn",
        b"\xbf\x00",
        b"\xa9\x03\x81\x01a",
        b"\xa4\x09\x04\x02cn\x30\x03\x83\x01a",
        b"\x87\x02cn\x00",
    ] {
        assert!(Filter::decode(bad).is_err(), "{bad:02x?}");
    }
}
