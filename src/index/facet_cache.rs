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
//! Bounded: at most [`MAX_TERMS`] terms in all; past it the cache starts over.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tantivy::index::SegmentId;

use super::search::Facets;

/// Most terms kept in all the kept counts (about 50 bytes each).
pub const MAX_TERMS: usize = 256 * 1024;

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
    terms: usize,
}

fn terms_of(facets: &Facets) -> usize {
    facets.iter().map(|(_, counts)| counts.len().max(1)).sum()
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
        let terms = terms_of(&facets);
        if terms > MAX_TERMS {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = state.kept.remove(&key) {
            state.terms = state.terms.saturating_sub(terms_of(&old.facets));
        }
        if state.terms.saturating_add(terms) > MAX_TERMS {
            state.kept.clear();
            state.terms = 0;
        }
        // Counts of segments no longer searched are never asked for again.
        if state.kept.keys().any(|kept| kept.segments != key.segments) {
            state.kept.retain(|kept, _| kept.segments == key.segments);
            state.terms = state.kept.values().map(|kept| terms_of(&kept.facets)).sum();
        }
        state.terms += terms;
        state.kept.insert(
            key,
            Kept {
                facets,
                valid_until,
            },
        );
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
    fn counts_of_other_segments_are_dropped_and_the_terms_bounded() {
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
        cache.insert(key(new, "huge"), facets(MAX_TERMS + 1), None);
        assert!(cache.get(&key(new, "huge"), 0).is_none());
        for request in ["x", "y", "z"] {
            cache.insert(key(new, request), facets(MAX_TERMS / 2 + 1), None);
        }
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key(new, "z"), 0).is_some());
    }
}
