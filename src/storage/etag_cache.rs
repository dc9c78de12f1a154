//! A bounded in-memory cache of parsed records keyed by storage key and validated by ETag.
//!
//! A listing of storage returns every object's ETag for free; a record whose listed ETag
//! equals the cached one has the cached content (local ETags are inode, modification time in
//! nanoseconds and size; S3 ETags are content digests), so a route that lists a version can
//! answer its files' sidecar records without reading each one again. A record that changed
//! has another ETag and is read afresh. When the cache is full it is emptied: simple,
//! bounded, and a full version page refills it with one pass.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Records by key, each with the ETag of the object it was parsed from.
#[derive(Debug)]
pub struct EtagCache<T> {
    entries: Mutex<HashMap<String, (String, Arc<T>)>>,
    capacity: usize,
}

impl<T> EtagCache<T> {
    /// A cache holding at most `capacity` records.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The record of `key` when it was cached from the object with ETag `etag`.
    #[must_use]
    pub fn get(&self, key: &str, etag: &str) -> Option<Arc<T>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(cached, _)| cached == etag)
            .map(|(_, record)| record.clone())
    }

    /// Caches the record parsed from `key` whose ETag was `etag`.
    pub fn insert(&self, key: String, etag: String, record: Arc<T>) {
        if self.capacity == 0 || etag.is_empty() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (etag, record));
    }

    /// Forgets `key` (its object was deleted).
    pub fn remove(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Records held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_answered_only_for_the_etag_it_was_read_with() {
        let cache = EtagCache::new(10);
        cache.insert("a".to_owned(), "e1".to_owned(), Arc::new(1));
        assert_eq!(cache.get("a", "e1").as_deref(), Some(&1));
        assert_eq!(cache.get("a", "e2"), None);
        assert_eq!(cache.get("b", "e1"), None);
        cache.insert("a".to_owned(), "e2".to_owned(), Arc::new(2));
        assert_eq!(cache.get("a", "e1"), None);
        assert_eq!(cache.get("a", "e2").as_deref(), Some(&2));
        cache.remove("a");
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_is_emptied_before_it_grows() {
        let cache = EtagCache::new(2);
        cache.insert("a".to_owned(), "e".to_owned(), Arc::new(1));
        cache.insert("b".to_owned(), "e".to_owned(), Arc::new(2));
        cache.insert("c".to_owned(), "e".to_owned(), Arc::new(3));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("c", "e").as_deref(), Some(&3));
        // An empty ETag identifies nothing: never cached.
        cache.insert("d".to_owned(), String::new(), Arc::new(4));
        assert_eq!(cache.get("d", ""), None);
    }
}
