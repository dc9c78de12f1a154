//! One small TTL cache for records other replicas may change (accounts, groups, API keys,
//! revoked tokens, permission profiles): an entry is trusted for a fixed time, and an
//! invalidation wins over a load that raced it.
//!
//! The race it closes: a reader misses, loads from storage, and meanwhile a writer stores a
//! new value and invalidates; if the reader then cached what it loaded, the old value would
//! live on for a whole TTL. So [`TtlCache::get`] answers the cache's generation with the
//! value, every invalidation bumps it, and [`TtlCache::insert`] drops a value loaded under an
//! older generation. Imports nothing of Trove's.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many entries the cache holds before it drops expired ones on the next insert.
const TRIM_ABOVE: usize = 10_000;

/// The invalidation generation a value was loaded under (from [`TtlCache::get`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Debug)]
struct Entries<V> {
    generation: u64,
    values: HashMap<String, (Instant, V)>,
}

/// A map of string keys to values trusted for `ttl` after they were loaded.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<Entries<V>>,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache whose entries are trusted for `ttl` (`Duration::ZERO` caches nothing).
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(Entries {
                generation: 0,
                values: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        // A panic elsewhere while holding the lock leaves a usable map: recover it.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fresh cached value of `key`, if any, and the generation to insert a loaded value
    /// with.
    pub fn get(&self, key: &str) -> (Option<V>, Generation) {
        let entries = self.lock();
        let value = entries
            .values
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone());
        (value, Generation(entries.generation))
    }

    /// Caches `value`, loaded under `generation`, unless an invalidation happened since.
    pub fn insert(&self, key: impl Into<String>, value: V, generation: Generation) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.generation != generation.0 {
            return;
        }
        if entries.values.len() > TRIM_ABOVE {
            let ttl = self.ttl;
            entries.values.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.values.insert(key.into(), (Instant::now(), value));
    }

    /// Forgets `key`; loads that started before are not cached.
    pub fn invalidate(&self, key: &str) {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        entries.values.remove(key);
    }

    /// Forgets every entry; loads that started before are not cached.
    pub fn invalidate_all(&self) {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        entries.values.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_cached() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let (missing, generation) = cache.get("alice");
        assert_eq!(missing, None::<u32>);
        cache.invalidate("alice");
        cache.insert("alice", 1, generation);
        assert_eq!(cache.get("alice").0, None);
        let (_, generation) = cache.get("alice");
        cache.insert("alice", 2, generation);
        assert_eq!(cache.get("alice").0, Some(2));
    }

    #[test]
    fn invalidate_all_forgets_every_entry() {
        let cache = TtlCache::new(Duration::from_secs(60));
        let (_, generation) = cache.get("a");
        cache.insert("a", 1, generation);
        cache.insert("b", 2, generation);
        cache.invalidate_all();
        assert_eq!((cache.get("a").0, cache.get("b").0), (None, None));
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = TtlCache::new(Duration::ZERO);
        let (_, generation) = cache.get("a");
        cache.insert("a", 1, generation);
        assert_eq!(cache.get("a").0, None);
    }
}
