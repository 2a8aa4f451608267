//! Accounts: access tokens and accepted terms.
//!
//! Keyspaces:
//! - `tokenhash_account`: SHA-256 of the access token -> [`AccountRecord`] as JSON. Only the
//!   hash is stored, so a copy of the store does not hand out working tokens.
//! - `user_terms`: user id -> the accepted policy versions, JSON list of `[policy, version]`.

use fjall::{Database, Keyspace};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{OpenError, Store, open_keyspace};
use crate::error::{Error, Result};

/// What a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The Matrix user id.
    pub user_id: String,
    /// When the token was issued, ms since the epoch.
    pub created_ms: u64,
}

/// The account keyspaces.
pub(super) struct Keyspaces {
    by_token_hash: Keyspace,
    terms_by_user: Keyspace,
}

impl Keyspaces {
    pub(super) fn open(db: &Database) -> std::result::Result<Keyspaces, OpenError> {
        Ok(Keyspaces {
            by_token_hash: open_keyspace(db, "tokenhash_account")?,
            terms_by_user: open_keyspace(db, "user_terms")?,
        })
    }

    pub(super) fn all(&self) -> [&Keyspace; 2] {
        [&self.by_token_hash, &self.terms_by_user]
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Store {
    pub(super) fn tokens_keyspace(&self) -> &Keyspace {
        &self.accounts.by_token_hash
    }

    pub(super) fn terms_keyspace(&self) -> &Keyspace {
        &self.accounts.terms_by_user
    }

    /// Stores a new token for `record.user_id` (not yet durable).
    pub fn put_token(&self, token: &str, record: &AccountRecord) -> Result<()> {
        let json = serde_json::to_vec(record).map_err(Error::internal)?;
        self.accounts
            .by_token_hash
            .insert(token_hash(token), json)?;
        Ok(())
    }

    /// The account a token belongs to.
    pub fn token_account(&self, token: &str) -> Result<Option<AccountRecord>> {
        let Some(bytes) = self.accounts.by_token_hash.get(token_hash(token))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format_args!("corrupt account record: {e}")))
    }

    /// Forgets a token; true when it existed (not yet durable).
    pub fn delete_token(&self, token: &str) -> Result<bool> {
        let key = token_hash(token);
        let existed = self.accounts.by_token_hash.contains_key(key)?;
        if existed {
            self.accounts.by_token_hash.remove(key)?;
        }
        Ok(existed)
    }

    /// The policy versions a user accepted, as (policy id, version) pairs.
    pub fn accepted_terms(&self, user_id: &str) -> Result<Vec<(String, String)>> {
        let Some(bytes) = self.accounts.terms_by_user.get(user_id)? else {
            return Ok(Vec::new());
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::internal(format_args!("corrupt terms record: {e}")))
    }

    /// Replaces the policy versions a user accepted (not yet durable).
    pub fn set_accepted_terms(&self, user_id: &str, accepted: &[(String, String)]) -> Result<()> {
        let json = serde_json::to_vec(accepted).map_err(Error::internal)?;
        self.accounts.terms_by_user.insert(user_id, json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_can_be_deleted() {
        let dir = std::env::temp_dir().join(format!("oxisd-accounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let record = AccountRecord {
            user_id: "@a:b.org".into(),
            created_ms: 5,
        };
        store.put_token("secret-token-value", &record).unwrap();
        assert_eq!(
            store.token_account("secret-token-value").unwrap(),
            Some(record)
        );
        assert_eq!(store.token_account("other").unwrap(), None);
        // The token itself is nowhere in the keyspace.
        for item in store.accounts.by_token_hash.iter() {
            let (k, v) = item.into_inner().unwrap();
            assert!(!String::from_utf8_lossy(&k).contains("secret-token-value"));
            assert!(!String::from_utf8_lossy(&v).contains("secret-token-value"));
        }
        assert!(store.delete_token("secret-token-value").unwrap());
        assert!(!store.delete_token("secret-token-value").unwrap());
        assert_eq!(store.token_account("secret-token-value").unwrap(), None);
        drop(store);
        std::fs::remove_dir_all(dir).ok();
    }
}
