//! Aggregate states this host has already rebuilt, so a command on a known stream neither reads
//! nor replays it.
//!
//! An entry says "this plugin's state of this stream at version V, and the events V+1..=H this
//! host appended after it" (the tail: the last command's events, not yet evolved, because
//! evolving them is part of the next command's plugin call). A plugin that returns the state
//! after the events it decided (WIT 0.3.0's `execute`) leaves no tail: V is H. H is the head as
//! this host last saw it. The event store stays the only truth: a command decides on the entry without reading,
//! and appends at H; if another host appended meanwhile, the store's version check refuses the
//! append and the command reads what it missed and decides again. An answer that depends on the
//! state without appending (a refusal, a version mismatch) is given only after a read.
//! An entry belongs to the plugin instance that produced it: after a plugin is replaced, its
//! states are not reused.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use lru::LruCache;

use super::AggregateLogic;
use crate::event_store::StoredEvent;

/// States larger than this are not kept: rebuilding them is rare enough, and memory is not.
const MAX_STATE_BYTES: usize = 64 * 1024;

/// A bounded, least-recently-used map from stream to its latest known state.
pub struct StateCache {
    /// `None` when caching is off.
    entries: Option<Mutex<LruCache<(String, String), Entry>>>,
}

struct Entry {
    logic: Weak<dyn AggregateLogic>,
    state: CachedState,
}

/// A state as of a version of its stream, and the events this host appended after it.
#[derive(Debug, Clone)]
pub struct CachedState {
    pub version: u64,
    pub state: Arc<[u8]>,
    /// Events `version + 1 ..= head()`, in order, not yet evolved into `state`.
    pub tail: Arc<[StoredEvent]>,
}

impl CachedState {
    /// A state at `version` with nothing after it.
    pub fn at(version: u64, state: Arc<[u8]>) -> Self {
        Self { version, state, tail: Arc::from(Vec::new()) }
    }

    /// The stream's version as this host last saw it.
    pub fn head(&self) -> u64 {
        self.version + self.tail.len() as u64
    }
}

impl StateCache {
    /// Keep at most `capacity` streams; 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        Self { entries: NonZeroUsize::new(capacity).map(|capacity| Mutex::new(LruCache::new(capacity))) }
    }

    /// The state `logic` last left for this stream, if still kept.
    pub fn get(&self, logic: &Arc<dyn AggregateLogic>, aggregate_type: &str, id: &str) -> Option<CachedState> {
        let mut entries = self.entries.as_ref()?.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (aggregate_type.to_owned(), id.to_owned());
        let entry = entries.get(&key)?;
        if !Weak::ptr_eq(&entry.logic, &Arc::downgrade(logic)) {
            // Written by a plugin that has since been replaced: its state may not load in this one.
            entries.pop(&key);
            return None;
        }
        Some(entry.state.clone())
    }

    /// Remember the state of a stream at `state.version`, with the events appended after it.
    pub fn put(&self, logic: &Arc<dyn AggregateLogic>, aggregate_type: &str, id: &str, state: CachedState) {
        let Some(entries) = &self.entries else { return };
        let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (aggregate_type.to_owned(), id.to_owned());
        if state.state.len() > MAX_STATE_BYTES {
            entries.pop(&key);
            return;
        }
        entries.put(key, Entry { logic: Arc::downgrade(logic), state });
    }

    /// Forget a stream: the next command on it reads the store.
    pub fn forget(&self, aggregate_type: &str, id: &str) {
        let Some(entries) = &self.entries else { return };
        let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.pop(&(aggregate_type.to_owned(), id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{AggregateManifest, CommandInput, Decision};
    use crate::event_store::StoredEvent;
    use crate::plugin::PluginFault;

    struct Logic(AggregateManifest);

    impl AggregateLogic for Logic {
        fn manifest(&self) -> &AggregateManifest {
            &self.0
        }
        fn execute(&self, _: Option<&[u8]>, _: &[StoredEvent], _: &CommandInput) -> Result<Decision, PluginFault> {
            Ok(Decision { state: None, verdict: Ok(Vec::new()), after: None })
        }
        fn render(&self, _: &[StoredEvent]) -> Result<String, PluginFault> {
            Ok("{}".into())
        }
    }

    fn at(version: u64, state: &[u8]) -> CachedState {
        CachedState::at(version, Arc::from(state))
    }

    fn logic() -> Arc<dyn AggregateLogic> {
        Arc::new(Logic(AggregateManifest {
            aggregate_type: "Thing".into(),
            commands: Vec::new(),
            events: Vec::new(),
            routes: Vec::new(),
            topic: "Things".into(),
            schemas: None,
        }))
    }

    #[test]
    fn a_state_is_found_by_its_stream_and_the_plugin_that_made_it() {
        let cache = StateCache::new(10);
        let (old, new) = (logic(), logic());
        cache.put(&old, "Thing", "a", at(3, b"state"));
        let found = cache.get(&old, "Thing", "a").expect("kept");
        assert_eq!((found.version, &*found.state), (3, &b"state"[..]));
        assert!(cache.get(&old, "Thing", "b").is_none());
        assert!(cache.get(&old, "Other", "a").is_none());
        // The plugin was replaced: its successor starts from the events.
        assert!(cache.get(&new, "Thing", "a").is_none());
        assert!(cache.get(&old, "Thing", "a").is_none(), "a stale entry is dropped when met");
    }

    #[test]
    fn the_cache_is_bounded_and_can_be_turned_off() {
        let cache = StateCache::new(2);
        let logic = logic();
        for id in ["a", "b", "c"] {
            cache.put(&logic, "Thing", id, at(1, b"s"));
        }
        assert!(cache.get(&logic, "Thing", "a").is_none(), "least recently used goes first");
        assert!(cache.get(&logic, "Thing", "c").is_some());
        cache.put(&logic, "Thing", "c", at(2, &vec![0; MAX_STATE_BYTES + 1]));
        assert!(cache.get(&logic, "Thing", "c").is_none(), "an oversized state replaces nothing stale");

        let off = StateCache::new(0);
        off.put(&logic, "Thing", "a", at(1, b"s"));
        assert!(off.get(&logic, "Thing", "a").is_none());
    }
}
