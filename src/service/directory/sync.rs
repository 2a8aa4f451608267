//! Copies the directory's users' 3PIDs into the store under the source `ldap`, so lookups
//! (plain and hashed) and pending invites find them without any session.
//!
//! A **full sync** reads every user entry (the user filter under every base DN, page by page)
//! and makes the source match it: new 3PIDs are written, 3PIDs no user has any more (users who
//! left the directory or no longer match the filter) are removed. Between full syncs
//! (`stores.ldap.sync.fullInterval`), an **incremental sync** reads only the entries changed
//! since the newest change it has seen (`changedAttribute >= high-water mark`, e.g.
//! `modifyTimestamp`) and the names (DNs) of all user entries, to drop those that are gone. An
//! entry it cannot account for (a DN it never read, with no newer change) makes it a full sync.
//! What was read lives in memory; the first sync after a start is a full one.
//!
//! Any failure while reading the directory returns an error before anything is written, so
//! the store keeps the last complete picture.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::person::Person;
use super::{Directory, DirectoryError, SOURCE};
use crate::config::LdapSyncConfig;
use crate::ldap::{Entry, LdapError, escape_value};
use crate::service::stores::{Claims, Wanted, replace_source};
use crate::store::Store;
use crate::store::bindings::Pepper;

/// User entries one sync reads at most: a bound on memory, far above any organisation this
/// server is meant for.
const MAX_ENTRIES: usize = 1_000_000;

/// What one sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether every entry was read (a full sync) or only the changed ones.
    pub full: bool,
    /// Users known after the sync.
    pub users: usize,
    /// Entries read with their attributes (all of them in a full sync).
    pub read: usize,
    /// Bindings written: 3PIDs new to the source, or now on another user.
    pub added: usize,
    /// Bindings removed: 3PIDs no user has any more.
    pub removed: usize,
    /// Bindings already right.
    pub unchanged: usize,
    /// How long the sync took, in milliseconds (reading the directory and writing).
    pub ms: u64,
}

/// What the last good sync read.
#[derive(Default)]
struct Known {
    /// The users, by DN.
    people: HashMap<String, Person>,
    /// The DNs of user entries that make no Matrix user (no valid uid).
    skipped: HashSet<String>,
    /// The newest `changedAttribute` value seen (the next incremental sync reads from it).
    high_water: Option<String>,
    /// When the last full sync ran (ms); 0: never.
    last_full_ms: u64,
}

/// Syncs the directory into the store; the caller runs [`DirectorySync::sync_once`] every
/// `stores.ldap.sync.interval` seconds.
pub struct DirectorySync {
    directory: Arc<Directory>,
    changed_attribute: String,
    full_interval_ms: u64,
    known: Mutex<Known>,
}

impl DirectorySync {
    /// The syncer of `directory` with `stores.ldap.sync.*`.
    pub fn new(directory: Arc<Directory>, config: &LdapSyncConfig) -> DirectorySync {
        DirectorySync {
            directory,
            changed_attribute: config.changed_attribute.clone(),
            full_interval_ms: config.full_interval.saturating_mul(1000),
            known: Mutex::new(Known::default()),
        }
    }

    /// One sync (full or incremental, see the module doc), then the source `ldap` in `store`
    /// matches the directory (hash entries under every pepper in `peppers`) and the writes are
    /// durable.
    pub fn sync_once(
        &self,
        store: &Store,
        peppers: &[Pepper],
        now_ms: u64,
    ) -> Result<SyncReport, String> {
        let started = std::time::Instant::now();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let incremental = !self.changed_attribute.is_empty()
            && known.high_water.is_some()
            && now_ms.saturating_sub(known.last_full_ms) < self.full_interval_ms;
        let result = self.sync_with(&mut known, incremental, store, peppers, now_ms, started);
        if result.is_err() {
            // What is in memory may be part-read: the next sync reads everything.
            known.high_water = None;
        }
        result
    }

    /// [`DirectorySync::sync_once`] with the lock on what was read held.
    fn sync_with(
        &self,
        known: &mut Known,
        incremental: bool,
        store: &Store,
        peppers: &[Pepper],
        now_ms: u64,
        started: std::time::Instant,
    ) -> Result<SyncReport, String> {
        let mut conn = self.directory.connect().map_err(|e| e.to_string())?;
        let outcome = if incremental {
            self.read_changes(&mut conn, known)
        } else {
            self.read_all(&mut conn).map(Some)
        };
        conn.close();
        let (next, full) = match outcome.map_err(|e| e.to_string())? {
            Some(next) => (next, !incremental),
            None => {
                // Something the incremental sync could not account for: read everything.
                let mut conn = self.directory.connect().map_err(|e| e.to_string())?;
                let all = self.read_all(&mut conn).map_err(|e| e.to_string());
                conn.close();
                (all?, true)
            }
        };
        let wanted = wanted(&next.people);
        let replaced = replace_source(store, peppers, SOURCE, &wanted, now_ms, now_ms)
            .map_err(|e| format!("writing the synced bindings failed: {e}"))?;
        let report = SyncReport {
            full,
            users: next.people.len(),
            read: next.read,
            added: replaced.added,
            removed: replaced.removed,
            unchanged: replaced.unchanged,
            ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        known.people = next.people;
        known.skipped = next.skipped;
        known.high_water = next.high_water;
        if full {
            known.last_full_ms = now_ms;
        }
        Ok(report)
    }

    /// Every user entry.
    fn read_all(&self, conn: &mut crate::ldap::Connection) -> Result<Picture, DirectoryError> {
        let mut picture = Picture::default();
        self.read_people(conn, "", &mut picture)?;
        Ok(picture)
    }

    /// The entries changed since the high-water mark and the DNs of all user entries, applied
    /// to `known`; `None` when a DN turns up that was never read and has no newer change.
    fn read_changes(
        &self,
        conn: &mut crate::ldap::Connection,
        known: &mut Known,
    ) -> Result<Option<Picture>, DirectoryError> {
        let mut changed = Picture {
            high_water: known.high_water.clone(),
            ..Picture::default()
        };
        let since = known.high_water.as_deref().unwrap_or_default();
        let extra = format!("({}>={})", self.changed_attribute, escape_value(since));
        self.read_people(conn, &extra, &mut changed)?;
        let mut present: HashSet<String> = HashSet::new();
        let mut too_many = false;
        self.directory
            .search(conn, "", &["1.1"], &mut |entry: Entry| {
                if present.len() >= MAX_ENTRIES {
                    too_many = true;
                    return Err(LdapError::Protocol("too many entries".into()));
                }
                present.insert(entry.dn);
                Ok(())
            })
            .map_err(|e| too_many_or(e, too_many))?;
        // The users read before move over (not copied: a large directory is held once).
        let mut before = std::mem::take(&mut known.people);
        let mut people = HashMap::with_capacity(present.len());
        let mut skipped = HashSet::new();
        for dn in present {
            if let Some(p) = changed.people.remove(&dn) {
                people.insert(dn, p);
            } else if changed.skipped.contains(&dn) || known.skipped.contains(&dn) {
                skipped.insert(dn);
            } else if let Some(p) = before.remove(&dn) {
                people.insert(dn, p);
            } else {
                // A user entry never read, with no newer change (restored from a backup, or
                // matching the filter after a change elsewhere): only a full sync can tell.
                return Ok(None);
            }
        }
        Ok(Some(Picture {
            people,
            skipped,
            high_water: changed.high_water,
            read: changed.read,
        }))
    }

    /// Reads the user entries narrowed by `extra` into `picture`.
    fn read_people(
        &self,
        conn: &mut crate::ldap::Connection,
        extra: &str,
        picture: &mut Picture,
    ) -> Result<(), DirectoryError> {
        let mapping = &self.directory.mapping;
        let mut attributes = mapping.attributes();
        if !self.changed_attribute.is_empty() {
            attributes.push(&self.changed_attribute);
        }
        let changed_attribute = self.changed_attribute.as_str();
        let mut too_many = false;
        self.directory
            .search(conn, extra, &attributes, &mut |entry: Entry| {
                if picture.read >= MAX_ENTRIES {
                    too_many = true;
                    return Err(LdapError::Protocol("too many entries".into()));
                }
                picture.read += 1;
                if !changed_attribute.is_empty()
                    && let Some(stamp) = entry.first(changed_attribute)
                    && picture.high_water.as_deref().is_none_or(|h| stamp > h)
                {
                    picture.high_water = Some(stamp.to_string());
                }
                match mapping.person(&entry) {
                    Some(person) => {
                        picture.people.insert(entry.dn, person);
                    }
                    None => {
                        picture.skipped.insert(entry.dn);
                    }
                }
                Ok(())
            })
            .map_err(|e| too_many_or(e, too_many))
    }
}

/// What a sync read: the usable users by DN, the DNs of entries that make no user, the newest
/// change and the number of entries read.
#[derive(Default)]
struct Picture {
    people: HashMap<String, Person>,
    skipped: HashSet<String>,
    high_water: Option<String>,
    read: usize,
}

fn too_many_or(e: DirectoryError, too_many: bool) -> DirectoryError {
    if too_many {
        DirectoryError(format!(
            "the directory has more than {MAX_ENTRIES} user entries; narrow stores.ldap.filter"
        ))
    } else {
        e
    }
}

/// The bindings the users want; a 3PID two users claim is published for neither (logged).
fn wanted(people: &HashMap<String, Person>) -> Wanted {
    let mut claims = Claims::new("ldap");
    for person in people.values() {
        for (medium, address) in &person.threepids {
            claims.claim(medium.as_str(), address, &person.mxid);
        }
    }
    claims.into_wanted()
}
