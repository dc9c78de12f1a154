//! The fast columns of the readable-versions pass and of relevance ties, opened once per
//! segment.
//!
//! Opening a fast column looks its name up in the segment's columnar directory and reads
//! its header: done for four columns per segment per request, it was a third of that pass
//! in `GET /files/{id}/metadata` (whose `latest` runs it). A segment never changes, so its
//! opened columns stay valid; they hold the segment's file data, so a segment merged away is
//! dropped from here as soon as another segment is opened (its files can then be released).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tantivy::SegmentReader;
use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;

/// The columns a readable-versions pass reads from one segment.
#[derive(Clone)]
pub struct VersionColumns {
    /// `project_id`.
    pub project: StrColumn,
    /// `version`.
    pub version: StrColumn,
    /// `numerical_revision`.
    pub revision: Column<u64>,
    /// `grant_expiry`.
    pub expiry: Column<u64>,
}

impl VersionColumns {
    /// Opens the columns of `reader`.
    fn open(reader: &SegmentReader) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        let missing =
            |name: &str| tantivy::TantivyError::SchemaError(format!("{name} is not a fast field"));
        Ok(Self {
            project: fast
                .str("project_id")?
                .ok_or_else(|| missing("project_id"))?,
            version: fast.str("version")?.ok_or_else(|| missing("version"))?,
            revision: fast.u64("numerical_revision")?,
            expiry: fast.u64("grant_expiry")?,
        })
    }
}

/// The fast string columns equal relevance scores are ordered by, [`TIE_FIELDS`]; `None` where
/// the segment has no such column (no document of it has the field).
pub type TieColumns = [Option<StrColumn>; 3];

/// The fields of [`TieColumns`]: project, version, path.
pub const TIE_FIELDS: [&str; 3] = ["project_id", "version", "path"];

/// Opened columns, by segment.
#[derive(Default)]
pub struct SegmentColumns {
    kept: Mutex<HashMap<SegmentId, Arc<VersionColumns>>>,
    /// The columns every relevance-ordered search reads (opening them per request was half
    /// of a rare word's authorized search on a 1M index).
    ties: Mutex<HashMap<SegmentId, Arc<TieColumns>>>,
}

impl std::fmt::Debug for SegmentColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentColumns")
            .field("segments", &locked(&self.kept).len())
            .finish()
    }
}

/// The kept `T` of `reader`'s segment, or `open`ed now and kept — when opened, the segments not
/// in `live` (those of the searcher at hand) are forgotten.
fn kept_or_open<T>(
    map: &Mutex<HashMap<SegmentId, Arc<T>>>,
    reader: &SegmentReader,
    live: &[SegmentId],
    open: impl FnOnce(&SegmentReader) -> tantivy::Result<T>,
) -> tantivy::Result<Arc<T>> {
    let segment = reader.segment_id();
    if let Some(columns) = locked(map).get(&segment) {
        return Ok(columns.clone());
    }
    let columns = Arc::new(open(reader)?);
    let mut kept = locked(map);
    kept.retain(|id, _| live.contains(id));
    kept.insert(segment, columns.clone());
    Ok(columns)
}

/// `map` locked: an entry is inserted whole, so a poisoned map is usable.
fn locked<T>(map: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SegmentColumns {
    /// The columns of `reader`'s segment: kept ones, or opened now and kept — when opened,
    /// the segments not in `live` (those of the searcher at hand) are forgotten.
    pub fn versions(
        &self,
        reader: &SegmentReader,
        live: &[SegmentId],
    ) -> tantivy::Result<Arc<VersionColumns>> {
        kept_or_open(&self.kept, reader, live, VersionColumns::open)
    }

    /// The [`TieColumns`] of `reader`'s segment, kept as [`versions`](Self::versions) are.
    pub fn ties(
        &self,
        reader: &SegmentReader,
        live: &[SegmentId],
    ) -> tantivy::Result<Arc<TieColumns>> {
        kept_or_open(&self.ties, reader, live, |reader| {
            let fast = reader.fast_fields();
            Ok([
                fast.str(TIE_FIELDS[0])?,
                fast.str(TIE_FIELDS[1])?,
                fast.str(TIE_FIELDS[2])?,
            ])
        })
    }

    /// The segments whose columns are kept (tests).
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentId> {
        locked(&self.kept).keys().copied().collect()
    }

    /// The segments whose [`TieColumns`] are kept (tests).
    #[must_use]
    pub fn tie_segments(&self) -> Vec<SegmentId> {
        locked(&self.ties).keys().copied().collect()
    }
}
