//! The fast columns of the readable-versions pass, opened once per segment.
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

/// Opened columns, by segment.
#[derive(Default)]
pub struct SegmentColumns {
    kept: Mutex<HashMap<SegmentId, Arc<VersionColumns>>>,
}

impl std::fmt::Debug for SegmentColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentColumns")
            .field("segments", &self.lock().len())
            .finish()
    }
}

impl SegmentColumns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<VersionColumns>>> {
        // An entry is inserted whole: a poisoned map is usable.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The columns of `reader`'s segment: kept ones, or opened now and kept — when opened,
    /// the segments not in `live` (those of the searcher at hand) are forgotten.
    pub fn versions(
        &self,
        reader: &SegmentReader,
        live: &[SegmentId],
    ) -> tantivy::Result<Arc<VersionColumns>> {
        let segment = reader.segment_id();
        if let Some(columns) = self.lock().get(&segment) {
            return Ok(columns.clone());
        }
        let columns = Arc::new(VersionColumns::open(reader)?);
        let mut kept = self.lock();
        kept.retain(|id, _| live.contains(id));
        kept.insert(segment, columns.clone());
        Ok(columns)
    }

    /// The segments whose columns are kept (tests).
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentId> {
        self.lock().keys().copied().collect()
    }
}
