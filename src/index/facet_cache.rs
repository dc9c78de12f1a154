//! Term counts answered again while nothing they depend on changed (Elasticsearch's shard
//! request cache does the same for aggregations).
//!
//! A count of [`search::facets`](super::search::facets) depends on the index's contents —
//! named here by its segments and their deletes, which change with every commit that changes
//! a document —, on the documents the caller's access filter admits (two filters with the same
//! [`cache_key`](crate::permissions::SearchFilter::cache_key) admit the same ones), on the
//! request, and on time only through grants that expire: a document counted because a grant
//! still held stops being counted once it expires. So a count is kept with the segments it
//! was taken on and the first grant expiry among the documents it counted, and answered again
//! for the same filter and request while both hold. A count that re-checked documents whose
//! grants had expired (their stored access data, judged by the caller's whole scope) is never
//! kept.
//!
//! Bounded: at most [`MAX_BYTES`] in all, keys (whose query may be long) and terms counted;
//! past it the cache starts over.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tantivy::index::SegmentId;

use super::search::Facets;

/// Most bytes of keys and counts kept in all.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// What a kept term and its count are counted as, beside the term's own bytes.
const TERM_BYTES: usize = 48;
/// What a kept entry is counted as, beside its key's and terms' bytes.
const ENTRY_BYTES: usize = 128;

/// What a count is kept under: the index's state, the filter and the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FacetKey {
    /// The searcher's segments and the delete stamp of each.
    pub segments: Vec<(SegmentId, Option<u64>)>,
    /// The access filter's canonical text.
    pub filter: String,
    /// Everything of the request the count depends on (query, restrictions, fields, size),
    /// written out unambiguously.
    pub request: String,
}

impl FacetKey {
    /// The segments of `searcher`, as a key names them.
    #[must_use]
    pub fn segments_of(searcher: &tantivy::Searcher) -> Vec<(SegmentId, Option<u64>)> {
        searcher
            .segment_readers()
            .iter()
            .map(|reader| (reader.segment_id(), reader.delete_opstamp()))
            .collect()
    }
}

/// A kept count and until when it holds.
#[derive(Debug, Clone)]
struct Kept {
    facets: Facets,
    /// Unix seconds of the first grant expiry among the counted documents; `None` when none
    /// of them has one.
    valid_until: Option<u64>,
}

/// The kept counts.
#[derive(Debug, Default)]
pub struct FacetCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    kept: HashMap<FacetKey, Kept>,
    bytes: usize,
}

/// What an entry is counted as against [`MAX_BYTES`].
fn weight(key: &FacetKey, facets: &Facets) -> usize {
    let terms: usize = facets
        .iter()
        .map(|(name, counts)| {
            name.len()
                + counts
                    .iter()
                    .map(|(term, _)| term.len() + TERM_BYTES)
                    .sum::<usize>()
        })
        .sum();
    ENTRY_BYTES + key.segments.len() * 32 + key.filter.len() + key.request.len() + terms
}

impl FacetCache {
    /// The count kept under `key`, if it still holds at `now` (unix seconds).
    #[must_use]
    pub fn get(&self, key: &FacetKey, now: u64) -> Option<Facets> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = state.kept.get(key)?;
        kept.valid_until
            .is_none_or(|until| now < until)
            .then(|| kept.facets.clone())
    }

    /// Keeps `facets` under `key`, holding until `valid_until` (unix seconds) if given.
    pub fn insert(&self, key: FacetKey, facets: Facets, valid_until: Option<u64>) {
        let size = weight(&key, &facets);
        if size > MAX_BYTES {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = state.kept.remove(&key) {
            state.bytes = state.bytes.saturating_sub(weight(&key, &old.facets));
        }
        // Counts of segments no longer searched are never asked for again.
        if state.kept.keys().any(|kept| kept.segments != key.segments) {
            state.kept.retain(|kept, _| kept.segments == key.segments);
            state.bytes = state
                .kept
                .iter()
                .map(|(kept, entry)| weight(kept, &entry.facets))
                .sum();
        }
        if state.bytes.saturating_add(size) > MAX_BYTES {
            state.kept.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        state.kept.insert(
            key,
            Kept {
                facets,
                valid_until,
            },
        );
    }

    /// Bytes counted against [`MAX_BYTES`].
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// Counts kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kept
            .len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(segment: SegmentId, request: &str) -> FacetKey {
        FacetKey {
            segments: vec![(segment, None)],
            filter: "f".to_owned(),
            request: request.to_owned(),
        }
    }

    fn facets(terms: usize) -> Facets {
        vec![(
            "_extra.type".to_owned(),
            (0..terms).map(|term| (term.to_string(), 1)).collect(),
        )]
    }

    #[test]
    fn counts_of_other_segments_are_dropped_and_the_bytes_bounded() {
        let cache = FacetCache::default();
        let (old, new) = (SegmentId::generate_random(), SegmentId::generate_random());
        cache.insert(key(old, "a"), facets(2), None);
        cache.insert(key(old, "b"), facets(2), Some(100));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(old, "b"), 99).unwrap(), facets(2));
        assert!(cache.get(&key(old, "b"), 100).is_none());
        // A count of other segments: the index changed, the old counts go.
        cache.insert(key(new, "a"), facets(1), None);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(old, "a"), 0).is_none());
        // One count above the bound is not kept; counts that pass it together start over.
        cache.insert(key(new, "huge"), facets(MAX_BYTES / TERM_BYTES), None);
        assert!(cache.get(&key(new, "huge"), 0).is_none());
        let half = MAX_BYTES / 2 / (TERM_BYTES + 6);
        for request in ["x", "y", "z"] {
            cache.insert(key(new, request), facets(half), None);
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(new, "z"), 0).is_some());
        // Long keys count: many counts of long queries stay within the bound.
        let long = "q".repeat(8 * 1024);
        for request in 0..4_000 {
            cache.insert(key(new, &format!("{long}{request}")), facets(1), None);
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert!(cache.len() < 4_000);
    }
}
