//! Answers of index reads given again while nothing they depend on changed (Elasticsearch's
//! shard request cache does the same for aggregations): term counts
//! ([`search::facets`](super::search::facets)) and the readable versions of projects
//! ([`search::readable_versions`](super::search::readable_versions)).
//!
//! Such an answer depends on the index's contents — named here by its segments and their
//! deletes, which change with every commit that changes a document —, on the documents the
//! caller's access filter admits (two filters with the same
//! [`cache_key`](crate::permissions::SearchFilter::cache_key) admit the same ones), on the
//! request, and on time only through grants that expire: a document counted because a grant
//! still held stops being counted once it expires. So an answer is kept with the segments it
//! was taken on and the first grant expiry among the documents it counted, and given again
//! for the same filter and request while both hold. An answer that re-checked documents whose
//! grants had expired (their stored access data, judged by the caller's whole scope) is never
//! kept.
//!
//! Bounded: at most the cache's byte budget in all, keys (whose query may be long) and
//! answers; past it the cache starts over.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tantivy::index::SegmentId;

use super::search::{Facets, ReadableVersions};

/// Most bytes of keys and term counts kept in all.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes of keys and readable versions kept in all.
pub const VERSIONS_MAX_BYTES: usize = 8 * 1024 * 1024;
/// What a kept string (a term and its count, a version) is counted as, beside its bytes.
const TERM_BYTES: usize = 48;
/// What a kept entry is counted as, beside its key's and answer's bytes.
const ENTRY_BYTES: usize = 128;

/// The bytes an answer is counted as against a cache's budget.
pub trait Weight {
    /// Bytes of the answer (its strings, and what holds them).
    fn weight(&self) -> usize;
}

impl Weight for Facets {
    fn weight(&self) -> usize {
        self.iter()
            .map(|(name, counts)| {
                name.len()
                    + counts
                        .iter()
                        .map(|(term, _)| term.len() + TERM_BYTES)
                        .sum::<usize>()
            })
            .sum()
    }
}

impl Weight for std::collections::HashMap<String, ReadableVersions> {
    fn weight(&self) -> usize {
        self.iter()
            .map(|(project, readable)| {
                project.len()
                    + TERM_BYTES
                    + readable.latest.as_ref().map_or(0, String::len)
                    + readable
                        .versions
                        .iter()
                        .map(|version| version.len() + TERM_BYTES)
                        .sum::<usize>()
            })
            .sum()
    }
}

/// What an answer is kept under: the index's state, the filter and the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    /// The searcher's segments and the delete stamp of each.
    pub segments: Vec<(SegmentId, Option<u64>)>,
    /// The access filter's canonical text.
    pub filter: String,
    /// Everything of the request the answer depends on (for a count: query, restrictions,
    /// fields, size; for versions: the projects), written out unambiguously.
    pub request: String,
}

impl AnswerKey {
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

/// A kept answer and until when it holds.
#[derive(Debug, Clone)]
struct Kept<V> {
    answer: V,
    /// Unix seconds of the first grant expiry among the counted documents; `None` when none
    /// of them has one.
    valid_until: Option<u64>,
}

/// The kept answers of one kind, within a budget of bytes.
#[derive(Debug)]
pub struct AnswerCache<V> {
    state: Mutex<State<V>>,
    max_bytes: usize,
}

/// The kept term counts.
pub type FacetCache = AnswerCache<Facets>;
/// The kept readable versions, by project.
pub type VersionsCache = AnswerCache<std::collections::HashMap<String, ReadableVersions>>;

#[derive(Debug)]
struct State<V> {
    kept: HashMap<AnswerKey, Kept<V>>,
    bytes: usize,
}

/// What an entry is counted as against the budget.
fn weight<V: Weight>(key: &AnswerKey, answer: &V) -> usize {
    ENTRY_BYTES + key.segments.len() * 32 + key.filter.len() + key.request.len() + answer.weight()
}

impl<V: Weight + Clone> AnswerCache<V> {
    /// An empty cache keeping at most `max_bytes` of keys and answers.
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                kept: HashMap::new(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// The answer kept under `key`, if it still holds at `now` (unix seconds).
    #[must_use]
    pub fn get(&self, key: &AnswerKey, now: u64) -> Option<V> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = state.kept.get(key)?;
        kept.valid_until
            .is_none_or(|until| now < until)
            .then(|| kept.answer.clone())
    }

    /// Keeps `answer` under `key`, holding until `valid_until` (unix seconds) if given.
    pub fn insert(&self, key: AnswerKey, answer: V, valid_until: Option<u64>) {
        let size = weight(&key, &answer);
        if size > self.max_bytes {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = state.kept.remove(&key) {
            state.bytes = state.bytes.saturating_sub(weight(&key, &old.answer));
        }
        // Answers of segments no longer searched are never asked for again.
        if state.kept.keys().any(|kept| kept.segments != key.segments) {
            state.kept.retain(|kept, _| kept.segments == key.segments);
            state.bytes = state
                .kept
                .iter()
                .map(|(kept, entry)| weight(kept, &entry.answer))
                .sum();
        }
        if state.bytes.saturating_add(size) > self.max_bytes {
            state.kept.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        state.kept.insert(
            key,
            Kept {
                answer,
                valid_until,
            },
        );
    }

    /// Bytes counted against the budget.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// Answers kept.
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

    fn key(segment: SegmentId, request: &str) -> AnswerKey {
        AnswerKey {
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
        let cache = FacetCache::new(MAX_BYTES);
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
