//! The lookup pepper: created on first start, rotated on an interval if configured.
//!
//! A rotation never shows lookups a partial index: the next pepper's entries are written under
//! a new generation while lookups keep using the current one, then one write switches over,
//! and only then are the old entries deleted. Binds made during a rotation write both
//! generations; they hold [`Peppers::for_writes`] so none can slip between the start of the
//! rotation and the indexing pass.

use std::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::crypto::random;
use crate::error::Result;
use crate::store::Store;
use crate::store::bindings::Pepper;

/// The peppers in use.
#[derive(Debug, Clone)]
pub struct PepperState {
    /// The pepper lookups use.
    pub current: Pepper,
    /// The pepper being indexed, during a rotation.
    pub next: Option<Pepper>,
}

impl PepperState {
    /// Every pepper a write must index.
    pub fn all(&self) -> Vec<Pepper> {
        std::iter::once(self.current.clone())
            .chain(self.next.clone())
            .collect()
    }
}

/// Holds the pepper state and runs rotations.
pub struct Peppers {
    state: RwLock<PepperState>,
    rotation: Mutex<()>,
}

fn new_pepper(generation: u32) -> Result<Pepper> {
    // 16 alphanumerics ([a-zA-Z0-9], as MSC2134 wants): the URL-safe alphabet minus - and _.
    let mut pepper = String::new();
    while pepper.len() < 16 {
        pepper.extend(
            random::token(16)?
                .chars()
                .filter(char::is_ascii_alphanumeric),
        );
    }
    pepper.truncate(16);
    Ok(Pepper { generation, pepper })
}

impl Peppers {
    /// Loads the pepper, creating (and indexing) one on first start, and finishes a rotation
    /// that a restart interrupted.
    pub fn load_or_create(store: &Store) -> Result<Peppers> {
        let (current, next) = store.peppers()?;
        let current = match current {
            Some(p) => p,
            None => {
                let p = new_pepper(1)?;
                store.index_all(&p)?;
                store.switch_pepper(&p)?;
                p
            }
        };
        let peppers = Peppers {
            state: RwLock::new(PepperState {
                current,
                next: None,
            }),
            rotation: Mutex::new(()),
        };
        if let Some(next) = next {
            log::info!("finishing a pepper rotation that was interrupted");
            peppers.finish_rotation(store, next)?;
        }
        Ok(peppers)
    }

    /// The pepper clients must use.
    pub fn current(&self) -> Pepper {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// The state, held while writing a binding so a rotation cannot start in between.
    pub fn for_writes(&self) -> RwLockReadGuard<'_, PepperState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Rotates to a new pepper: index it, switch, drop the old entries.
    pub fn rotate(&self, store: &Store) -> Result<()> {
        let _one_at_a_time = self.rotation.lock().unwrap_or_else(|p| p.into_inner());
        let next = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            let next = new_pepper(state.current.generation.wrapping_add(1))?;
            store.begin_pepper(&next)?;
            state.next = Some(next.clone());
            next
        };
        self.finish_rotation(store, next)
    }

    fn finish_rotation(&self, store: &Store, next: Pepper) -> Result<()> {
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.next = Some(next.clone());
        }
        let written = store.index_all(&next)?;
        let old = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            store.switch_pepper(&next)?;
            let old = std::mem::replace(&mut state.current, next);
            state.next = None;
            old
        };
        let dropped = store.drop_generation(old.generation)?;
        log::info!("lookup pepper rotated: {written} 3PIDs indexed, {dropped} old entries removed");
        Ok(())
    }
}
