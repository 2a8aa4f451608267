//! How a directory entry becomes a Matrix user: the localpart from the uid attribute, the
//! display name, and the 3PIDs of the mapped attributes in our normal form.

use log::debug;

use crate::config::{LdapStoreConfig, LdapUidType};
use crate::ldap::{Entry, escape_value};
use crate::service::bindings::normalise_address;
use crate::threepid::Medium;

/// A directory user as Matrix sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The entry's DN (to bind as the user).
    pub dn: String,
    /// `@localpart:domain`.
    pub mxid: String,
    /// The display name, when the entry has one.
    pub display_name: Option<String>,
    /// Its 3PIDs in our normal form (emails case-folded, phone numbers as E.164 digits), in
    /// the order of the mapped attributes, without duplicates.
    pub threepids: Vec<(Medium, String)>,
}

/// The attribute mapping of `stores.ldap.attribute.*`.
pub struct Mapping {
    uid: String,
    uid_kind: LdapUidType,
    /// `userPrincipalName`-like: the localpart is the part before the `@`.
    uid_is_upn: bool,
    name: String,
    email: Vec<String>,
    msisdn: Vec<String>,
    region: String,
    domain: String,
}

/// Longest display name passed on.
const MAX_DISPLAY_NAME: usize = 256;
/// 3PIDs taken from one entry at most.
const MAX_THREEPIDS: usize = 32;

impl Mapping {
    /// The mapping of `config`; users belong to `domain`.
    pub fn new(config: &LdapStoreConfig, domain: &str) -> Mapping {
        let a = &config.attribute;
        Mapping {
            uid: a.uid.value.clone(),
            uid_kind: a.uid.kind,
            uid_is_upn: a.uid.value.eq_ignore_ascii_case("userPrincipalName"),
            name: a.name.clone(),
            email: a.threepid.email.clone(),
            msisdn: a.threepid.msisdn.clone(),
            region: config.default_region.clone(),
            domain: domain.to_string(),
        }
    }

    /// The Matrix domain of the directory's users.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Every attribute a sync or a password check reads.
    pub fn attributes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![self.uid.as_str()];
        if !self.name.is_empty() {
            out.push(&self.name);
        }
        out.extend(self.email.iter().map(String::as_str));
        out.extend(self.msisdn.iter().map(String::as_str));
        out
    }

    /// The filter item that finds the entry of `localpart` (already checked to be a valid
    /// localpart, and escaped here all the same).
    pub fn uid_filter(&self, localpart: &str) -> String {
        let value = escape_value(localpart);
        match self.uid_kind {
            LdapUidType::Mxid => format!(
                "({}={})",
                self.uid,
                escape_value(&format!("@{localpart}:{}", self.domain))
            ),
            LdapUidType::Uid if self.uid_is_upn => format!("({}={value}@*)", self.uid),
            LdapUidType::Uid => format!("({}={value})", self.uid),
        }
    }

    /// The localpart an entry's uid value gives, if it makes a valid one.
    pub fn localpart_of(&self, value: &str) -> Option<String> {
        let local = match self.uid_kind {
            LdapUidType::Mxid => {
                let (local, server) = value.strip_prefix('@')?.split_once(':')?;
                if !server.eq_ignore_ascii_case(&self.domain) {
                    return None;
                }
                local
            }
            LdapUidType::Uid if self.uid_is_upn => value.split_once('@').map_or(value, |p| p.0),
            LdapUidType::Uid => value,
        };
        let local = local.trim().to_lowercase();
        is_localpart(&local).then_some(local)
    }

    /// The Matrix user of `entry`, or `None` (logged at debug) when its uid attribute gives no
    /// valid localpart.
    pub fn person(&self, entry: &Entry) -> Option<Person> {
        let Some(uid) = entry.first(&self.uid) else {
            debug!("ldap: {} has no {} attribute; skipped", entry.dn, self.uid);
            return None;
        };
        let Some(localpart) = self.localpart_of(uid) else {
            debug!(
                "ldap: {}: {} '{uid}' is not a Matrix localpart here; skipped",
                entry.dn, self.uid
            );
            return None;
        };
        let display_name = (!self.name.is_empty())
            .then(|| entry.first(&self.name))
            .flatten()
            .map(|n| n.chars().filter(|c| !c.is_control()).take(MAX_DISPLAY_NAME))
            .map(|n| n.collect::<String>().trim().to_string())
            .filter(|n| !n.is_empty());
        let mut threepids: Vec<(Medium, String)> = Vec::new();
        let mut push = |medium: Medium, address: Option<String>| {
            if let Some(address) = address
                && threepids.len() < MAX_THREEPIDS
                && !threepids.iter().any(|(m, a)| *m == medium && *a == address)
            {
                threepids.push((medium, address));
            }
        };
        for attr in &self.email {
            for value in entry.values(attr) {
                push(
                    Medium::Email,
                    normalise_address(Medium::Email, value.trim()).ok(),
                );
            }
        }
        for attr in &self.msisdn {
            for value in entry.values(attr) {
                push(Medium::Msisdn, self.phone_number(value));
            }
        }
        Some(Person {
            dn: entry.dn.clone(),
            mxid: format!("@{localpart}:{}", self.domain),
            display_name,
            threepids,
        })
    }

    /// A phone number as written in the directory (`+44 7700 900123`, `07700 900123` in the
    /// default region) in E.164 digits, or `None` when it cannot be read as one. The
    /// directory is the organisation's own record: a number libphonenumber's metadata does not
    /// list as in use (a new range, a fictional one) is published all the same, as Synapse
    /// stores what it parses.
    fn phone_number(&self, value: &str) -> Option<String> {
        let value = value.trim();
        let region = if !self.region.is_empty() {
            self.region.parse::<phonenumber::country::Id>().ok()
        } else if value.starts_with('+') {
            None
        } else {
            debug!("ldap: phone number '{value}' has no country code and no defaultRegion");
            return None;
        };
        let parsed = match phonenumber::parse(region, value) {
            Ok(number) if number.extension().is_none() => number,
            Ok(_) => {
                debug!("ldap: phone number '{value}' skipped: it has an extension");
                return None;
            }
            Err(e) => {
                debug!("ldap: phone number '{value}' skipped: {e}");
                return None;
            }
        };
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let digits = e164.trim_start_matches('+');
        // Shorter than any subscriber number with its country code: an extension or a typo.
        if digits.len() < 8 {
            debug!("ldap: phone number '{value}' skipped: too short");
            return None;
        }
        normalise_address(Medium::Msisdn, digits).ok()
    }
}

/// A localpart new users may have: `a-z 0-9 . _ = - / +`, 1 to 255 bytes.
pub fn is_localpart(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LdapStoreConfig;

    fn mapping(edit: impl FnOnce(&mut LdapStoreConfig)) -> Mapping {
        let mut c = LdapStoreConfig::default();
        edit(&mut c);
        Mapping::new(&c, "example.org")
    }

    fn entry(attrs: &[(&str, &[&str])]) -> Entry {
        Entry {
            dn: "uid=x,ou=people,dc=example,dc=org".into(),
            attributes: attrs
                .iter()
                .map(|(n, vs)| {
                    (
                        n.to_string(),
                        vs.iter().map(|v| v.as_bytes().to_vec()).collect(),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn localparts() {
        let m = mapping(|_| {});
        assert_eq!(m.localpart_of("Alice").as_deref(), Some("alice"));
        assert_eq!(m.localpart_of("a b"), None);
        assert_eq!(m.localpart_of(""), None);
        assert_eq!(m.localpart_of("*)(uid=*"), None);
        let upn = mapping(|c| c.attribute.uid.value = "userPrincipalName".into());
        assert_eq!(
            upn.localpart_of("Alice@corp.example.org").as_deref(),
            Some("alice")
        );
        assert_eq!(upn.uid_filter("alice"), "(userPrincipalName=alice@*)");
        let mxid = mapping(|c| {
            c.attribute.uid.kind = LdapUidType::Mxid;
            c.attribute.uid.value = "matrixId".into();
        });
        assert_eq!(
            mxid.localpart_of("@Alice:example.org").as_deref(),
            Some("alice")
        );
        assert_eq!(mxid.localpart_of("@alice:elsewhere.org"), None);
    }

    #[test]
    fn entries_become_people() {
        let m = mapping(|c| c.default_region = "GB".into());
        let p = m
            .person(&entry(&[
                ("uid", &["Alice"]),
                ("displayName", &["Alice Liddell"]),
                (
                    "mail",
                    &["Alice@Example.ORG", "alice@example.org", "not an address"],
                ),
                ("telephoneNumber", &["+44 7700 900123"]),
                ("mobile", &["07700 900456", "12"]),
            ]))
            .unwrap();
        assert_eq!(p.mxid, "@alice:example.org");
        assert_eq!(p.display_name.as_deref(), Some("Alice Liddell"));
        assert_eq!(
            p.threepids,
            vec![
                (Medium::Email, "alice@example.org".to_string()),
                (Medium::Msisdn, "447700900123".to_string()),
                (Medium::Msisdn, "447700900456".to_string()),
            ]
        );
        assert_eq!(m.person(&entry(&[("mail", &["a@example.org"])])), None);
        let no_region = mapping(|_| {});
        let p = no_region
            .person(&entry(&[("uid", &["bob"]), ("mobile", &["07700 900456"])]))
            .unwrap();
        assert!(p.threepids.is_empty());
    }
}
