//! Terms of service: the policies from `policy.policies`, what each user accepted, and whether
//! a user has accepted every current policy.
//!
//! Acceptance is recorded as (policy id, version) pairs: accepting the URL of any language of
//! the current version accepts that policy, and a new version must be accepted again even when
//! its URL did not change.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::Policy;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

/// The configured policies.
pub struct Terms {
    policies: BTreeMap<String, Policy>,
}

impl Terms {
    /// The policies of `policy.policies`.
    pub fn new(policies: &BTreeMap<String, Policy>) -> Terms {
        Terms {
            policies: policies.clone(),
        }
    }

    /// `{"policies": {...}}` as the spec shapes it: each policy has `version` and one object
    /// per language.
    pub fn document(&self) -> Value {
        let mut policies = serde_json::Map::new();
        for (id, policy) in &self.policies {
            let mut entry = serde_json::Map::new();
            entry.insert("version".into(), json!(policy.version));
            for (lang, doc) in &policy.terms {
                entry.insert(lang.clone(), json!({"name": doc.name, "url": doc.url}));
            }
            policies.insert(id.clone(), Value::Object(entry));
        }
        json!({ "policies": policies })
    }

    /// Records that `user` accepts the documents at `urls`, in addition to what they accepted
    /// before. 400 `M_INVALID_PARAM` for a URL that is not a current policy document.
    pub fn accept(&self, store: &Store, user: &str, urls: &[String]) -> Result<()> {
        let mut accepted = store.accepted_terms(user)?;
        for url in urls {
            let (id, policy) = self
                .policies
                .iter()
                .find(|(_, p)| p.terms.values().any(|doc| &doc.url == url))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidParam,
                        format!("'{url}' is not the URL of a current policy"),
                    )
                })?;
            let pair = (id.clone(), policy.version.clone());
            if !accepted.contains(&pair) {
                accepted.push(pair);
            }
        }
        // Forget versions that are no longer current, so the record stays small.
        accepted.retain(|(id, v)| self.policies.get(id).is_some_and(|p| &p.version == v));
        store.set_accepted_terms(user, &accepted)?;
        store.durable()
    }

    /// True when `user` accepted the current version of every policy.
    pub fn all_accepted(&self, store: &Store, user: &str) -> Result<bool> {
        if self.policies.is_empty() {
            return Ok(true);
        }
        let accepted = store.accepted_terms(user)?;
        Ok(self
            .policies
            .iter()
            .all(|(id, p)| accepted.iter().any(|(aid, v)| aid == id && *v == p.version)))
    }
}
