//! Caps on the outbound calls in progress: all destinations together
//! (`outbound.maxConcurrent`) and each destination (`outbound.maxPerDestination`). A call
//! beyond a cap fails at once ([`HsError::Busy`]) instead of waiting: a handler thread held by
//! a slow or hostile peer is a thread no other request can use, so waiting for a slot would
//! only move the queue. A [`Slot`] gives its place back when dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use super::HsError;

/// The caps and what is in progress.
pub struct Slots {
    max_total: usize,
    max_each: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    total: usize,
    each: HashMap<String, usize>,
}

/// A call's place under the caps.
pub struct Slot<'a> {
    slots: &'a Slots,
    destination: String,
}

impl Slots {
    /// At most `max_total` calls in progress, `max_each` to one destination.
    pub fn new(max_total: usize, max_each: usize) -> Slots {
        Slots {
            max_total: max_total.max(1),
            max_each: max_each.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Takes a place for a call to `destination` (a server name or host, compared without
    /// regard to case), or fails at once when a cap is reached.
    pub fn take(&self, destination: &str) -> Result<Slot<'_>, HsError> {
        let destination = destination.to_ascii_lowercase();
        let mut state = self.lock();
        if state.total >= self.max_total {
            return Err(HsError::Busy(format!(
                "{} outbound calls in progress (outbound.maxConcurrent)",
                state.total
            )));
        }
        let n = state.each.entry(destination.clone()).or_insert(0);
        if *n >= self.max_each {
            return Err(HsError::Busy(format!(
                "{n} calls to {destination} in progress (outbound.maxPerDestination)"
            )));
        }
        *n += 1;
        state.total += 1;
        Ok(Slot {
            slots: self,
            destination,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.total -= 1;
        if let Some(n) = state.each.get_mut(&self.destination) {
            *n -= 1;
            if *n == 0 {
                state.each.remove(&self.destination);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_destination_and_the_total_and_gives_places_back() {
        let slots = Slots::new(3, 2);
        let a1 = slots.take("a.example").unwrap();
        let _a2 = slots.take("A.example").unwrap();
        assert!(matches!(slots.take("a.example"), Err(HsError::Busy(_))));
        let _b = slots.take("b.example").unwrap();
        assert!(matches!(slots.take("c.example"), Err(HsError::Busy(_))));
        drop(a1);
        assert!(slots.take("c.example").is_ok());
        assert!(slots.take("a.example").is_ok());
    }
}
