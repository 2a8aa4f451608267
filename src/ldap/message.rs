//! LDAP messages (RFC 4511 4.1-4.14): the requests this client sends, encoded to BER, and the
//! responses it reads, decoded from BER.

use super::ber::{self, Reader, Tlv};
use super::filter::Filter;

/// OID of the StartTLS extended operation (RFC 4511 4.14).
pub const START_TLS_OID: &str = "1.3.6.1.4.1.1466.20037";
/// OID of the notice of disconnection (RFC 4511 4.4.1).
pub const NOTICE_OF_DISCONNECTION_OID: &str = "1.3.6.1.4.1.1466.20036";
/// OID of the simple paged results control (RFC 2696).
pub const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

const BIND_REQUEST: u8 = ber::application(0, true);
const BIND_RESPONSE: u8 = ber::application(1, true);
const UNBIND_REQUEST: u8 = ber::application(2, false);
const SEARCH_REQUEST: u8 = ber::application(3, true);
const SEARCH_ENTRY: u8 = ber::application(4, true);
const SEARCH_DONE: u8 = ber::application(5, true);
const SEARCH_REFERENCE: u8 = ber::application(19, true);
const EXTENDED_REQUEST: u8 = ber::application(23, true);
const EXTENDED_RESPONSE: u8 = ber::application(24, true);
const INTERMEDIATE_RESPONSE: u8 = ber::application(25, true);
const CONTROLS: u8 = ber::context(0, true);

/// Where a search looks, relative to its base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The base entry only.
    Base,
    /// The base's immediate children.
    OneLevel,
    /// The base and everything under it.
    Subtree,
}

/// The parameters of a search.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// The base DN.
    pub base: &'a str,
    /// Which entries under the base.
    pub scope: Scope,
    /// Which of them.
    pub filter: &'a Filter,
    /// The attributes to return: empty for all user attributes, `["1.1"]` for none.
    pub attributes: &'a [&'a str],
    /// The most entries to return (0: no limit of ours).
    pub size_limit: u32,
}

/// One search result entry: its DN and its attributes, in server order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's DN, as the server sent it.
    pub dn: String,
    /// (attribute description, values), as the server sent them.
    pub attributes: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// The values of attribute `name` (ASCII case-insensitive; also matches descriptions with
    /// options like "mail;lang-en" for "mail"), those that are UTF-8, in server order.
    pub fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a + use<'a> {
        let name = name.to_string();
        self.attributes
            .iter()
            .filter(move |(description, _)| attribute_matches(description, &name))
            .flat_map(|(_, values)| values.iter())
            .filter_map(|value| std::str::from_utf8(value).ok())
    }

    /// The first UTF-8 value of attribute `name` (see [`Entry::values`]).
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).next()
    }
}

fn attribute_matches(description: &str, name: &str) -> bool {
    match description.get(..name.len()) {
        Some(head) if head.eq_ignore_ascii_case(name) => {
            let rest = &description[name.len()..];
            rest.is_empty() || rest.starts_with(';')
        }
        _ => false,
    }
}

/// The LDAPResult of a response (the referral, if any, is ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapResult {
    /// resultCode.
    pub code: u32,
    /// diagnosticMessage.
    pub message: String,
}

/// A decoded response's protocol operation.
#[derive(Debug)]
pub enum Response {
    /// BindResponse.
    Bind(LdapResult),
    /// SearchResultEntry.
    Entry(Entry),
    /// SearchResultReference (its URLs are not kept).
    Reference,
    /// SearchResultDone, with the paged results cookie when the control came back.
    Done(LdapResult, Option<Vec<u8>>),
    /// ExtendedResponse, with its responseName.
    Extended(LdapResult, Option<String>),
    /// IntermediateResponse (ignored).
    Intermediate,
}

/// Wraps an operation into an LDAPMessage with `id`, and optional controls (already encoded).
fn message(id: i32, build: impl FnOnce(&mut Vec<u8>), controls: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    ber::write_constructed(&mut out, ber::SEQUENCE, |out| {
        ber::write_integer(out, ber::INTEGER, i64::from(id));
        build(out);
        if let Some(controls) = controls {
            ber::write_tlv(out, CONTROLS, controls);
        }
    });
    out
}

/// BindRequest, LDAPv3 simple authentication.
pub fn bind_request(id: i32, dn: &str, password: &str) -> Vec<u8> {
    message(
        id,
        |out| {
            ber::write_constructed(out, BIND_REQUEST, |out| {
                ber::write_integer(out, ber::INTEGER, 3);
                ber::write_tlv(out, ber::OCTET_STRING, dn.as_bytes());
                ber::write_tlv(out, ber::context(0, false), password.as_bytes());
            })
        },
        None,
    )
}

/// UnbindRequest.
pub fn unbind_request(id: i32) -> Vec<u8> {
    message(id, |out| ber::write_tlv(out, UNBIND_REQUEST, &[]), None)
}

/// ExtendedRequest for StartTLS.
pub fn start_tls_request(id: i32) -> Vec<u8> {
    message(
        id,
        |out| {
            ber::write_constructed(out, EXTENDED_REQUEST, |out| {
                ber::write_tlv(out, ber::context(0, false), START_TLS_OID.as_bytes());
            })
        },
        None,
    )
}

/// SearchRequest (never dereferencing aliases, no time limit, types and values), with the
/// paged results control (non-critical) when `paging` is Some((page size, cookie)).
pub fn search_request(
    id: i32,
    request: &SearchRequest<'_>,
    paging: Option<(u32, &[u8])>,
) -> Vec<u8> {
    let controls = paging.map(|(size, cookie)| {
        let mut value = Vec::new();
        ber::write_constructed(&mut value, ber::SEQUENCE, |out| {
            ber::write_integer(out, ber::INTEGER, i64::from(size));
            ber::write_tlv(out, ber::OCTET_STRING, cookie);
        });
        let mut control = Vec::new();
        ber::write_constructed(&mut control, ber::SEQUENCE, |out| {
            ber::write_tlv(out, ber::OCTET_STRING, PAGED_RESULTS_OID.as_bytes());
            ber::write_tlv(out, ber::OCTET_STRING, &value);
        });
        control
    });
    let scope = match request.scope {
        Scope::Base => 0,
        Scope::OneLevel => 1,
        Scope::Subtree => 2,
    };
    message(
        id,
        |out| {
            ber::write_constructed(out, SEARCH_REQUEST, |out| {
                ber::write_tlv(out, ber::OCTET_STRING, request.base.as_bytes());
                ber::write_integer(out, ber::ENUMERATED, scope);
                ber::write_integer(out, ber::ENUMERATED, 0);
                ber::write_integer(out, ber::INTEGER, i64::from(request.size_limit));
                ber::write_integer(out, ber::INTEGER, 0);
                ber::write_boolean(out, ber::BOOLEAN, false);
                request.filter.encode(out);
                ber::write_constructed(out, ber::SEQUENCE, |out| {
                    for attribute in request.attributes {
                        ber::write_tlv(out, ber::OCTET_STRING, attribute.as_bytes());
                    }
                });
            })
        },
        controls.as_deref(),
    )
}

/// Decodes one LDAPMessage: its messageID and operation.
pub fn decode_response(bytes: &[u8]) -> Result<(i64, Response), String> {
    let mut outer = Reader::new(bytes);
    let mut reader = outer.read_tag(ber::SEQUENCE, "LDAPMessage")?.reader();
    outer.finish("LDAPMessage")?;
    let id = reader.read_tag(ber::INTEGER, "messageID")?.integer()?;
    let op = reader.read()?;
    let controls = if reader.peek_tag() == Some(CONTROLS) {
        Some(reader.read()?)
    } else {
        None
    };
    let response = match op.tag {
        BIND_RESPONSE => Response::Bind(ldap_result(&mut op.reader())?),
        SEARCH_ENTRY => Response::Entry(entry(op)?),
        SEARCH_REFERENCE => Response::Reference,
        SEARCH_DONE => {
            let result = ldap_result(&mut op.reader())?;
            let cookie = match controls {
                Some(controls) => paged_cookie(controls)?,
                None => None,
            };
            Response::Done(result, cookie)
        }
        EXTENDED_RESPONSE => {
            let mut reader = op.reader();
            let result = ldap_result(&mut reader)?;
            let mut name = None;
            while !reader.is_empty() {
                let part = reader.read()?;
                if part.tag == ber::context(10, false) {
                    name = Some(part.utf8()?.to_string());
                }
            }
            Response::Extended(result, name)
        }
        INTERMEDIATE_RESPONSE => Response::Intermediate,
        tag => return Err(format!("unexpected protocol operation (tag 0x{tag:02x})")),
    };
    Ok((id, response))
}

/// Reads the LDAPResult fields at the start of an operation (referral and anything after is
/// left in the reader).
fn ldap_result(reader: &mut Reader<'_>) -> Result<LdapResult, String> {
    let code = reader.read_tag(ber::ENUMERATED, "resultCode")?.integer()?;
    let code = u32::try_from(code).map_err(|_| format!("resultCode {code} out of range"))?;
    reader.read_tag(ber::OCTET_STRING, "matchedDN")?;
    let message = reader.read_tag(ber::OCTET_STRING, "diagnosticMessage")?;
    let message = String::from_utf8_lossy(message.content).into_owned();
    Ok(LdapResult { code, message })
}

fn entry(op: Tlv<'_>) -> Result<Entry, String> {
    let mut reader = op.reader();
    // Lossy: one odd DN must not fail a whole search.
    let dn = reader.read_tag(ber::OCTET_STRING, "objectName")?;
    let dn = String::from_utf8_lossy(dn.content).into_owned();
    let mut list = reader.read_tag(ber::SEQUENCE, "attributes")?.reader();
    let mut attributes = Vec::new();
    while !list.is_empty() {
        let mut attribute = list.read_tag(ber::SEQUENCE, "attribute")?.reader();
        let name = attribute
            .read_tag(ber::OCTET_STRING, "attribute type")?
            .utf8()?
            .to_string();
        let mut set = attribute.read_tag(ber::SET, "attribute values")?.reader();
        let mut values = Vec::new();
        while !set.is_empty() {
            values.push(
                set.read_tag(ber::OCTET_STRING, "attribute value")?
                    .content
                    .to_vec(),
            );
        }
        attributes.push((name, values));
    }
    Ok(Entry { dn, attributes })
}

/// The cookie of the paged results control among `controls`, if it is there.
fn paged_cookie(controls: Tlv<'_>) -> Result<Option<Vec<u8>>, String> {
    let mut reader = controls.reader();
    while !reader.is_empty() {
        let mut control = reader.read_tag(ber::SEQUENCE, "control")?.reader();
        let oid = control.read_tag(ber::OCTET_STRING, "controlType")?;
        if oid.content != PAGED_RESULTS_OID.as_bytes() {
            continue;
        }
        if control.peek_tag() == Some(ber::BOOLEAN) {
            control.read()?;
        }
        let value = control.read_tag(ber::OCTET_STRING, "paged results control value")?;
        let mut value = Reader::new(value.content);
        let mut fields = value
            .read_tag(ber::SEQUENCE, "paged results value")?
            .reader();
        fields.read_tag(ber::INTEGER, "paged results size")?;
        let cookie = fields.read_tag(ber::OCTET_STRING, "paged results cookie")?;
        return Ok(Some(cookie.content.to_vec()));
    }
    Ok(None)
}
