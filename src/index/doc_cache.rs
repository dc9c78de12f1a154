//! The stored documents of search answers as read and parsed: the source (with
//! `_extra.permissions` put back) and the access data, cached by (segment, document id) and
//! bounded in bytes, like Solr's document cache.
//!
//! A listing page reads the stored documents of its hits: each read decompresses a store
//! block, deserializes the tantivy document and parses two or three JSON fields; on
//! `GET /projects?size=50` that was a sixth of the route's CPU, for the same documents on
//! every request. A segment never changes once written (deletes are a bitset beside it, and a
//! merge writes a new segment with a new id), so a (segment id, document id) pair names the
//! same bytes for as long as it exists: an entry is never stale, and entries of merged-away
//! segments only wait to be dropped. What the cache answers is what the store holds, so the
//! access re-check at the time of use runs on it unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tantivy::index::SegmentId;
use tantivy::schema::Value as _;
use tantivy::{DocAddress, DocId, Searcher, TantivyDocument};

use super::IndexFields;
use crate::permissions::DocumentAccess;

/// One stored document as parsed.
#[derive(Debug)]
pub struct StoredDocument {
    /// The stored source with `_extra.permissions` put back (`Null` when unreadable).
    pub source: Value,
    /// Its access data (empty, so matching nobody, when unreadable).
    pub access: Arc<DocumentAccess>,
}

/// Parsed stored documents by (segment, document), at most about `budget_bytes` of them.
pub struct DocumentCache {
    state: Mutex<State>,
    budget_bytes: usize,
}

#[derive(Default)]
struct State {
    map: HashMap<(SegmentId, DocId), Arc<StoredDocument>>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for DocumentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("DocumentCache")
            .field("entries", &state.map.len())
            .field("bytes", &state.bytes)
            .field("budget_bytes", &self.budget_bytes)
            .finish()
    }
}

/// What a parsed document is taken to cost beside its stored bytes: the map entry, the
/// `Arc`, and the JSON tree's nodes (measured: a parsed tree takes 2–4× its text).
const ENTRY_OVERHEAD: usize = 256;
/// Parsed size per stored byte.
const PARSED_PER_STORED_BYTE: usize = 4;

impl DocumentCache {
    /// An empty cache holding at most about `budget_bytes` of parsed documents (0 caches
    /// nothing).
    #[must_use]
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            budget_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing is left half-updated while the lock is held: a poisoned map is usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (hits, misses, entries) since start, for metrics, benchmarks and tests.
    #[must_use]
    pub fn stats(&self) -> (u64, u64, usize) {
        let state = self.lock();
        (state.hits, state.misses, state.map.len())
    }

    /// The document at `address` of `searcher`, parsed: from the cache, or read from the
    /// store (outside the lock) and kept.
    pub fn get(
        &self,
        searcher: &Searcher,
        fields: &IndexFields,
        address: DocAddress,
    ) -> tantivy::Result<Arc<StoredDocument>> {
        let segment = searcher.segment_reader(address.segment_ord).segment_id();
        let key = (segment, address.doc_id);
        {
            let mut state = self.lock();
            if let Some(found) = state.map.get(&key).cloned() {
                state.hits += 1;
                return Ok(found);
            }
            state.misses += 1;
        }
        let document: TantivyDocument = searcher.doc(address)?;
        let (parsed, stored_bytes) = parse(&document, fields);
        let parsed = Arc::new(parsed);
        let size = stored_bytes * PARSED_PER_STORED_BYTE + ENTRY_OVERHEAD;
        if size <= self.budget_bytes / 8 {
            let mut state = self.lock();
            if state.bytes + size > self.budget_bytes {
                // As the allowed-set cache: start over rather than track recency (entries of
                // merged segments go away here too).
                state.map.clear();
                state.bytes = 0;
            }
            if state.map.insert(key, parsed.clone()).is_none() {
                state.bytes += size;
            }
        }
        Ok(parsed)
    }
}

/// The bytes of a stored JSON field (empty when absent).
fn stored_bytes(document: &TantivyDocument, field: tantivy::schema::Field) -> &[u8] {
    document
        .get_first(field)
        .and_then(|value| value.as_bytes())
        .unwrap_or_default()
}

/// A stored document parsed, and how many stored bytes it had.
fn parse(document: &TantivyDocument, fields: &IndexFields) -> (StoredDocument, usize) {
    let source_bytes = stored_bytes(document, fields.source);
    let permissions_bytes = stored_bytes(document, fields.permissions);
    let access_bytes = stored_bytes(document, fields.access);
    let mut source: Value = serde_json::from_slice(source_bytes).unwrap_or(Value::Null);
    if let Ok(permissions) = serde_json::from_slice::<Value>(permissions_bytes)
        && let Some(extra) = source.get_mut("_extra").and_then(Value::as_object_mut)
    {
        extra.insert("permissions".to_owned(), permissions);
    }
    let access: DocumentAccess = serde_json::from_slice(access_bytes).unwrap_or_default();
    let size = source_bytes.len() + permissions_bytes.len() + access_bytes.len();
    (
        StoredDocument {
            source,
            access: Arc::new(access),
        },
        size,
    )
}
