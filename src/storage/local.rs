//! The local backend: a directory with the same keys as the bucket.
//!
//! * A logical key `a/b/c` is the file `objects_dir/a/b/c`; keys are checked with
//!   [`validate_key`] first, so no key can leave `objects_dir`. Symbolic links inside
//!   `objects_dir` are never listed.
//! * Writes are atomic: the body streams into a temporary file in `tmp_dir` (same filesystem,
//!   outside `objects_dir`) while md5 and sha256 are computed, is fsynced, and is then moved into
//!   place — `rename` for an unconditional write or an `If-Match` update (compared under an
//!   in-process per-key lock), `hard_link` for a create-if-absent (which fails atomically when
//!   the target exists, even across processes). The parent directory is fsynced afterwards.
//! * The ETag is derived from inode, modification time (nanoseconds) and size. Every write sets
//!   a unique, strictly increasing modification time on its new file, so the ETag changes on
//!   every write and is stable otherwise.
//! * Content types are not stored: they are guessed from the key's extension with a small
//!   built-in table (see [`guess_content_type`]); unknown extensions report none.
//! * Reads take the size of the open file (its metadata describes exactly the bytes answered);
//!   a batch of small reads ([`ObjectStore::read_whole_many`], the indexer's) opens objects
//!   relative to their directory, looked up once per directory rather than once per object.
//! * Deleting removes now-empty parent directories up to `objects_dir`; a writer racing with
//!   that re-creates its directory and retries.
//! * Listings walk the tree depth-first in byte order of the full keys (a directory `d` sorts as
//!   `d/`), skip whole subtrees before the continuation token, and stop after one page.
//!
//! Conditional updates are serialised per key within one process; run one Trove process per
//! data directory.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use md5::Digest as _;

use self::stream::{chunk_stream, read_chunk, write_hashed};
use super::presign::LocalPresigner;
use super::{
    ByteRange, ByteStream, GetObject, ListPage, ListRequest, ObjectMeta, ObjectStore,
    PresignMethod, PutCondition, PutOptions, PutOutcome, Result, StorageError, StorageKind,
    prefix_can_match, validate_key,
};

mod listing_cache;
mod stream;

/// Number of striped locks serialising commits per key.
const LOCK_STRIPES: usize = 64;
/// Page size when a listing asks for `0`.
const DEFAULT_PAGE: usize = 1000;
/// Largest page a listing returns.
const MAX_PAGE: usize = 10_000;
/// How often a commit re-creates its parent directory when a concurrent delete removed it.
const COMMIT_ATTEMPTS: usize = 8;

/// A directory-backed [`ObjectStore`].
pub struct LocalStore {
    objects_dir: PathBuf,
    tmp_dir: PathBuf,
    presigner: LocalPresigner,
    shared: Arc<Shared>,
}

/// State shared with blocking tasks.
struct Shared {
    /// Striped per-key locks: every commit and delete of a key holds its stripe.
    locks: Vec<Mutex<()>>,
    /// Last modification time handed out, in nanoseconds since the epoch.
    last_mtime_nanos: AtomicU64,
    /// Listings for display ([`listing_cache`]).
    listings: listing_cache::ListingCache,
}

impl Shared {
    fn lock_for(&self, key: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        // The modulo keeps the value below LOCK_STRIPES, so the cast can't truncate.
        #[allow(clippy::cast_possible_truncation)]
        let index = (hasher.finish() % LOCK_STRIPES as u64) as usize;
        &self.locks[index]
    }

    /// A modification time strictly later than every one handed out before by this store.
    fn unique_mtime(&self) -> SystemTime {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
            });
        let mut previous = self.last_mtime_nanos.load(Ordering::Relaxed);
        loop {
            let next = now.max(previous.saturating_add(1));
            match self.last_mtime_nanos.compare_exchange_weak(
                previous,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return UNIX_EPOCH + Duration::from_nanos(next),
                Err(actual) => previous = actual,
            }
        }
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("objects_dir", &self.objects_dir)
            .field("tmp_dir", &self.tmp_dir)
            .field("presigner", &self.presigner)
            .finish_non_exhaustive()
    }
}

fn io_error(context: &str, error: &io::Error) -> StorageError {
    StorageError::Backend(format!("{context}: {error}"))
}

fn join_error(error: &tokio::task::JoinError) -> StorageError {
    StorageError::Backend(format!("blocking storage task failed: {error}"))
}

/// Whether an I/O error means "no such object" (missing file, or a file where a directory of
/// the path was expected).
fn is_absent(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// The ETag of a file: inode, modification time in nanoseconds and size, in hex.
fn etag_of(metadata: &fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0_u64;
    let mtime_nanos = metadata
        .modified()
        .ok()
        .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |elapsed| elapsed.as_nanos());
    let mut etag = String::with_capacity(48);
    push_hex(&mut etag, u128::from(inode));
    etag.push('-');
    push_hex(&mut etag, mtime_nanos);
    etag.push('-');
    push_hex(&mut etag, u128::from(metadata.len()));
    etag
}

/// Appends `value` in lower-case hexadecimal without leading zeros (what `{:x}` writes,
/// without the formatting machinery: listings compute an ETag per object).
fn push_hex(out: &mut String, value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0_u8; 32];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[start..].iter().map(|&digit| char::from(digit)));
}

/// The content type reported for a key, guessed from its extension (the local backend does not
/// store the type given at upload). Unknown extensions give `None`.
#[must_use]
pub fn guess_content_type(key: &str) -> Option<&'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let (_, extension) = name.rsplit_once('.')?;
    let content_type = match extension.to_ascii_lowercase().as_str() {
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "csv" => "text/csv",
        "tsv" => "text/tab-separated-values",
        "txt" | "adbignore" => "text/plain",
        "md" => "text/markdown",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "parquet" => "application/vnd.apache.parquet",
        "gz" => "application/gzip",
        "zip" => "application/zip",
        "tar" => "application/x-tar",
        "zst" => "application/zstd",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "h5" | "hdf5" => "application/x-hdf5",
        "bin" | "pt" | "pth" | "safetensors" | "onnx" | "npy" | "npz" | "ckpt" => {
            "application/octet-stream"
        }
        _ => return None,
    };
    Some(content_type)
}

fn meta_of(key: impl Into<String>, metadata: &fs::Metadata) -> ObjectMeta {
    let key = key.into();
    let last_modified = metadata
        .modified()
        .map_or_else(|_| DateTime::<Utc>::UNIX_EPOCH, DateTime::<Utc>::from);
    let content_type = guess_content_type(&key).map(str::to_owned);
    ObjectMeta {
        key,
        size: metadata.len(),
        etag: etag_of(metadata),
        last_modified,
        content_type,
    }
}

/// Opens the file of an object with the metadata of the open file (so it describes exactly
/// the bytes read even if a writer replaces the key meanwhile); `NotFound` when absent or not
/// a regular file. Blocking.
fn open_object(path: &Path, key: &str) -> Result<(fs::File, fs::Metadata)> {
    opened_object(fs::File::open(path), key)
}

/// [`open_object`] after the `open` itself: the metadata of the open file, `NotFound` when
/// it was absent or is not a regular file.
fn opened_object(file: io::Result<fs::File>, key: &str) -> Result<(fs::File, fs::Metadata)> {
    let not_found = || StorageError::NotFound {
        key: key.to_owned(),
    };
    let file = match file {
        Ok(file) => file,
        Err(error) if is_absent(&error) => return Err(not_found()),
        Err(error) => return Err(io_error("open object", &error)),
    };
    let metadata = file
        .metadata()
        .map_err(|error| io_error("stat object", &error))?;
    if !metadata.is_file() {
        return Err(not_found());
    }
    Ok((file, metadata))
}

/// Opens the objects of a batch ([`ObjectStore::read_whole_many`]) relative to their
/// directory, kept open from one object to the next in it: a version's metadata documents
/// share one directory, looked up once instead of once per document (Linux; elsewhere each
/// object is opened by its path). A directory absent when first looked up answers `NotFound`
/// for the batch's objects in it that follow, as if all were read at that moment. Blocking.
#[derive(Default)]
struct BatchOpener {
    #[cfg(target_os = "linux")]
    directory: Option<(PathBuf, Option<std::os::fd::OwnedFd>)>,
}

impl BatchOpener {
    #[cfg(target_os = "linux")]
    fn open(&mut self, path: &Path, key: &str) -> Result<(fs::File, fs::Metadata)> {
        use rustix::fs::{Mode, OFlags};
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return open_object(path, key);
        };
        if self
            .directory
            .as_ref()
            .is_none_or(|(open, _)| open.as_path() != parent)
        {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let directory = match rustix::fs::open(parent, flags, Mode::empty()) {
                Ok(directory) => Some(directory),
                Err(errno) => {
                    let error = io::Error::from(errno);
                    if !is_absent(&error) {
                        return Err(io_error("open directory", &error));
                    }
                    None
                }
            };
            self.directory = Some((parent.to_path_buf(), directory));
        }
        let Some((_, Some(directory))) = &self.directory else {
            return Err(StorageError::NotFound {
                key: key.to_owned(),
            });
        };
        let file = rustix::fs::openat(
            directory,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(fs::File::from)
        .map_err(io::Error::from);
        opened_object(file, key)
    }

    #[cfg(not(target_os = "linux"))]
    #[allow(clippy::unused_self)]
    fn open(&mut self, path: &Path, key: &str) -> Result<(fs::File, fs::Metadata)> {
        open_object(path, key)
    }
}

/// Reads the `size` bytes of an open object (its size when opened) in as few `read`s as
/// they take — one for a metadata document, where `read_to_end` would stat the file again,
/// seek and read once more to find the end. Bytes appended since (Trove never appends: its
/// writes replace a file whole) are not read, so the answer is exactly what the metadata
/// describes; a file cut short since fails the read (`UnexpectedEof`), as a ranged `get`
/// does, rather than answering fewer bytes than its metadata says.
fn read_sized(file: &mut fs::File, size: u64) -> io::Result<Vec<u8>> {
    let size = usize::try_from(size).map_err(io::Error::other)?;
    let mut bytes = vec![0_u8; size];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Removes a temporary file when dropped, unless disarmed.
struct TempPath(Option<PathBuf>);

impl TempPath {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or_else(|| Path::new(""))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: a leftover temp file wastes space but is never visible as an object.
            let _ = fs::remove_file(path);
        }
    }
}

/// fsyncs a directory so a rename, link or unlink in it is durable. A directory that a
/// concurrent delete already removed has nothing left to persist.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match fs::File::open(dir) {
            Ok(handle) => handle.sync_all(),
            Err(error) if is_absent(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Runs `operation` (a rename or link onto `target`) after creating the target's parent
/// directory, retrying when a concurrent delete removed that directory in between.
fn with_parent(
    key: &str,
    target: &Path,
    mut operation: impl FnMut() -> io::Result<()>,
) -> Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| StorageError::InvalidKey(key.to_owned()))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(error) = fs::create_dir_all(parent) {
            if parent.ancestors().any(Path::is_file) {
                return Err(StorageError::KeyConflict(format!(
                    "key {key:?} conflicts with an existing object on its path"
                )));
            }
            // A concurrent delete removed a directory while it was being created (NotFound, or
            // AlreadyExists from a mkdir whose directory vanished before it was checked).
            if attempt < COMMIT_ATTEMPTS
                && matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::AlreadyExists
                )
            {
                continue;
            }
            return Err(io_error("create directory", &error));
        }
        match operation() {
            Err(error) if error.kind() == io::ErrorKind::NotFound && attempt < COMMIT_ATTEMPTS => {}
            Err(error) => return Err(commit_error(key, target, &error)),
            Ok(()) => return sync_dir(parent).map_err(|error| io_error("fsync directory", &error)),
        }
    }
}

fn commit_error(key: &str, target: &Path, error: &io::Error) -> StorageError {
    if target.is_dir() {
        return StorageError::KeyConflict(format!(
            "key {key:?} conflicts with existing objects below it"
        ));
    }
    if error.kind() == io::ErrorKind::AlreadyExists {
        return StorageError::AlreadyExists {
            key: key.to_owned(),
        };
    }
    io_error("commit object", error)
}

/// Moves the finished temp file to `target` according to `condition`, holding the key's lock.
fn commit(
    shared: &Shared,
    key: &str,
    temp: &mut TempPath,
    target: &Path,
    condition: &PutCondition,
) -> Result<ObjectMeta> {
    let _guard = shared
        .lock_for(key)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match condition {
        PutCondition::None => {
            with_parent(key, target, || fs::rename(temp.path(), target))?;
            temp.disarm();
        }
        PutCondition::IfAbsent => {
            // hard_link fails atomically with EEXIST when the target exists, even against
            // writers in other processes; the guard then removes the temp file.
            with_parent(key, target, || fs::hard_link(temp.path(), target))?;
        }
        PutCondition::IfMatch(expected) => {
            let current = match fs::metadata(target) {
                Ok(metadata) if metadata.is_file() => metadata,
                Ok(_) => {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
                Err(error) if is_absent(&error) => {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
                Err(error) => return Err(io_error("stat object", &error)),
            };
            if etag_of(&current) != *expected {
                return Err(StorageError::PreconditionFailed {
                    key: key.to_owned(),
                });
            }
            with_parent(key, target, || fs::rename(temp.path(), target))?;
            temp.disarm();
        }
    }
    let metadata = fs::metadata(target).map_err(|error| io_error("stat object", &error))?;
    Ok(meta_of(key, &metadata))
}

/// One listed item, in key order.
enum Listed {
    Object(ObjectMeta),
    Prefix(String),
}

impl Listed {
    fn key(&self) -> &str {
        match self {
            Self::Object(meta) => &meta.key,
            Self::Prefix(prefix) => prefix,
        }
    }
}

/// A depth-first walk producing one page of a listing.
struct Walk<'a> {
    delimited: bool,
    start_after: Option<&'a str>,
    /// Items to collect: the page size plus one, to know whether another page follows.
    limit: usize,
    items: Vec<Listed>,
    /// The directories read, each stamped before it was read, when the listing may be kept
    /// ([`listing_cache`]); `None` otherwise.
    stamps: listing_cache::Stamps,
}

/// One entry of a directory: a sub-directory, or a file with its metadata when it was asked
/// for.
struct Entry {
    name: String,
    is_dir: bool,
    metadata: Option<fs::Metadata>,
}

/// The entries of a directory, sorted so that depth-first order equals the byte order of full
/// keys: a directory `d` sorts as `d/`. Symbolic links, special files and names that are not
/// UTF-8 are skipped. A missing directory has no entries. The files for which `wanted` says
/// so get their metadata, read relative to the open directory (`fstatat`: no walk of the
/// whole path per file); a file removed between the two is skipped, as if listed a moment
/// later.
fn sorted_entries(dir: &Path, mut wanted: impl FnMut(&str) -> bool) -> io::Result<Vec<Entry>> {
    let reader = match fs::read_dir(dir) {
        Ok(reader) => reader,
        Err(error) if is_absent(&error) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut entries = Vec::new();
    for entry in reader {
        let entry = match entry {
            Ok(entry) => entry,
            // Removed while listing.
            Err(error) if is_absent(&error) => continue,
            Err(error) => return Err(error),
        };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let is_dir = file_type.is_dir();
        if !is_dir && !file_type.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let metadata = if !is_dir && wanted(&name) {
            // `DirEntry::metadata` does not follow a symbolic link (a file swapped for one
            // since `file_type` is listed as what it now is: not a file, skipped below).
            match entry.metadata() {
                Ok(metadata) if metadata.is_file() => Some(metadata),
                Ok(_) => continue,
                Err(error) if is_absent(&error) => continue,
                Err(error) => return Err(error),
            }
        } else {
            None
        };
        entries.push(Entry {
            name,
            is_dir,
            metadata,
        });
    }
    // A directory sorts as its name followed by `/`.
    entries.sort_unstable_by(key_order);
    Ok(entries)
}

/// The order of two entries of one directory by the keys they lead to: a directory's name
/// sorts as if followed by `/` (`a-b` < `a/…` < `a0`).
fn key_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    let (x, y) = (a.name.as_bytes(), b.name.as_bytes());
    let common = x.len().min(y.len());
    x[..common].cmp(&y[..common]).then_with(|| {
        // One name is a prefix of the other: the next byte decides, a directory's `/`.
        let next = |entry: &Entry, bytes: &[u8]| {
            bytes.get(common).copied().or(entry.is_dir.then_some(b'/'))
        };
        next(a, x).cmp(&next(b, y))
    })
}

/// Whether `prefix` followed by `name` sorts after `token` (without building the key).
fn joined_after(prefix: &str, name: &str, token: &str) -> bool {
    prefix
        .as_bytes()
        .iter()
        .chain(name.as_bytes())
        .cmp(token.as_bytes().iter())
        .is_gt()
}

/// Whether a directory contains at least one object, at any depth.
fn has_object(dir: &Path) -> io::Result<bool> {
    for entry in sorted_entries(dir, |_| false)? {
        if !entry.is_dir || has_object(&dir.join(&entry.name))? {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.items.len() >= self.limit
    }

    fn after_token(&self, key: &str) -> bool {
        self.start_after.is_none_or(|token| key > token)
    }

    /// Visits `dir`, whose keys start with `key_prefix`, keeping entries whose name starts with
    /// `name_filter`. Returns `true` once the page is full.
    fn visit(&mut self, dir: &Path, key_prefix: &str, name_filter: &str) -> io::Result<bool> {
        listing_cache::stamp_before_reading(&mut self.stamps, dir);
        let start_after = self.start_after;
        let wanted = |name: &str| {
            name.starts_with(name_filter)
                && start_after.is_none_or(|token| joined_after(key_prefix, name, token))
        };
        for entry in sorted_entries(dir, wanted)? {
            let name = entry.name;
            if !name.starts_with(name_filter) {
                continue;
            }
            if entry.is_dir {
                let path = dir.join(&name);
                let sub_prefix = format!("{key_prefix}{name}/");
                if self.delimited {
                    if self.after_token(&sub_prefix) && has_object(&path)? {
                        self.items.push(Listed::Prefix(sub_prefix));
                    }
                } else {
                    // Every key below starts with sub_prefix: the whole subtree lies before the
                    // token unless the token itself is inside it.
                    let before_token = self.start_after.is_some_and(|token| {
                        sub_prefix.as_str() < token && !token.starts_with(&sub_prefix)
                    });
                    if !before_token && self.visit(&path, &sub_prefix, "")? {
                        return Ok(true);
                    }
                }
            } else {
                // Files before the token were not asked for their metadata.
                let Some(metadata) = entry.metadata else {
                    continue;
                };
                let key = format!("{key_prefix}{name}");
                if validate_key(&key).is_err() {
                    continue;
                }
                self.items.push(Listed::Object(meta_of(key, &metadata)));
            }
            if self.full() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Splits a listing prefix into the directory to walk (relative, ending with `/` or empty) and
/// the filter on names inside it. `None` when no valid key can have this prefix.
fn split_prefix(prefix: &str) -> Option<(&str, &str)> {
    if !prefix_can_match(prefix) {
        return None;
    }
    Some(match prefix.rfind('/') {
        Some(index) => (&prefix[..=index], &prefix[index + 1..]),
        None => ("", prefix),
    })
}

fn list_blocking(
    objects_dir: &Path,
    prefix: &str,
    delimited: bool,
    start_after: Option<&str>,
    max_keys: usize,
) -> Result<ListPage> {
    list_stamped(objects_dir, prefix, delimited, start_after, max_keys, None).map(|(page, _)| page)
}

/// Every object under `prefix` and the directories read, stamped (see [`listing_cache`]).
fn list_all_stamped(
    objects_dir: &Path,
    prefix: &str,
) -> Result<(Vec<ObjectMeta>, listing_cache::Stamps)> {
    let (page, stamps) = list_stamped(
        objects_dir,
        prefix,
        false,
        None,
        usize::MAX - 1,
        Some(Vec::new()),
    )?;
    Ok((page.objects, stamps))
}

/// [`list_blocking`], stamping the directories it reads when `stamps` is `Some`.
fn list_stamped(
    objects_dir: &Path,
    prefix: &str,
    delimited: bool,
    start_after: Option<&str>,
    max_keys: usize,
    stamps: listing_cache::Stamps,
) -> Result<(ListPage, listing_cache::Stamps)> {
    let Some((dir_part, name_filter)) = split_prefix(prefix) else {
        return Ok((ListPage::default(), None));
    };
    let mut dir = objects_dir.to_path_buf();
    dir.extend(dir_part.split('/').filter(|segment| !segment.is_empty()));
    let mut walk = Walk {
        delimited,
        start_after,
        limit: max_keys + 1,
        items: Vec::new(),
        stamps,
    };
    walk.visit(&dir, dir_part, name_filter)
        .map_err(|error| io_error("list directory", &error))?;
    let stamps = walk.stamps;
    let mut items = walk.items;
    let next = if items.len() > max_keys {
        items.truncate(max_keys);
        items
            .last()
            .map(|item| URL_SAFE_NO_PAD.encode(item.key().as_bytes()))
    } else {
        None
    };
    let mut page = ListPage {
        next,
        ..ListPage::default()
    };
    for item in items {
        match item {
            Listed::Object(meta) => page.objects.push(meta),
            Listed::Prefix(prefix) => page.common_prefixes.push(prefix),
        }
    }
    Ok((page, stamps))
}

fn decode_token(token: &str) -> Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| StorageError::InvalidKey("invalid continuation token".into()))
}

impl LocalStore {
    /// Opens (creating when needed) a store keeping objects in `objects_dir` and temporary files
    /// in `tmp_dir`, which must be on the same filesystem and outside `objects_dir`.
    pub fn open(objects_dir: PathBuf, tmp_dir: PathBuf, presigner: LocalPresigner) -> Result<Self> {
        fs::create_dir_all(&objects_dir)
            .map_err(|error| io_error("create objects directory", &error))?;
        fs::create_dir_all(&tmp_dir).map_err(|error| io_error("create tmp directory", &error))?;
        let objects_dir = objects_dir
            .canonicalize()
            .map_err(|error| io_error("resolve objects directory", &error))?;
        let tmp_dir = tmp_dir
            .canonicalize()
            .map_err(|error| io_error("resolve tmp directory", &error))?;
        if tmp_dir.starts_with(&objects_dir) {
            return Err(StorageError::Backend(
                "the tmp directory must not be inside the objects directory".into(),
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let device = |dir: &Path| {
                fs::metadata(dir)
                    .map(|metadata| metadata.dev())
                    .map_err(|error| io_error("stat directory", &error))
            };
            if device(&objects_dir)? != device(&tmp_dir)? {
                return Err(StorageError::Backend(
                    "the tmp directory must be on the same filesystem as the objects directory"
                        .into(),
                ));
            }
        }
        Ok(Self {
            objects_dir,
            tmp_dir,
            presigner,
            shared: Arc::new(Shared {
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
                last_mtime_nanos: AtomicU64::new(0),
                listings: listing_cache::ListingCache::default(),
            }),
        })
    }

    /// The directory objects live in.
    #[must_use]
    pub fn objects_dir(&self) -> &Path {
        &self.objects_dir
    }

    /// The presigner of this store's URLs (the `/storage/{key}` route verifies with it).
    #[must_use]
    pub fn presigner(&self) -> &LocalPresigner {
        &self.presigner
    }

    /// The file of a logical key, after validating the key.
    fn path_for(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        let mut path = self.objects_dir.clone();
        path.extend(key.split('/'));
        Ok(path)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Local
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_for(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(metadata) if metadata.is_file() => Ok(meta_of(key, &metadata)),
            Ok(_) => Err(StorageError::NotFound {
                key: key.to_owned(),
            }),
            Err(error) if is_absent(&error) => Err(StorageError::NotFound {
                key: key.to_owned(),
            }),
            Err(error) => Err(io_error("stat object", &error)),
        }
    }

    async fn read_whole(&self, key: &str) -> Result<(Bytes, ObjectMeta)> {
        let path = self.path_for(key)?;
        let owned_key = key.to_owned();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let (mut file, metadata) = open_object(&path, &owned_key)?;
            let bytes = read_sized(&mut file, metadata.len())
                .map_err(|error| io_error("read object", &error))?;
            Ok((Bytes::from(bytes), meta_of(&owned_key, &metadata)))
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn read_whole_many(&self, keys: Vec<String>) -> Result<Vec<Option<(Bytes, ObjectMeta)>>> {
        let paths = keys
            .iter()
            .map(|key| self.path_for(key))
            .collect::<Result<Vec<_>>>()?;
        tokio::task::spawn_blocking(move || -> Result<_> {
            let mut found = Vec::with_capacity(keys.len());
            let mut opener = BatchOpener::default();
            for (key, path) in keys.iter().zip(paths) {
                let (mut file, metadata) = match opener.open(&path, key) {
                    Ok(opened) => opened,
                    Err(StorageError::NotFound { .. }) => {
                        found.push(None);
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                let bytes = read_sized(&mut file, metadata.len())
                    .map_err(|error| io_error("read object", &error))?;
                found.push(Some((Bytes::from(bytes), meta_of(key, &metadata))));
            }
            Ok(found)
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        let path = self.path_for(key)?;
        let owned_key = key.to_owned();
        let opened = tokio::task::spawn_blocking(move || -> Result<_> {
            let (mut file, metadata) = open_object(&path, &owned_key)?;
            let size = metadata.len();
            let served = match range {
                None => None,
                Some(ByteRange { start, end }) => {
                    if start >= size || end.is_some_and(|end| end < start) {
                        return Err(StorageError::InvalidRange { size });
                    }
                    let end = end.map_or(size - 1, |end| end.min(size - 1));
                    file.seek(SeekFrom::Start(start))
                        .map_err(|error| io_error("seek object", &error))?;
                    Some((start, end))
                }
            };
            let length = served.map_or(size, |(start, end)| end - start + 1);
            // The first chunk is read by this same call: a small object costs one hop.
            let first =
                read_chunk(&mut file, length).map_err(|error| io_error("read object", &error))?;
            let remaining = length - first.len() as u64;
            Ok((
                file,
                meta_of(&owned_key, &metadata),
                served,
                first,
                remaining,
            ))
        })
        .await
        .map_err(|error| join_error(&error))??;
        let (file, meta, served, first, remaining) = opened;
        Ok(GetObject {
            meta,
            range: served,
            body: chunk_stream(file, first, remaining),
        })
    }

    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<PutOutcome> {
        let target = self.path_for(key)?;
        let temp_path = self
            .tmp_dir
            .join(format!("put-{}.tmp", uuid::Uuid::new_v4().simple()));
        let opened = temp_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(opened)
        })
        .await
        .map_err(|error| join_error(&error))?
        .map_err(|error| io_error("create temp file", &error))?;
        let mut temp = TempPath(Some(temp_path));
        let (file, md5, sha256) = write_hashed(file, body).await?;
        let md5: [u8; 16] = md5.finalize().into();
        let md5_hex = hex::encode(md5);
        if let Some(expected) = options.content_md5
            && expected != md5
        {
            // `temp` is dropped here, removing the temp file: nothing is stored.
            return Err(StorageError::DigestMismatch {
                expected: hex::encode(expected),
                actual: md5_hex,
            });
        }
        let sha256_hex = hex::encode(sha256.finalize());
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        let meta = tokio::task::spawn_blocking(move || {
            file.set_modified(shared.unique_mtime())
                .map_err(|error| io_error("set modification time", &error))?;
            file.sync_all()
                .map_err(|error| io_error("fsync temp file", &error))?;
            drop(file);
            commit(&shared, &key, &mut temp, &target, &options.condition)
        })
        .await
        .map_err(|error| join_error(&error))??;
        Ok(PutOutcome {
            meta,
            md5_hex,
            sha256_hex,
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_for(key)?;
        let objects_dir = self.objects_dir.clone();
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || {
            let guard = shared
                .lock_for(&key)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_dir() => return Ok(()),
                Ok(_) => {}
                Err(error) if is_absent(&error) => return Ok(()),
                Err(error) => return Err(io_error("stat object", &error)),
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if is_absent(&error) => return Ok(()),
                Err(error) => return Err(io_error("delete object", &error)),
            }
            drop(guard);
            let mut dir = path.parent();
            if let Some(parent) = dir {
                sync_dir(parent).map_err(|error| io_error("fsync directory", &error))?;
            }
            // Remove now-empty parents; stops at the first non-empty one (or one a writer just
            // re-populated). A writer that loses its directory here re-creates it and retries.
            while let Some(current) = dir {
                if current == objects_dir || !current.starts_with(&objects_dir) {
                    break;
                }
                if fs::remove_dir(current).is_err() {
                    break;
                }
                dir = current.parent();
            }
            Ok(())
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn list(&self, request: &ListRequest) -> Result<ListPage> {
        let start_after = match request.continuation.as_deref() {
            Some(token) => Some(decode_token(token)?),
            None => request.start_after.clone(),
        };
        let max_keys = match request.max_keys {
            0 => DEFAULT_PAGE,
            requested => requested.min(MAX_PAGE),
        };
        let objects_dir = self.objects_dir.clone();
        let prefix = request.prefix.clone();
        let delimited = request.delimited;
        tokio::task::spawn_blocking(move || {
            list_blocking(
                &objects_dir,
                &prefix,
                delimited,
                start_after.as_deref(),
                max_keys,
            )
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // One walk of the tree: pages would re-read every directory on the way to the token.
        let objects_dir = self.objects_dir.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            list_blocking(&objects_dir, &prefix, false, None, usize::MAX - 1)
                .map(|page| page.objects)
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn list_all_for_display(&self, prefix: &str) -> Result<Arc<Vec<ObjectMeta>>> {
        // Only whole directories: a prefix ending inside a name reads its parent, whose other
        // entries' changes would invalidate it for nothing.
        if !prefix.ends_with('/') {
            return Ok(Arc::new(self.list_all(prefix).await?));
        }
        let objects_dir = self.objects_dir.clone();
        let shared = Arc::clone(&self.shared);
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(objects) = shared.listings.get(&prefix) {
                return Ok(objects);
            }
            let (objects, stamps) = list_all_stamped(&objects_dir, &prefix)?;
            let objects = Arc::new(objects);
            if stamps.is_some() {
                shared
                    .listings
                    .insert(&prefix, stamps, Arc::clone(&objects));
            }
            Ok(objects)
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn presign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
        content_md5: Option<[u8; 16]>,
    ) -> Result<String> {
        self.presigner.sign(method, key, expires_in, content_md5)
    }

    async fn rename(&self, from: &str, to: &str) -> Result<ObjectMeta> {
        let source = self.path_for(from)?;
        let target = self.path_for(to)?;
        let shared = Arc::clone(&self.shared);
        let (from, to) = (from.to_owned(), to.to_owned());
        tokio::task::spawn_blocking(move || {
            match fs::metadata(&source) {
                Ok(metadata) if metadata.is_file() => {}
                Ok(_) => return Err(StorageError::NotFound { key: from }),
                Err(error) if is_absent(&error) => {
                    return Err(StorageError::NotFound { key: from });
                }
                Err(error) => return Err(io_error("stat object", &error)),
            }
            {
                let _guard = shared
                    .lock_for(&to)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                with_parent(&to, &target, || fs::rename(&source, &target))?;
            }
            if let Some(parent) = source.parent() {
                sync_dir(parent).map_err(|error| io_error("fsync directory", &error))?;
            }
            let metadata =
                fs::metadata(&target).map_err(|error| io_error("stat object", &error))?;
            Ok(meta_of(&to, &metadata))
        })
        .await
        .map_err(|error| join_error(&error))?
    }

    async fn check(&self) -> Result<()> {
        let objects_dir = self.objects_dir.clone();
        let probe = self
            .tmp_dir
            .join(format!("check-{}.tmp", uuid::Uuid::new_v4().simple()));
        tokio::task::spawn_blocking(move || {
            let metadata = fs::metadata(&objects_dir).map_err(|error| {
                StorageError::Unavailable(format!("objects directory: {error}"))
            })?;
            if !metadata.is_dir() || metadata.permissions().readonly() {
                return Err(StorageError::Unavailable(
                    "objects directory is not a writable directory".into(),
                ));
            }
            fs::write(&probe, b"ok")
                .map_err(|error| StorageError::Unavailable(format!("tmp directory: {error}")))?;
            fs::remove_file(&probe)
                .map_err(|error| StorageError::Unavailable(format!("tmp directory: {error}")))
        })
        .await
        .map_err(|error| join_error(&error))?
    }
}

#[cfg(test)]
impl LocalStore {
    /// A store keeping its objects and temporary files inside `dir`, presigning with a
    /// throwaway key: for tests.
    pub(crate) fn open_for_tests(dir: &Path) -> Self {
        Self::open(
            dir.join("objects"),
            dir.join("tmp"),
            LocalPresigner::new(url::Url::parse("http://127.0.0.1:1").unwrap(), vec![7; 32]),
        )
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_what_format_writes() {
        for value in [
            0,
            1,
            9,
            10,
            15,
            16,
            255,
            4096,
            u128::from(u64::MAX),
            u128::MAX,
        ] {
            let mut out = String::from("x");
            push_hex(&mut out, value);
            assert_eq!(out, format!("x{value:x}"));
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_etag_is_inode_mtime_and_length_in_hex() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"hello").unwrap();
        let metadata = fs::metadata(&path).unwrap();
        let nanos = metadata
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
        assert_eq!(etag_of(&metadata), format!("{inode:x}-{nanos:x}-5"));
    }

    #[test]
    fn entries_sort_as_the_keys_they_lead_to() {
        // (name, is a directory): a directory sorts as its name followed by `/`.
        let names = [
            ("a", true),
            ("a-b", false),
            ("a.txt", false),
            ("a0", true),
            ("ab", false),
            ("", false),
            ("Z", true),
            ("a.", true),
            ("é", false),
            ("e", true),
        ];
        let mut entries: Vec<Entry> = names
            .iter()
            .map(|&(name, is_dir)| Entry {
                name: name.to_owned(),
                is_dir,
                metadata: None,
            })
            .collect();
        entries.sort_unstable_by(key_order);
        let sorted: Vec<String> = entries
            .iter()
            .map(|entry| format!("{}{}", entry.name, if entry.is_dir { "/" } else { "" }))
            .collect();
        let mut expected = sorted.clone();
        expected.sort();
        assert_eq!(sorted, expected);
        assert!(joined_after("a/", "b", "a/a"));
        assert!(!joined_after("a/", "b", "a/b"));
        assert!(joined_after("a/", "b", "a/"));
        assert!(!joined_after("a/", "b", "a/ba"));
    }

    /// A whole listing (one walk, metadata read relative to each directory) describes each
    /// object exactly as `head` does, and as the paged listing does.
    #[tokio::test]
    async fn a_whole_listing_describes_objects_as_head_and_pages_do() {
        use crate::storage::{ListRequest, ObjectStore as _, ObjectStoreExt as _, PutOptions};
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open_for_tests(dir.path());
        let keys: Vec<String> = (0..25)
            .map(|n| format!("p/v1/{}/f{n}.json", n % 3))
            .chain([
                "p/v1/..meta/version.json".to_owned(),
                "p/v1/x.bin".to_owned(),
            ])
            .collect();
        for key in &keys {
            store
                .put_bytes(key, bytes::Bytes::from(key.clone()), PutOptions::default())
                .await
                .unwrap();
        }
        let all = store.list_all("p/v1/").await.unwrap();
        let mut expected = keys.clone();
        expected.sort();
        let listed: Vec<&str> = all.iter().map(|meta| meta.key.as_str()).collect();
        assert_eq!(listed, expected);
        for meta in &all {
            assert_eq!(meta, &store.head(&meta.key).await.unwrap());
        }
        let mut paged = Vec::new();
        let mut request = ListRequest {
            prefix: "p/v1/".to_owned(),
            max_keys: 4,
            ..ListRequest::default()
        };
        loop {
            let page = store.list(&request).await.unwrap();
            paged.extend(page.objects);
            match page.next {
                Some(next) => request.continuation = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, all);
    }

    /// A batch read opens objects relative to their directory, kept from one object to the
    /// next: objects of several directories, in any order, absent ones, absent directories
    /// and a key naming a directory all read as `head` and one `get_bytes` each would.
    #[tokio::test]
    async fn a_batch_reads_each_object_as_one_read_would() {
        use crate::storage::{ObjectStore as _, ObjectStoreExt as _, PutOptions};
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open_for_tests(dir.path());
        let stored = [
            "p/v1/a.json",
            "p/v1/b.json",
            "p/v2/a.json",
            "p/v1/sub/c.json",
        ];
        for key in stored {
            let body = bytes::Bytes::from(format!("body of {key}"));
            store
                .put_bytes(key, body, PutOptions::default())
                .await
                .unwrap();
        }
        let asked = [
            "p/v1/a.json",
            "p/v1/missing.json",
            "p/v1/b.json",
            "p/v2/a.json",
            "p/v1/sub/c.json",
            "p/v1/a.json",
            "p/v3/a.json",
            "p/v3/b.json",
            "p/v1/sub",
            "p/v1/b.json",
        ];
        let read = store
            .read_whole_many(asked.iter().map(|key| (*key).to_owned()).collect())
            .await
            .unwrap();
        assert_eq!(read.len(), asked.len());
        for (key, found) in asked.iter().zip(read) {
            if stored.contains(key) {
                let (bytes, meta) = found.unwrap_or_else(|| panic!("{key} not read"));
                assert_eq!(bytes, format!("body of {key}").as_bytes(), "{key}");
                assert_eq!(meta, store.head(key).await.unwrap(), "{key}");
            } else {
                assert!(found.is_none(), "{key} read, but it is no object");
            }
        }
    }

    /// A read takes exactly the bytes the metadata of the open file describes: bytes
    /// appended after the open are not read; a file cut short fails the read.
    #[test]
    fn a_read_takes_the_size_the_file_had_when_opened() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        let (mut file, metadata) = open_object(&path, "f").unwrap();
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"appended")
            .unwrap();
        assert_eq!(
            read_sized(&mut file, metadata.len()).unwrap(),
            b"0123456789"
        );
        let (mut file, metadata) = open_object(&path, "f").unwrap();
        assert_eq!(metadata.len(), 18);
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4)
            .unwrap();
        let error = read_sized(&mut file, metadata.len()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn content_types_are_guessed_from_extensions() {
        assert_eq!(guess_content_type("p/v1/x.json"), Some("application/json"));
        assert_eq!(guess_content_type("p/v1/X.CSV"), Some("text/csv"));
        assert_eq!(guess_content_type("p/v1/.adbignore"), Some("text/plain"));
        assert_eq!(guess_content_type("p/v1/noext"), None);
        assert_eq!(guess_content_type("p/v1.json/noext"), None);
    }

    #[test]
    fn prefixes_split_into_directory_and_name_filter() {
        assert_eq!(split_prefix(""), Some(("", "")));
        assert_eq!(split_prefix("ab"), Some(("", "ab")));
        assert_eq!(split_prefix("a/b"), Some(("a/", "b")));
        assert_eq!(split_prefix("a/b/"), Some(("a/b/", "")));
        assert_eq!(split_prefix("p/.."), Some(("p/", "..")));
        assert_eq!(split_prefix("../x"), None);
        assert_eq!(split_prefix("a//b"), None);
        assert_eq!(split_prefix("/a"), None);
    }

    #[test]
    fn unique_mtimes_strictly_increase() {
        let shared = Shared {
            locks: Vec::new(),
            last_mtime_nanos: AtomicU64::new(0),
            listings: listing_cache::ListingCache::default(),
        };
        let first = shared.unique_mtime();
        let second = shared.unique_mtime();
        assert!(second > first);
    }
}
