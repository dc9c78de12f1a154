//! The strings behind string-column ordinals, kept by (segment id, column, ordinal).
//!
//! Listings and the ranking's tie-breaks read a project id, a version or a path from a fast
//! string column as an ordinal and then need its string: a lookup in the column's dictionary,
//! which decompresses a whole block for a handful of names — a fifth of
//! `GET /projects/{p}/versions` and of a relevance search's handler. A segment never changes
//! (a merge writes a new segment id), so an ordinal of a column of a segment always names the
//! same string: entries are never stale. At most [`MAX_NAMES`] kept; past it the map starts
//! over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;

/// Most names kept (about 100 bytes each with the key).
pub const MAX_NAMES: usize = 200_000;

/// A kept name's key: the segment, the column's field name, the ordinal.
type Key = (SegmentId, &'static str, u64);

/// Kept names.
#[derive(Default)]
pub struct OrdNames {
    names: Mutex<HashMap<Key, Arc<str>>>,
}

impl std::fmt::Debug for OrdNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdNames")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl OrdNames {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<str>>> {
        // Nothing is left half-updated while the lock is held: a poisoned map is usable.
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The strings of `ords` in `column`, the fast column `field` of segment `segment`: kept
    /// ones from the map, the others decoded in one sorted pass over the dictionary (outside
    /// the lock) and kept. An ordinal the dictionary cannot name is absent from the answer.
    pub fn names(
        &self,
        segment: SegmentId,
        field: &'static str,
        column: &StrColumn,
        ords: impl IntoIterator<Item = u64>,
    ) -> HashMap<u64, Arc<str>> {
        let mut answer = HashMap::new();
        let mut missing = Vec::new();
        {
            let kept = self.lock();
            for ord in ords {
                if answer.contains_key(&ord) {
                    continue;
                }
                match kept.get(&(segment, field, ord)) {
                    Some(name) => {
                        answer.insert(ord, name.clone());
                    }
                    None => missing.push(ord),
                }
            }
        }
        if missing.is_empty() {
            return answer;
        }
        missing.sort_unstable();
        missing.dedup();
        let mut decoded: Vec<Arc<str>> = Vec::with_capacity(missing.len());
        let read = column
            .dictionary()
            .sorted_ords_to_term_cb(&missing, |bytes| {
                decoded.push(Arc::from(String::from_utf8_lossy(bytes)));
            });
        if read.is_err() || decoded.len() != missing.len() {
            // A dictionary that cannot be read names nothing (callers skip unnamed keys).
            return answer;
        }
        let mut kept = self.lock();
        if kept.len() + missing.len() > MAX_NAMES {
            kept.clear();
        }
        for (ord, name) in missing.into_iter().zip(decoded) {
            kept.insert((segment, field, ord), name.clone());
            answer.insert(ord, name);
        }
        answer
    }
}
