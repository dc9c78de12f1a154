//! A version's files as `GET /projects/{p}/version/{v}/files` lists them, rendered once per
//! storage listing.
//!
//! The file entries of a version (id, path, size, checksums, content type, upload time) are a
//! function of its storage listing alone: each object's size, time and content type, and each
//! sidecar record, whose content the listing's ETag identifies (the record cache is keyed the
//! same way, [`super::files::file_records`]). So the entries' JSON is rendered once and kept
//! with the listing it came from; a request whose listing is the same — the very same `Arc`
//! from the local backend's kept listings, or an equal listing from S3 — answers the kept
//! bytes instead of rebuilding the listing, looking up 1,000 records and serializing 1,000
//! entries. Nothing that depends on the caller is kept: links (whose target id is shown only
//! to those who may read it) are decided per request from the kept `links.json`.
//!
//! Only kept when every ETag of the listing is known and every record and `links.json` read
//! had the ETag listed (a record rewritten between the listing and its read would otherwise
//! be kept under the older listing). Bounded: at most [`MAX_BYTES`] of entries and listings in
//! all; past it the cache starts over.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::Value;

use super::files::{FileEntry, file_records};
use super::projects::index_error;
use super::{Error, Result};
use crate::app::AppState;
use crate::storage::{ObjectMeta, keys};

/// Most bytes kept in all: the rendered entries, the links and about 256 bytes per listed
/// object.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;
/// What one kept listed object is counted as.
const OBJECT_BYTES: usize = 256;

/// A version's files as listed: the same for every caller who may read the version.
#[derive(Debug, Clone)]
pub struct ListedFiles {
    /// The JSON of the file entries, in path order, separated by commas, without brackets
    /// (empty when the version holds no file).
    pub files_json: Bytes,
    /// `links.json`: path → link (the caller decides what each shows).
    pub links: Arc<BTreeMap<String, Value>>,
}

/// The rendered listings, by version prefix, each with the storage listing it was made from.
#[derive(Debug, Default)]
pub struct ListedFilesCache {
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    entries: HashMap<String, (Arc<Vec<ObjectMeta>>, ListedFiles)>,
    bytes: usize,
}

/// What an entry is counted as against [`MAX_BYTES`]: its rendering, its listing, and its
/// links as stored (the size of `links.json` in the listing).
fn weight(objects: &[ObjectMeta], listed: &ListedFiles) -> usize {
    let links = objects
        .iter()
        .filter(|object| object.key.ends_with("/links.json"))
        .map(|object| usize::try_from(object.size).unwrap_or(usize::MAX))
        .fold(0_usize, usize::saturating_add);
    listed
        .files_json
        .len()
        .saturating_add(objects.len().saturating_mul(OBJECT_BYTES))
        .saturating_add(links.saturating_mul(2))
}

impl ListedFilesCache {
    /// The files of `prefix` when they were rendered from a listing equal to `objects`.
    #[must_use]
    pub fn get(&self, prefix: &str, objects: &Arc<Vec<ObjectMeta>>) -> Option<ListedFiles> {
        let (kept, listed) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let (kept, listed) = state.entries.get(prefix)?;
            (Arc::clone(kept), listed.clone())
        };
        // Compared outside the lock: an S3 listing of thousands of objects is compared whole.
        (Arc::ptr_eq(&kept, objects) || kept == *objects).then_some(listed)
    }

    /// Keeps `listed`, rendered from `objects` under `prefix`; nothing when some ETag is
    /// unknown (an equal listing would not prove equal content) or it alone exceeds the bound.
    pub fn insert(&self, prefix: &str, objects: Arc<Vec<ObjectMeta>>, listed: ListedFiles) {
        if objects.iter().any(|object| object.etag.is_empty()) {
            return;
        }
        let size = weight(&objects, &listed);
        if size > MAX_BYTES {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((old_objects, old)) = state.entries.remove(prefix) {
            state.bytes = state.bytes.saturating_sub(weight(&old_objects, &old));
        }
        if state.bytes.saturating_add(size) > MAX_BYTES {
            state.entries.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        state.entries.insert(prefix.to_owned(), (objects, listed));
    }

    /// Bytes counted against [`MAX_BYTES`].
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

/// The files of `project`'s `version` as listed (the caller has checked it may read them):
/// from the kept rendering when storage lists the version as it did then, else rendered and
/// kept.
pub async fn listed_files(app: &AppState, project: &str, version: &str) -> Result<ListedFiles> {
    let objects = app
        .indexer
        .version_objects_for_display(project, version)
        .await
        .map_err(index_error)?;
    let prefix = keys::version_prefix(project, version);
    if let Some(listed) = app.listed_files.get(&prefix, &objects) {
        return Ok(listed);
    }
    let listing = app
        .indexer
        .listing_of(project, version, objects.as_ref().clone())
        .await
        .map_err(index_error)?;
    let (records, records_as_listed) = file_records(app, &listing).await?;
    let mut json = Vec::with_capacity(listing.files.len().saturating_mul(256));
    for (path, object) in &listing.files {
        if !json.is_empty() {
            json.push(b',');
        }
        let record = records.get(path).map(AsRef::as_ref);
        let entry = FileEntry::new(project, version, path, object, record);
        serde_json::to_writer(&mut json, &entry).map_err(Error::internal)?;
    }
    let links_key = keys::version_links(project, version);
    let listed_links = objects.iter().find(|object| object.key == links_key);
    let links_as_listed = match (&listing.links_etag, listed_links) {
        (None, None) => true,
        (Some(read), Some(listed)) => *read == listed.etag,
        _ => false,
    };
    let listed = ListedFiles {
        files_json: Bytes::from(json),
        links: Arc::new(listing.links),
    };
    if records_as_listed && links_as_listed {
        app.listed_files.insert(&prefix, objects, listed.clone());
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, etag: &str) -> ObjectMeta {
        ObjectMeta {
            key: key.to_owned(),
            size: 1,
            etag: etag.to_owned(),
            last_modified: chrono::DateTime::UNIX_EPOCH,
            content_type: None,
        }
    }

    fn listed(json: &str) -> ListedFiles {
        ListedFiles {
            files_json: Bytes::copy_from_slice(json.as_bytes()),
            links: Arc::default(),
        }
    }

    #[test]
    fn a_rendering_is_answered_for_the_same_or_an_equal_listing_only() {
        let cache = ListedFilesCache::default();
        let objects = Arc::new(vec![object("p/v1/a", "e1"), object("p/v1/b", "e2")]);
        cache.insert("p/v1/", objects.clone(), listed("[a,b]"));
        // The same listing, and an equal one (S3 lists afresh each time).
        assert_eq!(cache.get("p/v1/", &objects).unwrap().files_json, "[a,b]");
        let equal = Arc::new(objects.as_ref().clone());
        assert_eq!(cache.get("p/v1/", &equal).unwrap().files_json, "[a,b]");
        // A changed object (another ETag), one more or one less, another version: none.
        let changed = Arc::new(vec![object("p/v1/a", "e1"), object("p/v1/b", "e3")]);
        assert!(cache.get("p/v1/", &changed).is_none());
        let more = Arc::new(vec![
            object("p/v1/a", "e1"),
            object("p/v1/b", "e2"),
            object("p/v1/c", "e4"),
        ]);
        assert!(cache.get("p/v1/", &more).is_none());
        let fewer = Arc::new(vec![object("p/v1/a", "e1")]);
        assert!(cache.get("p/v1/", &fewer).is_none());
        assert!(cache.get("p/v2/", &objects).is_none());
        // A new rendering of the version replaces the old one, counted once.
        let before = cache.bytes();
        cache.insert("p/v1/", changed.clone(), listed("[a,c]"));
        assert_eq!(cache.bytes(), before);
        assert!(cache.get("p/v1/", &objects).is_none());
        assert_eq!(cache.get("p/v1/", &changed).unwrap().files_json, "[a,c]");
    }

    #[test]
    fn a_listing_with_an_unknown_etag_is_not_kept() {
        let cache = ListedFilesCache::default();
        let objects = Arc::new(vec![object("p/v1/a", "e1"), object("p/v1/b", "")]);
        cache.insert("p/v1/", objects.clone(), listed("[a,b]"));
        assert!(cache.get("p/v1/", &objects).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn the_kept_renderings_are_bounded() {
        let cache = ListedFilesCache::default();
        // One rendering above the bound alone is not kept.
        let objects = Arc::new(vec![object("p/v1/a", "e1")]);
        let huge = ListedFiles {
            files_json: Bytes::from(vec![b' '; MAX_BYTES]),
            links: Arc::default(),
        };
        cache.insert("p/v1/", objects.clone(), huge);
        assert!(cache.get("p/v1/", &objects).is_none());
        // Renderings that together pass the bound: the cache starts over.
        let third = ListedFiles {
            files_json: Bytes::from(vec![b' '; MAX_BYTES / 3]),
            links: Arc::default(),
        };
        for version in 0..4 {
            cache.insert(&format!("p/v{version}/"), objects.clone(), third.clone());
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert!(cache.get("p/v3/", &objects).is_some());
        assert!(cache.get("p/v0/", &objects).is_none());
    }
}
