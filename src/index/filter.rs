//! The access filter of every search: a query clause that admits only the documents the
//! caller may read, ANDed with the user's query as a query object (never by string
//! concatenation, so no query text can widen it).
//!
//! Each document carries in the `readers` field the tokens of the principals allowed to read
//! it (see `permissions::search`), and its effective state in `state`. The filter is a
//! conjunction of disjunctions of tokens ("any of these principals, and — for a machine key —
//! also any of its creator's"), excluding `disabled` documents. tantivy has no filter cache, so
//! this module keeps one: per segment and per canonical token set, the allowed documents as a
//! bitset, built once from the postings and reused by every later search of the same identity
//! set (segments are immutable; deletions are applied by tantivy's collectors on top).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tantivy::index::SegmentId;
use tantivy::query::{ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{BitSet, DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

pub use crate::permissions::SearchFilter;

/// The value of the `state` field of disabled documents.
pub const DISABLED_STATE: &str = "disabled";

/// Cache of allowed-document bitsets per (segment, filter), bounded in bytes.
pub struct AllowSetCache {
    entries: Mutex<CacheState>,
    budget_bytes: usize,
}

#[derive(Default)]
struct CacheState {
    map: HashMap<(SegmentId, Arc<str>), Arc<BitSet>>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl fmt::Debug for AllowSetCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (entries, bytes) = self
            .entries
            .lock()
            .map(|state| (state.map.len(), state.bytes))
            .unwrap_or_default();
        f.debug_struct("AllowSetCache")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .field("budget_bytes", &self.budget_bytes)
            .finish()
    }
}

impl AllowSetCache {
    /// A cache holding at most about `budget_bytes` of bitsets.
    #[must_use]
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(CacheState::default()),
            budget_bytes,
        }
    }

    /// (hits, misses) since start, for metrics and benchmarks.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        self.entries
            .lock()
            .map(|state| (state.hits, state.misses))
            .unwrap_or_default()
    }

    fn get(&self, segment: SegmentId, key: &Arc<str>) -> Option<Arc<BitSet>> {
        let mut state = self.entries.lock().ok()?;
        let found = state.map.get(&(segment, key.clone())).cloned();
        if found.is_some() {
            state.hits += 1;
        } else {
            state.misses += 1;
        }
        found
    }

    fn insert(&self, segment: SegmentId, key: Arc<str>, bitset: Arc<BitSet>) {
        let Ok(mut state) = self.entries.lock() else {
            return;
        };
        let size = bitset_bytes(&bitset) + key.len() + 64;
        if state.bytes + size > self.budget_bytes {
            // Simple and predictable: start over rather than track recency. Entries of merged
            // segments go away here too.
            state.map.clear();
            state.bytes = 0;
        }
        if state.map.insert((segment, key), bitset).is_none() {
            state.bytes += size;
        }
    }
}

fn bitset_bytes(bitset: &BitSet) -> usize {
    (bitset.max_value() as usize).div_ceil(64) * 8
}

/// Builds the allowed set of one segment.
fn build_allow_set(
    reader: &SegmentReader,
    filter: &SearchFilter,
    readers_field: Field,
    state_field: Field,
) -> tantivy::Result<BitSet> {
    let max_doc = reader.max_doc();
    let mut allowed = if filter.required_token_sets.is_empty() {
        BitSet::with_max_value_and_full(max_doc)
    } else {
        let readers_index = reader.inverted_index(readers_field)?;
        let mut result: Option<BitSet> = None;
        for set in &filter.required_token_sets {
            let mut union = BitSet::with_max_value(max_doc);
            for token in set.iter() {
                let term = Term::from_field_text(readers_field, token);
                if let Some(mut postings) =
                    readers_index.read_postings(&term, IndexRecordOption::Basic)?
                {
                    let mut doc = postings.doc();
                    while doc != TERMINATED {
                        union.insert(doc);
                        doc = postings.advance();
                    }
                }
            }
            result = Some(match result {
                None => union,
                Some(mut acc) => {
                    intersect_in_place(&mut acc, &union, max_doc);
                    acc
                }
            });
        }
        result.unwrap_or_else(|| BitSet::with_max_value(max_doc))
    };
    if filter.exclude_disabled {
        let state_index = reader.inverted_index(state_field)?;
        let term = Term::from_field_text(state_field, DISABLED_STATE);
        if let Some(mut postings) = state_index.read_postings(&term, IndexRecordOption::Basic)? {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                allowed.remove(doc);
                doc = postings.advance();
            }
        }
    }
    Ok(allowed)
}

fn intersect_in_place(acc: &mut BitSet, other: &BitSet, max_doc: DocId) {
    for doc in 0..max_doc {
        if acc.contains(doc) && !other.contains(doc) {
            acc.remove(doc);
        }
    }
}

/// A [`DocSet`] over a cached, shared bitset: what tantivy's `BitSetDocSet` does, without
/// owning (so without copying, per segment and per query) the bitset.
struct SharedBitSetDocSet {
    docs: Arc<BitSet>,
    /// Index of the current 64-document bucket.
    bucket: u32,
    /// The documents of the current bucket not yet visited (bit i = document bucket·64 + i).
    remaining: u64,
    doc: DocId,
    len: u32,
}

impl SharedBitSetDocSet {
    fn new(docs: Arc<BitSet>) -> Self {
        let len = u32::try_from(docs.len()).unwrap_or(u32::MAX);
        if docs.max_value() == 0 {
            return Self {
                docs,
                bucket: 0,
                remaining: 0,
                doc: TERMINATED,
                len,
            };
        }
        let remaining = bucket_bits(&docs, 0);
        let mut docset = Self {
            docs,
            bucket: 0,
            remaining,
            doc: 0,
            len,
        };
        docset.advance();
        docset
    }
}

/// The 64 bits of one bucket of `bitset`.
fn bucket_bits(bitset: &BitSet, bucket: u32) -> u64 {
    u64::from_le_bytes(bitset.tinyset(bucket).into_bytes())
}

impl DocSet for SharedBitSetDocSet {
    #[inline]
    fn advance(&mut self) -> DocId {
        if self.remaining == 0 {
            let next = if self.doc == TERMINATED {
                None
            } else {
                self.docs.first_non_empty_bucket(self.bucket + 1)
            };
            let Some(bucket) = next else {
                self.doc = TERMINATED;
                return TERMINATED;
            };
            self.bucket = bucket;
            self.remaining = bucket_bits(&self.docs, bucket);
        }
        let lowest = self.remaining.trailing_zeros();
        self.remaining &= self.remaining - 1;
        self.doc = self.bucket * 64 + lowest;
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if target >= self.docs.max_value() {
            self.doc = TERMINATED;
            self.remaining = 0;
            return TERMINATED;
        }
        if self.doc >= target {
            return self.doc;
        }
        let bucket = target / 64;
        if bucket > self.bucket {
            self.bucket = bucket;
            self.remaining = bucket_bits(&self.docs, bucket);
        }
        // Drop the documents of the current bucket below the target.
        self.remaining &= !0_u64 << (target % 64);
        self.advance()
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.len
    }
}

/// The query clause that admits only allowed documents (constant score 0, so it never
/// changes the ranking of the user's query).
#[derive(Clone)]
pub struct AllowQuery {
    filter: Arc<SearchFilter>,
    key: Arc<str>,
    cache: Arc<AllowSetCache>,
    readers_field: Field,
    state_field: Field,
    /// The one term (a document kind) the allowed documents must also hold, folded into the
    /// cached set: one bitset to seek instead of a bitset and a postings list.
    also: Option<Term>,
}

impl fmt::Debug for AllowQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowQuery")
            .field("filter", &self.filter)
            .finish_non_exhaustive()
    }
}

impl AllowQuery {
    /// The clause for `filter` over the `readers` and `state` fields.
    #[must_use]
    pub fn new(
        filter: SearchFilter,
        cache: Arc<AllowSetCache>,
        readers_field: Field,
        state_field: Field,
    ) -> Self {
        let key: Arc<str> = Arc::from(filter.cache_key());
        Self {
            filter: Arc::new(filter),
            key,
            cache,
            readers_field,
            state_field,
            also: None,
        }
    }

    /// This clause admitting only the allowed documents that also hold `term` (their kind):
    /// the allowed set of each segment intersected with `term`'s postings once, cached under
    /// its own key beside the plain allowed set it is made from.
    #[must_use]
    pub fn and_term(&self, term: Term) -> Self {
        let text = term.value().as_str().unwrap_or_default().to_owned();
        Self {
            key: Arc::from(format!(
                "{}\u{0}and {}={text}",
                self.key,
                term.field().field_id()
            )),
            also: Some(term),
            ..self.clone()
        }
    }

    /// The access filter this clause applies.
    #[must_use]
    pub fn filter(&self) -> &SearchFilter {
        &self.filter
    }

    /// The allowed set of a segment, from the cache or built and cached.
    pub fn allow_set(&self, reader: &SegmentReader) -> tantivy::Result<Arc<BitSet>> {
        let segment = reader.segment_id();
        if let Some(bitset) = self.cache.get(segment, &self.key) {
            return Ok(bitset);
        }
        let bitset = match &self.also {
            None => build_allow_set(reader, &self.filter, self.readers_field, self.state_field)?,
            Some(term) => {
                let plain = Self {
                    also: None,
                    key: Arc::from(self.filter.cache_key()),
                    ..self.clone()
                };
                let allowed = plain.allow_set(reader)?;
                let mut both = BitSet::with_max_value(reader.max_doc());
                if let Some(mut postings) = reader
                    .inverted_index(term.field())?
                    .read_postings(term, IndexRecordOption::Basic)?
                {
                    let mut doc = postings.doc();
                    while doc != TERMINATED {
                        if allowed.contains(doc) {
                            both.insert(doc);
                        }
                        doc = postings.advance();
                    }
                }
                both
            }
        };
        let bitset = Arc::new(bitset);
        self.cache.insert(segment, self.key.clone(), bitset.clone());
        Ok(bitset)
    }
}

impl Query for AllowQuery {
    fn weight(&self, _enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(AllowWeight {
            query: self.clone(),
        }))
    }
}

struct AllowWeight {
    query: AllowQuery,
}

impl Weight for AllowWeight {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let bitset = self.query.allow_set(reader)?;
        Ok(Box::new(ConstScorer::new(
            SharedBitSetDocSet::new(bitset),
            0.0,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.query.allow_set(reader)?.contains(doc) {
            Ok(Explanation::new("allowed by the access filter", 0.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(
                "document not allowed by the access filter".to_owned(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitset(max: DocId, docs: &[DocId]) -> Arc<BitSet> {
        let mut bitset = BitSet::with_max_value(max);
        for doc in docs {
            bitset.insert(*doc);
        }
        Arc::new(bitset)
    }

    fn collect(mut docset: SharedBitSetDocSet) -> Vec<DocId> {
        let mut out = Vec::new();
        while docset.doc() != TERMINATED {
            out.push(docset.doc());
            docset.advance();
        }
        out
    }

    #[test]
    fn shared_bitset_docset_iterates_every_document_in_order() {
        let docs = [0, 1, 63, 64, 65, 127, 128, 500, 999];
        let docset = SharedBitSetDocSet::new(bitset(1000, &docs));
        assert_eq!(docset.size_hint(), 9);
        assert_eq!(collect(docset), docs);
        assert!(collect(SharedBitSetDocSet::new(bitset(1000, &[]))).is_empty());
        assert!(collect(SharedBitSetDocSet::new(bitset(0, &[]))).is_empty());
        assert_eq!(collect(SharedBitSetDocSet::new(bitset(64, &[63]))), [63]);
    }

    #[test]
    fn shared_bitset_docset_seeks_like_a_sorted_set() {
        let docs: Vec<DocId> = (0..3000)
            .filter(|doc| doc % 7 == 3 || doc % 61 == 0)
            .collect();
        let shared = bitset(3000, &docs);
        for start in [0_u32, 1, 3, 64, 100, 2990] {
            let mut docset = SharedBitSetDocSet::new(shared.clone());
            let mut target = start;
            while target < 3100 {
                let current = docset.doc();
                // Seeking never goes back: at or past the target, the current document stays.
                let expected = if current >= target {
                    current
                } else {
                    docs.iter()
                        .copied()
                        .find(|doc| *doc >= target)
                        .unwrap_or(TERMINATED)
                };
                let got = docset.seek(target);
                assert_eq!(got, expected, "seek {target} from {current}");
                assert_eq!(docset.doc(), got);
                if got == TERMINATED {
                    break;
                }
                target = got + (target % 13) + 1;
            }
        }
    }

    #[test]
    fn cache_key_is_canonical_and_distinguishes_groupings() {
        let filter = |sets: &[&[&str]]| SearchFilter {
            exclude_disabled: true,
            required_token_sets: sets
                .iter()
                .map(|set| Arc::new(set.iter().map(|token| (*token).to_owned()).collect()))
                .collect(),
        };
        let a = filter(&[&["b", "a", "a"]]);
        let b = filter(&[&["a", "b"]]);
        assert_eq!(a.cache_key(), b.cache_key());
        let split = filter(&[&["a"], &["b"]]);
        assert_ne!(a.cache_key(), split.cache_key(), "a∨b differs from a∧b");
        assert_eq!(
            filter(&[&["b"], &["a"], &["a"]]).cache_key(),
            filter(&[&["a"], &["b"]]).cache_key()
        );
        assert_ne!(
            SearchFilter::default().cache_key(),
            filter(&[]).cache_key(),
            "unrestricted differs from not-disabled"
        );
        let with_disabled = SearchFilter {
            exclude_disabled: false,
            ..a.clone()
        };
        assert_ne!(a.cache_key(), with_disabled.cache_key());
    }
}
