//! A bounded list of idle things kept for reuse: connections opened in place (the event store's
//! log readers, the read store's direct writer) and warm plugin instances. Whoever takes one
//! owns it until it gives it back; what comes back past the bound is dropped, and so is anything
//! its owner does not give back (a connection left in a transaction, an instance that faulted).

use std::sync::{Mutex, PoisonError};

/// Up to `keep` idle values.
pub struct IdleList<T> {
    items: Mutex<Vec<T>>,
    keep: usize,
}

impl<T> IdleList<T> {
    pub const fn new(keep: usize) -> Self {
        Self { items: Mutex::new(Vec::new()), keep }
    }

    /// The most recently given back value, if any.
    pub fn take(&self) -> Option<T> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).pop()
    }

    /// Keep `value` for the next [`Self::take`], unless `keep` are kept already (then it is
    /// dropped, outside the lock).
    pub fn give_back(&self, value: T) {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if items.len() < self.keep {
            items.push(value);
        }
    }

    /// How many are kept now.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::IdleList;

    #[test]
    fn keeps_up_to_its_bound_and_hands_back_the_newest_first() {
        let idle = IdleList::new(2);
        assert_eq!(idle.take(), None::<u32>);
        for value in [1, 2, 3] {
            idle.give_back(value);
        }
        assert_eq!(idle.len(), 2);
        assert_eq!((idle.take(), idle.take(), idle.take()), (Some(2), Some(1), None));
    }
}
