//! Listings of whole prefixes kept between reads and validated against the directories they
//! walked ([`ObjectStore::list_all_for_display`](crate::storage::ObjectStore::list_all_for_display)).
//!
//! Listing a version of 1,000 files stats 2,000 files (the files and their sidecar records):
//! most of `GET /projects/{p}/version/{v}/files`. Every change this backend makes to a
//! directory's entries — a write or an update (a `rename` or `link` into place), a delete
//! (`unlink`), a rename, a new or removed sub-directory — sets that directory's modification
//! and change times; no write of this backend rewrites a file in place. So a listing stays
//! true while every directory it read still has the inode, modification time and change time
//! it had *before* it was read: a hit costs one `stat` per directory (three for a version of
//! files under one folder) instead of one per object.
//!
//! Coarse timestamps: the kernel stamps a directory from a clock that advances in ticks, so a
//! change in the same tick as an earlier one may leave the stamp as it was. A listing is
//! therefore only kept when every directory it read was last changed more than
//! [`SETTLED`] before it was read (git's "racy" rule): any later change stamps a newer
//! time. A directory changed more recently is listed afresh each time until it settles.
//!
//! Not detected, hence only for what is displayed and never for the indexer or the sync
//! check: a file rewritten in place by another program (same directory entry). Bounded: at most
//! [`MAX_OBJECTS`] objects in all; past it the cache starts over.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::storage::ObjectMeta;

/// How long before a walk every directory it reads must have been last changed for the
/// listing to be kept.
pub(super) const SETTLED: Duration = Duration::from_secs(2);
/// Most objects kept in all the cached listings (about 250 bytes each).
pub(super) const MAX_OBJECTS: usize = 100_000;

/// What identifies a directory's state: inode, modification and change times (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: u64,
    modified: i128,
    changed: i128,
}

impl Stamp {
    /// The stamp of `dir` now, `None` when it cannot be read (absent, not a directory).
    pub(super) fn of(dir: &Path) -> Option<Self> {
        let metadata = fs::symlink_metadata(dir).ok()?;
        if !metadata.is_dir() {
            return None;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Some(Self {
                inode: metadata.ino(),
                modified: i128::from(metadata.mtime()) * 1_000_000_000
                    + i128::from(metadata.mtime_nsec()),
                changed: i128::from(metadata.ctime()) * 1_000_000_000
                    + i128::from(metadata.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            None
        }
    }

    /// Whether the directory was last changed at least [`SETTLED`] before `read_at`.
    pub(super) fn settled_before(&self, read_at: SystemTime) -> bool {
        let Ok(read_at) = read_at.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = i128::try_from(read_at.saturating_sub(SETTLED).as_nanos()).unwrap_or(0);
        self.modified < limit && self.changed < limit
    }
}

/// A walk's directories with their stamps taken before each was read; `None` once one of
/// them could not be stamped or had not settled (the listing is then not kept).
pub(super) type Stamps = Option<Vec<(PathBuf, Stamp)>>;

/// Stamps `dir` before it is read, into `stamps`.
pub(super) fn stamp_before_reading(stamps: &mut Stamps, dir: &Path) {
    let Some(list) = stamps else {
        return;
    };
    match Stamp::of(dir) {
        Some(stamp) if stamp.settled_before(SystemTime::now()) => {
            list.push((dir.to_path_buf(), stamp));
        }
        _ => *stamps = None,
    }
}

struct Cached {
    dirs: Vec<(PathBuf, Stamp)>,
    objects: Arc<Vec<ObjectMeta>>,
}

/// Cached listings by prefix.
#[derive(Default)]
pub(super) struct ListingCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    listings: HashMap<String, Arc<Cached>>,
    objects: usize,
    hits: u64,
    misses: u64,
}

impl ListingCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (hits, misses), for tests.
    #[cfg(test)]
    pub(super) fn stats(&self) -> (u64, u64) {
        let state = self.lock();
        (state.hits, state.misses)
    }

    /// The cached listing of `prefix` if every directory it read is as it was (checked now,
    /// outside the lock).
    pub(super) fn get(&self, prefix: &str) -> Option<Arc<Vec<ObjectMeta>>> {
        let cached = self.lock().listings.get(prefix).cloned();
        let valid = cached.filter(|cached| {
            cached
                .dirs
                .iter()
                .all(|(dir, stamp)| Stamp::of(dir).as_ref() == Some(stamp))
        });
        let mut state = self.lock();
        if valid.is_some() {
            state.hits += 1;
        } else {
            state.misses += 1;
        }
        valid.map(|cached| cached.objects.clone())
    }

    /// Keeps the listing of `prefix` that read `stamps` (nothing when they are `None`).
    pub(super) fn insert(&self, prefix: &str, stamps: Stamps, objects: Arc<Vec<ObjectMeta>>) {
        let Some(dirs) = stamps else {
            return;
        };
        if objects.len() > MAX_OBJECTS / 4 {
            return;
        }
        let mut state = self.lock();
        if state.objects + objects.len() > MAX_OBJECTS {
            state.listings.clear();
            state.objects = 0;
        }
        state.objects += objects.len();
        if let Some(old) = state
            .listings
            .insert(prefix.to_owned(), Arc::new(Cached { dirs, objects }))
        {
            state.objects = state.objects.saturating_sub(old.objects.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;
    use crate::storage::{ObjectStore as _, ObjectStoreExt as _, PutOptions};
    use bytes::Bytes;

    /// A listing kept for display is never stale after this backend's writes, overwrites,
    /// deletes and renames, nor while a directory has just changed.
    #[tokio::test]
    async fn a_kept_listing_never_outlives_a_change_of_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open_for_tests(dir.path());
        let put = |key: &'static str, body: &'static str| {
            let store = &store;
            async move {
                store
                    .put_bytes(key, Bytes::from(body), PutOptions::default())
                    .await
                    .unwrap();
            }
        };
        put("p/v1/x.bin", "x").await;
        put("p/v1/sub/y.bin", "y").await;
        put("p/v1/m/files/y.bin.json", "{}").await;
        put("p/v2/other.bin", "o").await;
        let keys = |objects: &[ObjectMeta]| -> Vec<String> {
            objects.iter().map(|object| object.key.clone()).collect()
        };
        let shown = || async {
            let objects = store.list_all_for_display("p/v1/").await.unwrap();
            objects.as_ref().clone()
        };
        let truth = || async { store.list_all("p/v1/").await.unwrap() };
        let settle = || tokio::time::sleep(SETTLED + Duration::from_millis(200));
        let hits = || store.shared.listings.stats().0;

        // Just changed: listed afresh every time, nothing kept.
        assert_eq!(keys(&shown().await), keys(&truth().await));
        assert_eq!(shown().await, truth().await);
        assert_eq!(
            hits(),
            0,
            "a directory changed within the settle time is not kept"
        );

        settle().await;
        assert_eq!(shown().await, truth().await);
        assert_eq!(shown().await, truth().await);
        assert_eq!(hits(), 1, "a settled listing is kept and served");

        // A new file in a sub-directory.
        put("p/v1/sub/z.bin", "z").await;
        assert_eq!(shown().await, truth().await);
        assert!(keys(&shown().await).contains(&"p/v1/sub/z.bin".to_owned()));

        // An overwrite (same name, new content): the new size and ETag, not the kept ones.
        settle().await;
        let before = shown().await;
        assert_eq!(before, truth().await);
        put("p/v1/sub/y.bin", "a longer y").await;
        let after = shown().await;
        assert_eq!(after, truth().await);
        assert_ne!(after, before);

        // A delete: the deleted file is never shown again.
        settle().await;
        assert_eq!(shown().await, truth().await);
        store.delete("p/v1/x.bin").await.unwrap();
        assert!(!keys(&shown().await).contains(&"p/v1/x.bin".to_owned()));

        // A rename out of the version, and a whole sub-directory emptied.
        settle().await;
        assert_eq!(shown().await, truth().await);
        store.rename("p/v1/sub/z.bin", "p/v2/z.bin").await.unwrap();
        store.delete("p/v1/sub/y.bin").await.unwrap();
        assert_eq!(shown().await, truth().await);
        assert_eq!(keys(&shown().await), ["p/v1/m/files/y.bin.json".to_owned()]);
        // Another version's changes do not touch this one's listing, and vice versa.
        assert_eq!(
            keys(&store.list_all_for_display("p/v2/").await.unwrap()).len(),
            2
        );
    }
}
