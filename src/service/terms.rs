//! Terms of service: the policies from `policy.policies`, what each user accepted, and whether
//! a user has accepted every current policy.
//!
//! Acceptance is recorded as (policy id, version) pairs: accepting the URL of any language of
//! the current version accepts that policy, and a new version must be accepted again even when
//! its URL did not change.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Policy;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

/// The configured policies, and what users accepted.
pub struct Terms {
    policies: BTreeMap<String, Policy>,
    store: Arc<Store>,
}

impl Terms {
    /// The policies of `policy.policies`; acceptances are kept in `store`.
    pub fn new(policies: &BTreeMap<String, Policy>, store: Arc<Store>) -> Terms {
        Terms {
            policies: policies.clone(),
            store,
        }
    }

    /// The current policies, by id.
    pub fn policies(&self) -> &BTreeMap<String, Policy> {
        &self.policies
    }

    /// Records that `user` accepts the documents at `urls`, in addition to what they accepted
    /// before. 400 `M_INVALID_PARAM` for a URL that is not a current policy document.
    pub fn accept(&self, user: &str, urls: &[String]) -> Result<()> {
        let mut accepted = self.store.accepted_terms(user)?;
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
        self.store.set_accepted_terms(user, &accepted)?;
        self.store.durable()
    }

    /// True when `user` accepted the current version of every policy.
    pub fn all_accepted(&self, user: &str) -> Result<bool> {
        if self.policies.is_empty() {
            return Ok(true);
        }
        let accepted = self.store.accepted_terms(user)?;
        Ok(self
            .policies
            .iter()
            .all(|(id, p)| accepted.iter().any(|(aid, v)| aid == id && *v == p.version)))
    }
}
