//! The indexer: reads projects, versions and files from storage, resolves their permission
//! profiles through the permission engine, and hands the resulting documents to the single
//! writer.
//!
//! Per version it builds one document per metadata document (`*.json` outside `..meta`, not
//! listed in `.adbignore`), one automatic document per data file no metadata document
//! describes (and per link of `links.json`), and one document per project record. Each carries
//! `_extra` (SPEC §4) with `permissions` — the resolved profile exactly as the sync check
//! recomputes it — and the reader tokens the access filter matches. Re-indexing replaces a
//! version's or project's documents, so it is idempotent. Only `open` and `completed` versions
//! are indexed; an upload in progress is not searchable.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use serde_json::{Map, Value, json};

use super::SearchIndex;
use super::document::{DocKind, IndexDocument, Shared, permissions_hash};
use super::writer::WriteOp;
use crate::model::records::{
    FileRecord, NamespaceRecord, ProjectRecord, VersionRecord, VersionStatus,
};
use crate::permissions::{
    DocumentAccess, LifecycleState, Profile, ProfileLoader, ProfileLocation, ResolvedProfile,
    ScopeChain, effective_state,
};
use crate::storage::{
    ListRequest, ObjectMeta, ObjectStore, ObjectStoreExt as _, StorageError, keys,
};

/// How many versions of a project are read at once.
const VERSION_CONCURRENCY: usize = 4;
/// How many projects a full rebuild reads at once.
const PROJECT_CONCURRENCY: usize = 4;
/// Versions per writer batch during a full rebuild.
const REBUILD_BATCH_VERSIONS: usize = 64;
/// Documents a full rebuild hands to the writer between two commits. Each commit closes the
/// segments being built (one per indexing thread): committing every batch of 64 versions made
/// segments of ~1,600 documents whose term dictionaries and postings were written and then
/// merged again; tantivy's memory budget still bounds what is buffered (it flushes a
/// segment when full, without a commit).
const REBUILD_COMMIT_DOCUMENTS: usize = 100_000;
/// Largest project listed in one go by a rebuild (see `project_listing`).
const PROJECT_LISTING_LIMIT: usize = 100_000;

/// Errors of indexing.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] super::IndexError),
    /// A stored record or profile is not valid.
    #[error("invalid stored {what} at {key}: {message}")]
    InvalidRecord {
        /// What kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// Why.
        message: String,
    },
    /// An indexing task panicked or was cancelled.
    #[error("indexing task failed: {0}")]
    Task(String),
}

/// A spawned task that is aborted when dropped (an abandoned rebuild stops its readers).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(context)
    }
}

/// Result alias of the indexer.
pub type Result<T, E = IndexerError> = std::result::Result<T, E>;

/// What an indexing run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexReport {
    /// Projects visited.
    pub projects: usize,
    /// Versions indexed.
    pub versions: usize,
    /// Documents written.
    pub documents: usize,
    /// Earliest future expiry of a grant among the documents (re-index then).
    pub next_expiry: Option<DateTime<Utc>>,
}

impl IndexReport {
    fn absorb(&mut self, other: &Self) {
        self.projects += other.projects;
        self.versions += other.versions;
        self.documents += other.documents;
        self.next_expiry = match (self.next_expiry, other.next_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// What one listing of a version tells.
#[derive(Debug, Default)]
pub struct VersionListing {
    /// Files (relative path → object), `..meta/` and `.adbignore` excluded.
    pub files: BTreeMap<String, ObjectMeta>,
    /// Sidecar records: (file path, sidecar key).
    pub sidecar_keys: Vec<(String, String)>,
    /// The listed ETag of each sidecar key.
    pub sidecar_etags: HashMap<String, String>,
    /// Paths of `.adbignore`.
    pub ignored: HashSet<String>,
    /// `links.json`: path → link.
    pub links: BTreeMap<String, Value>,
    /// The ETag of the `links.json` read for [`links`](Self::links), `None` when none was
    /// read.
    pub links_etag: Option<String>,
}

/// What the global sync check expects of a version, from one listing.
#[derive(Debug, Clone, Default)]
pub struct VersionSummary {
    /// Files whose documents the index should hold (metadata documents, data files, links).
    pub files: BTreeSet<String>,
    /// Hash of the version's resolved profile.
    pub perm_hash: u64,
}

/// Whether `.adbignore` excludes `path` (exact paths, or directories ending in `/`).
fn is_ignored(ignored: &HashSet<String>, path: &str) -> bool {
    ignored.contains(path)
        || ignored
            .iter()
            .any(|entry| entry.ends_with('/') && path.starts_with(entry.as_str()))
}

/// Reads storage and feeds the index.
#[derive(Debug, Clone)]
pub struct Indexer {
    storage: Arc<dyn ObjectStore>,
    profiles: Arc<ProfileLoader>,
    index: Arc<SearchIndex>,
    expiries: Arc<super::expiry::ExpiryTracker>,
    /// Largest metadata document parsed; a bigger `.json` is indexed as a plain file and
    /// flagged `_extra.oversized` (never read whole).
    max_document_bytes: u64,
    /// The time grant expiry is decided against.
    clock: crate::clock::Clock,
    /// What re-indexes failed or were dropped before they ended, until the same succeeds
    /// (see [`Indexer::may_lack_changes`]).
    missed: Arc<super::missed::Missed>,
}

/// Default of [`Indexer::with_max_document_bytes`] (the API's default JSON cap).
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 2 * 1024 * 1024;

/// What the indexer knows about a project while indexing its versions.
#[derive(Debug, Clone)]
pub struct ProjectContext {
    /// The project record.
    pub record: ProjectRecord,
    /// Its namespace's state, when it has a namespace.
    pub namespace_state: Option<LifecycleState>,
    /// Profiles of the scopes above the version.
    pub project_profile: Option<Profile>,
    /// The namespace's profile.
    pub namespace_profile: Option<Profile>,
    /// The global profile.
    pub global_profile: Option<Profile>,
}

impl ProjectContext {
    /// The resolved profile of a version with `version_profile` (or of the project itself with
    /// `None`).
    #[must_use]
    pub fn resolve(&self, version_profile: Option<Profile>) -> ResolvedProfile {
        ScopeChain {
            version: version_profile,
            project: self.project_profile.clone(),
            namespace: self.namespace_profile.clone(),
            global: self.global_profile.clone(),
        }
        .resolve()
    }
}

/// Parses a stored JSON record.
fn parse_record<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| IndexerError::InvalidRecord {
        what,
        key: key.to_owned(),
        message: error.to_string(),
    })
}

/// Objects per [`ObjectStore::read_whole_many`] call of [`read_batched`]: one blocking call
/// on local storage reads this many small documents, and stays well inside the storage
/// timeout.
const READ_BATCH: usize = 64;

/// [`read_batched`]'s calls in flight at once (local storage: two blocking reads, one per
/// core; S3: each call reads [`crate::storage::READ_MANY_CONCURRENCY`] objects at once).
const READ_BATCHES_IN_FLIGHT: usize = 2;

/// Reads the objects of `keys` (`None` for an absent one), in order, [`READ_BATCH`] per call
/// and [`READ_BATCHES_IN_FLIGHT`] calls at once.
async fn read_batched(
    storage: &dyn ObjectStore,
    keys: Vec<String>,
) -> Result<Vec<Option<(bytes::Bytes, ObjectMeta)>>> {
    let batches: Vec<Vec<String>> = keys.chunks(READ_BATCH).map(<[String]>::to_vec).collect();
    let read: Vec<Vec<_>> = futures::stream::iter(batches)
        .map(|batch| storage.read_whole_many(batch))
        .buffered(READ_BATCHES_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(read.into_iter().flatten().collect())
}

/// Reads an optional object: `None` when absent.
async fn read_optional(
    storage: &dyn ObjectStore,
    key: &str,
) -> Result<Option<(bytes::Bytes, ObjectMeta)>> {
    match storage.get_bytes(key).await {
        Ok(found) => Ok(Some(found)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

impl Indexer {
    /// An indexer over `storage`, resolving profiles with `profiles`, writing into `index`.
    #[must_use]
    pub fn new(
        storage: Arc<dyn ObjectStore>,
        profiles: Arc<ProfileLoader>,
        index: Arc<SearchIndex>,
    ) -> Self {
        Self {
            storage,
            profiles,
            index,
            expiries: Arc::new(super::expiry::ExpiryTracker::new()),
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            clock: crate::clock::Clock::system(),
            missed: Arc::default(),
        }
    }

    /// Whether a re-index of this process failed or was dropped unfinished and nothing
    /// covering it succeeded since: the index may then lack a change of storage (until a sync
    /// check repairs it), so a shutdown does not record it as complete.
    #[must_use]
    pub fn may_lack_changes(&self) -> bool {
        self.missed.any()
    }

    /// Decides grant expiry against `clock` instead of the system time.
    #[must_use]
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The time grant expiry is decided against.
    #[must_use]
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// Sets the largest metadata document the indexer parses.
    #[must_use]
    pub fn with_max_document_bytes(mut self, bytes: u64) -> Self {
        self.max_document_bytes = bytes;
        self
    }

    /// Grant expiries noted while indexing (acted on by `jobs::schedule`).
    #[must_use]
    pub fn expiries(&self) -> &Arc<super::expiry::ExpiryTracker> {
        &self.expiries
    }

    /// The storage the indexer reads.
    #[must_use]
    pub fn storage(&self) -> &Arc<dyn ObjectStore> {
        &self.storage
    }

    /// The index the indexer writes.
    #[must_use]
    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.index
    }

    /// Lists a version once: its files, sidecars, `.adbignore` entries and links.
    pub async fn version_listing(&self, project: &str, version: &str) -> Result<VersionListing> {
        let objects = self
            .storage
            .list_all(&keys::version_prefix(project, version))
            .await?;
        self.listing_of(project, version, objects).await
    }

    /// The objects under a version for display (`GET …/files`): the storage listing may come
    /// from the local backend's validated cache ([`ObjectStore::list_all_for_display`]), the
    /// same `Arc` while unchanged; never for indexing. [`listing_of`](Self::listing_of) makes
    /// the version's listing of them.
    pub async fn version_objects_for_display(
        &self,
        project: &str,
        version: &str,
    ) -> Result<Arc<Vec<ObjectMeta>>> {
        Ok(self
            .storage
            .list_all_for_display(&keys::version_prefix(project, version))
            .await?)
    }

    /// A version's listing from its objects, already listed (every key under
    /// `<project>/<version>/`).
    pub async fn listing_of(
        &self,
        project: &str,
        version: &str,
        objects: Vec<ObjectMeta>,
    ) -> Result<VersionListing> {
        let prefix = keys::version_prefix(project, version);
        let sidecar_prefix = format!("{}/files/", keys::META);
        let meta_prefix = format!("{}/", keys::META);
        let mut files: BTreeMap<String, ObjectMeta> = BTreeMap::new();
        let mut sidecar_keys: Vec<(String, String)> = Vec::new();
        let mut sidecar_etags: HashMap<String, String> = HashMap::new();
        let mut has_adbignore = false;
        let mut has_links = false;
        for object in objects {
            let Some(relative) = object.key.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(meta_path) = relative.strip_prefix(&meta_prefix) {
                if let Some(file_path) = relative
                    .strip_prefix(&sidecar_prefix)
                    .and_then(|rest| rest.strip_suffix(".json"))
                {
                    sidecar_keys.push((file_path.to_owned(), object.key.clone()));
                    sidecar_etags.insert(object.key.clone(), object.etag.clone());
                } else if meta_path == "links.json" {
                    has_links = true;
                }
                continue;
            }
            if relative == ".adbignore" {
                has_adbignore = true;
                continue;
            }
            files.insert(relative.to_owned(), object);
        }
        let ignored: HashSet<String> = if has_adbignore {
            let key = keys::version_adbignore(project, version);
            match read_optional(self.storage.as_ref(), &key).await? {
                Some((bytes, _)) => String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|line| line.trim().trim_start_matches("./").to_owned())
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .collect(),
                None => HashSet::new(),
            }
        } else {
            HashSet::new()
        };
        let mut links_etag = None;
        let links: BTreeMap<String, Value> = if has_links {
            let key = keys::version_links(project, version);
            match read_optional(self.storage.as_ref(), &key).await? {
                Some((bytes, meta)) => {
                    links_etag = Some(meta.etag);
                    parse_record("links file", &key, &bytes)?
                }
                None => BTreeMap::new(),
            }
        } else {
            BTreeMap::new()
        };
        Ok(VersionListing {
            files,
            sidecar_keys,
            sidecar_etags,
            ignored,
            links,
            links_etag,
        })
    }

    /// What the sync check expects of a version (one record read, one profile read, one
    /// listing); `None` when the version record is absent.
    pub async fn version_summary(
        &self,
        context: &ProjectContext,
        version: &str,
    ) -> Result<Option<VersionSummary>> {
        let project = context.record.project_id.as_str();
        let record_key = keys::version_record(project, version);
        let Some((bytes, _)) = read_optional(self.storage.as_ref(), &record_key).await? else {
            return Ok(None);
        };
        let record: VersionRecord = parse_record("version record", &record_key, &bytes)?;
        let version_profile = self
            .load_profile(&ProfileLocation::Version {
                project: project.to_owned(),
                version: version.to_owned(),
            })
            .await?;
        let permissions = context.resolve(version_profile).to_json_value();
        if record.status == VersionStatus::Uploading {
            return Ok(Some(VersionSummary {
                files: BTreeSet::new(),
                perm_hash: state_hash(&permissions, context, Some((&record, 0))),
            }));
        }
        let listing = self.version_listing(project, version).await?;
        let content = content_hash(&listing.files, &listing.ignored);
        let perm_hash = state_hash(&permissions, context, Some((&record, content)));
        let mut files: BTreeSet<String> = listing
            .files
            .keys()
            .filter(|path| !is_ignored(&listing.ignored, path))
            .cloned()
            .collect();
        files.extend(
            listing
                .links
                .keys()
                .filter(|path| !is_ignored(&listing.ignored, path))
                .cloned(),
        );
        Ok(Some(VersionSummary { files, perm_hash }))
    }

    /// Reads one profile from storage, bypassing the loader's cache.
    pub async fn load_profile(&self, location: &ProfileLocation) -> Result<Option<Profile>> {
        self.profiles
            .load_uncached(location)
            .await
            .map(|stored| stored.map(|stored| stored.profile))
            .map_err(|error| IndexerError::InvalidRecord {
                what: "permission profile",
                key: location.key(),
                message: error.to_string(),
            })
    }

    /// Every project id in storage (top-level prefixes other than `..meta/`).
    pub async fn project_ids(&self) -> Result<Vec<String>> {
        let prefixes = self.storage.list_prefixes("").await?;
        Ok(prefixes
            .into_iter()
            .filter_map(|prefix| prefix.strip_suffix('/').map(str::to_owned))
            .filter(|name| name != keys::META)
            .collect())
    }

    /// Every version name of a project (sub-prefixes other than `..meta/`).
    pub async fn version_names(&self, project: &str) -> Result<Vec<String>> {
        let base = keys::project_prefix(project);
        let prefixes = self.storage.list_prefixes(&base).await?;
        Ok(prefixes
            .into_iter()
            .filter_map(|prefix| {
                prefix
                    .strip_prefix(&base)
                    .and_then(|rest| rest.strip_suffix('/'))
                    .map(str::to_owned)
            })
            .filter(|name| name != keys::META)
            .collect())
    }

    /// Loads what the versions of a project share; `None` when the project record is absent.
    pub async fn project_context(&self, project: &str) -> Result<Option<ProjectContext>> {
        let record_key = keys::project_record(project);
        let Some((bytes, _)) = read_optional(self.storage.as_ref(), &record_key).await? else {
            return Ok(None);
        };
        let record: ProjectRecord = parse_record("project record", &record_key, &bytes)?;
        let (namespace_state, namespace_profile) = match &record.namespace {
            Some(namespace) => {
                let key = keys::namespace_record(namespace);
                let state = match read_optional(self.storage.as_ref(), &key).await? {
                    Some((bytes, _)) => Some(
                        parse_record::<NamespaceRecord>("namespace record", &key, &bytes)?.state,
                    ),
                    None => Some(LifecycleState::Active),
                };
                let profile = self
                    .load_profile(&ProfileLocation::Namespace(namespace.clone()))
                    .await?;
                (state, profile)
            }
            None => (None, None),
        };
        let project_profile = self
            .load_profile(&ProfileLocation::Project(project.to_owned()))
            .await?;
        let global_profile = self.load_profile(&ProfileLocation::Global).await?;
        Ok(Some(ProjectContext {
            record,
            namespace_state,
            project_profile,
            namespace_profile,
            global_profile,
        }))
    }

    /// The project record's document.
    #[must_use]
    pub fn project_document(&self, context: &ProjectContext, now: DateTime<Utc>) -> IndexDocument {
        let record = &context.record;
        let profile = context.resolve(None);
        let state = effective_state(context.namespace_state, Some(record.state), None);
        let access = DocumentAccess::from_target(
            &profile,
            state,
            Some(&record.project_id),
            record.namespace.as_deref(),
            now,
        );
        let permissions = profile.to_json_value();
        let perm_hash = state_hash(&permissions, context, None);
        let mut source = serde_json::to_value(record).unwrap_or_else(|_| json!({}));
        if let Some(object) = source.as_object_mut() {
            let extra = super::extra::ProjectExtra {
                id: &record.project_id,
                kind: "project",
                project_id: &record.project_id,
                namespace: record.namespace.as_deref(),
                project_type: record.project_type,
                title: &record.title,
                state,
                meta_indexed: now,
            };
            object.insert(
                "_extra".to_owned(),
                serde_json::to_value(extra).unwrap_or_else(|_| json!({})),
            );
        }
        IndexDocument {
            id: record.project_id.clone(),
            kind: DocKind::Project,
            project_id: record.project_id.clone(),
            version: None,
            path: None,
            file_key: None,
            perm_hash,
            namespace: record.namespace.clone(),
            numerical_revision: None,
            uploaded: Some(record.created_at),
            access: Shared::new(access),
            state: state.as_str().to_owned(),
            source,
            version_extra: None,
            permissions: Shared::new(permissions),
            project_text: Arc::new(super::document::ProjectText::of(record)),
        }
    }

    /// The documents of one version (empty when the version is absent or an upload is in
    /// progress), with the earliest grant expiry among them.
    pub async fn version_documents(
        &self,
        context: &ProjectContext,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<IndexDocument>, Option<DateTime<Utc>>)> {
        self.version_documents_listed(context, version, now, None)
            .await
    }

    /// [`version_documents`](Self::version_documents), with the version's objects already
    /// listed when `listed` is given (a rebuild lists a whole project at once).
    async fn version_documents_listed(
        &self,
        context: &ProjectContext,
        version: &str,
        now: DateTime<Utc>,
        listed: Option<Vec<ObjectMeta>>,
    ) -> Result<(Vec<IndexDocument>, Option<DateTime<Utc>>)> {
        let project = context.record.project_id.as_str();
        let record_key = keys::version_record(project, version);
        let Some((bytes, _)) = read_optional(self.storage.as_ref(), &record_key).await? else {
            return Ok((Vec::new(), None));
        };
        let record: VersionRecord = parse_record("version record", &record_key, &bytes)?;
        if record.status == VersionStatus::Uploading {
            return Ok((Vec::new(), None));
        }
        let version_profile = self
            .load_profile(&ProfileLocation::Version {
                project: project.to_owned(),
                version: version.to_owned(),
            })
            .await?;
        let profile = context.resolve(version_profile);
        let state = effective_state(
            context.namespace_state,
            Some(context.record.state),
            Some(record.state),
        );
        let access = DocumentAccess::from_target(
            &profile,
            state,
            Some(project),
            context.record.namespace.as_deref(),
            now,
        );
        let permissions = profile.to_json_value();

        let VersionListing {
            files,
            sidecar_keys,
            ignored,
            links,
            ..
        } = match listed {
            Some(objects) => self.listing_of(project, version, objects).await?,
            None => self.version_listing(project, version).await?,
        };
        let is_ignored = |path: &str| is_ignored(&ignored, path);

        // Sidecars (size and checksums recorded at upload) and metadata documents, read
        // concurrently.
        let storage = self.storage.clone();
        let (sidecar_paths, sidecar_keys): (Vec<String>, Vec<String>) =
            sidecar_keys.into_iter().unzip();
        let sidecars: HashMap<String, FileRecord> = sidecar_paths
            .into_iter()
            .zip(read_batched(storage.as_ref(), sidecar_keys).await?)
            .filter_map(|(path, found)| {
                let (bytes, _) = found?;
                serde_json::from_slice::<FileRecord>(&bytes)
                    .ok()
                    .map(|record| (path, record))
            })
            .collect();

        let limit = self.max_document_bytes;
        let oversized: HashSet<&str> = files
            .iter()
            .filter(|(path, meta)| path.ends_with(".json") && meta.size > limit)
            .map(|(path, _)| path.as_str())
            .collect();
        let metadata_paths: Vec<String> = files
            .keys()
            .filter(|path| {
                path.ends_with(".json") && !is_ignored(path) && !oversized.contains(path.as_str())
            })
            .cloned()
            .collect();
        let metadata_keys = metadata_paths
            .iter()
            .map(|path| keys::version_file(project, version, path))
            .collect();
        let metadata: Vec<(String, Option<Map<String, Value>>)> = metadata_paths
            .into_iter()
            .zip(read_batched(storage.as_ref(), metadata_keys).await?)
            .map(|(path, found)| {
                let object =
                    found.and_then(|(bytes, _)| match serde_json::from_slice::<Value>(&bytes) {
                        Ok(Value::Object(object)) => Some(object),
                        _ => None,
                    });
                (path, object)
            })
            .collect();

        let next_expiry = access.next_expiry;
        let base = VersionBase {
            context,
            record: &record,
            state,
            access: Shared::new(access),
            perm_hash: state_hash(
                &permissions,
                context,
                Some((&record, content_hash(&files, &ignored))),
            ),
            permissions: Shared::new(permissions),
            project_text: Arc::new(super::document::ProjectText::of(&context.record)),
            extra_template: VersionBase::extra_template(context, &record, state, now),
        };
        let mut documents = Vec::new();
        let mut described: HashSet<String> = HashSet::new();
        for (metapath, object) in metadata {
            let Some(object) = object else {
                // Not a JSON object: indexed as a plain data file below.
                continue;
            };
            let path = object
                .get("path")
                .and_then(Value::as_str)
                .filter(|path| crate::model::names::validate_path(path).is_ok())
                .unwrap_or(&metapath)
                .to_owned();
            described.insert(path.clone());
            described.insert(metapath.clone());
            let data = files.get(&path);
            let meta = files.get(&metapath);
            documents.push(base.document(
                &path,
                Some(&metapath),
                object,
                data.map(|meta| (meta, sidecars.get(&path))),
                meta,
                links.get(&path),
            ));
        }
        for (path, meta) in &files {
            if described.contains(path) || is_ignored(path) {
                continue;
            }
            let mut document = base.automatic(path, Some((meta, sidecars.get(path))), None);
            if oversized.contains(path.as_str())
                && let Some(extra) = document
                    .source
                    .get_mut("_extra")
                    .and_then(Value::as_object_mut)
            {
                extra.insert("oversized".to_owned(), Value::Bool(true));
            }
            documents.push(document);
        }
        for (path, target) in &links {
            if described.contains(path) || files.contains_key(path) || is_ignored(path) {
                continue;
            }
            documents.push(base.automatic(path, None, Some(target)));
        }
        Ok((documents, next_expiry))
    }

    /// Re-indexes one version (after an upload, a completion, a profile or state change),
    /// under its project's lock, again when another update of the project applied while this
    /// one read (see [`super::serial`]).
    pub async fn index_version(&self, project: &str, version: &str) -> Result<IndexReport> {
        let guard = self.missed.guard(super::missed::Covered::Version(
            project.to_owned(),
            version.to_owned(),
        ));
        guard.settle(self.index_version_serialized(project, version).await)
    }

    /// [`Indexer::index_version`] without the failure mark.
    async fn index_version_serialized(&self, project: &str, version: &str) -> Result<IndexReport> {
        let _turn = self.index.serial().lock(project).await;
        loop {
            let ticket = self.index.serial().ticket(project);
            let report = self.index_version_once(project, version).await?;
            if self.index.serial().applied(project, ticket) {
                return Ok(report);
            }
        }
    }

    /// Re-indexes one whole project under its lock, again while another update of it applied
    /// in between.
    async fn index_project_serialized(&self, project: &str) -> Result<()> {
        let _turn = self.index.serial().lock(project).await;
        loop {
            let ticket = self.index.serial().ticket(project);
            let (ops, _) = self.project_ops(project, self.clock.now()).await?;
            self.index.writer().apply(ops).await?;
            if self.index.serial().applied(project, ticket) {
                return Ok(());
            }
        }
    }

    /// One read and apply of [`Indexer::index_version`].
    async fn index_version_once(&self, project: &str, version: &str) -> Result<IndexReport> {
        let now = self.clock.now();
        let owner = format!("{project}/{version}");
        let Some(context) = self.project_context(project).await? else {
            self.index
                .writer()
                .apply(vec![WriteOp::Replace {
                    owner,
                    documents: Vec::new(),
                }])
                .await?;
            return Ok(IndexReport::default());
        };
        let (documents, next_expiry) = self.version_documents(&context, version, now).await?;
        self.expiries.note(project, next_expiry);
        let fields = *self.index.fields();
        let report = IndexReport {
            projects: 0,
            versions: 1,
            documents: documents.len(),
            next_expiry,
        };
        self.index
            .writer()
            .apply(vec![WriteOp::Replace {
                owner,
                documents: documents
                    .into_iter()
                    .map(|d| d.into_tantivy(&fields))
                    .collect(),
            }])
            .await?;
        Ok(report)
    }

    /// The operations re-indexing a whole project: delete all its documents, then add the
    /// record's and every version's.
    pub async fn project_ops(
        &self,
        project: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<WriteOp>, IndexReport)> {
        let mut ops = vec![WriteOp::DeleteProject(project.to_owned())];
        let mut report = IndexReport::default();
        let Some(context) = self.project_context(project).await? else {
            return Ok((ops, report));
        };
        let fields = *self.index.fields();
        report.projects = 1;
        let project_document = self.project_document(&context, now);
        report.next_expiry = project_document.access.next_expiry;
        ops.push(WriteOp::Replace {
            owner: project_document.owner_key(),
            documents: vec![project_document.into_tantivy(&fields)],
        });
        report.documents += 1;
        // Versions are read concurrently (storage round trips dominate), their operations
        // kept in order.
        let versions = self.version_names(project).await?;
        let mut listed =
            project_listing(self.storage.as_ref(), project, PROJECT_LISTING_LIMIT).await?;
        let mut built = futures::stream::iter(versions)
            .map(|version| {
                let context = &context;
                let objects = listed
                    .as_mut()
                    .map(|by_version| by_version.remove(&version).unwrap_or_default());
                // Boxed: the stream's future type is then `Send` for the job runner (rustc
                // cannot prove it through the nested lifetimes otherwise).
                async move {
                    let documents = self
                        .version_documents_listed(context, &version, now, objects)
                        .await?;
                    Ok::<_, IndexerError>((version, documents))
                }
                .boxed()
            })
            .buffered(VERSION_CONCURRENCY);
        while let Some((version, (documents, next_expiry))) = built.try_next().await? {
            report.absorb(&IndexReport {
                projects: 0,
                versions: 1,
                documents: documents.len(),
                next_expiry,
            });
            ops.push(WriteOp::Replace {
                owner: format!("{project}/{version}"),
                documents: documents
                    .into_iter()
                    .map(|d| d.into_tantivy(&fields))
                    .collect(),
            });
        }
        self.expiries.note(project, report.next_expiry);
        Ok((ops, report))
    }

    /// Re-indexes whole projects (all of them when `projects` is `None`), batching commits.
    pub async fn index_projects(
        &self,
        projects: Option<Vec<String>>,
        progress: impl FnMut(usize, usize) + Send,
    ) -> Result<IndexReport> {
        let guard = self.missed.guard(match &projects {
            Some(projects) => super::missed::Covered::Projects(projects.clone()),
            None => super::missed::Covered::All,
        });
        guard.settle(self.index_projects_unguarded(projects, progress).await)
    }

    /// [`Indexer::index_projects`] without the failure mark.
    async fn index_projects_unguarded(
        &self,
        projects: Option<Vec<String>>,
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<IndexReport> {
        let now = self.clock.now();
        let projects = match projects {
            Some(projects) => projects,
            None => self.project_ids().await?,
        };
        let total = projects.len();
        let mut report = IndexReport::default();
        let mut pending: Vec<WriteOp> = Vec::new();
        let mut pending_versions = 0;
        // Several projects are read at once, each in its own task so that parsing and
        // document building spread over the runtime's worker threads (a `buffered` stream
        // alone polls them all on one); their operations are applied in order.
        let mut built = futures::stream::iter(projects)
            .map(|project| {
                let indexer = self.clone();
                let task = AbortOnDrop(tokio::spawn(async move {
                    let ticket = indexer.index.serial().ticket(&project);
                    let built = indexer.project_ops(&project, now).await?;
                    Ok::<_, IndexerError>((project, ticket, built))
                }));
                async move {
                    task.await
                        .map_err(|error| IndexerError::Task(error.to_string()))?
                }
            })
            .buffered(PROJECT_CONCURRENCY);
        let mut done = 0;
        let mut uncommitted_documents = 0;
        // One batch is handed to the writer while the next is read (at most two batches in
        // memory); most are not committed on their own (see `REBUILD_COMMIT_DOCUMENTS`).
        let mut committing = None;
        let mut pending_documents = 0;
        let mut tickets = Vec::with_capacity(total);
        while let Some((project, ticket, (ops, project_report))) = built.try_next().await? {
            tickets.push((project, ticket));
            done += 1;
            pending_versions += project_report.versions + 1;
            pending_documents += project_report.documents;
            pending.extend(ops);
            report.absorb(&project_report);
            if pending_versions >= REBUILD_BATCH_VERSIONS {
                if let Some(previous) = committing.take() {
                    previous.await?;
                }
                uncommitted_documents += pending_documents;
                let batch = std::mem::take(&mut pending);
                committing = Some(if uncommitted_documents >= REBUILD_COMMIT_DOCUMENTS {
                    uncommitted_documents = 0;
                    self.index.writer().submit(batch)?.boxed()
                } else {
                    self.index.writer().submit_uncommitted(batch)?.boxed()
                });
                pending_versions = 0;
                pending_documents = 0;
            }
            progress(done, total);
        }
        if let Some(previous) = committing {
            previous.await?;
        }
        // Always a last commit: the batches sent uncommitted become visible with it.
        self.index.writer().apply(pending).await?;
        // A project another update applied while this read it may now hold the older of the
        // two snapshots: read it again, alone.
        for (project, ticket) in tickets {
            if !self.index.serial().applied(&project, ticket) {
                self.index_project_serialized(&project).await?;
            }
        }
        Ok(report)
    }
}

/// Size, MD5, SHA-256, content type and upload time of a document's data file: from its
/// upload sidecar where there is one, else from the object.
type FileFacts = (
    Option<u64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
);

fn file_facts(data: Option<(&ObjectMeta, Option<&FileRecord>)>) -> FileFacts {
    match data {
        Some((object, sidecar)) => (
            Some(sidecar.map_or(object.size, |s| s.size)),
            sidecar.map(|s| s.md5sum.clone()),
            sidecar.map(|s| s.sha256.clone()),
            sidecar
                .and_then(|s| s.content_type.clone())
                .or_else(|| object.content_type.clone()),
            Some(sidecar.map_or(object.last_modified, |s| s.uploaded_at)),
        ),
        None => (None, None, None, None, None),
    }
}

/// Every object of a project grouped by version, in one recursive listing (one request per
/// 1,000 keys on S3 instead of one listing per version); `None` when the project holds more
/// than `limit` objects, whose versions are then listed one by one so memory stays bounded.
async fn project_listing(
    storage: &dyn ObjectStore,
    project: &str,
    limit: usize,
) -> Result<Option<HashMap<String, Vec<ObjectMeta>>>> {
    let base = keys::project_prefix(project);
    let mut request = ListRequest {
        prefix: base.clone(),
        ..ListRequest::default()
    };
    let mut by_version: HashMap<String, Vec<ObjectMeta>> = HashMap::new();
    let mut count = 0_usize;
    loop {
        let page = storage.list(&request).await?;
        count += page.objects.len();
        if count > limit {
            return Ok(None);
        }
        for object in page.objects {
            let Some(version) = object
                .key
                .strip_prefix(&base)
                .and_then(|rest| rest.split_once('/'))
                .map(|(version, _)| version.to_owned())
            else {
                continue;
            };
            by_version.entry(version).or_default().push(object);
        }
        match page.next {
            Some(next) => request.continuation = Some(next),
            None => return Ok(Some(by_version)),
        }
    }
}

/// The hash every document stores in `perm_hash`: of the resolved profile (`permissions`),
/// the project record's indexed fields and its namespace's state, and for a version's
/// documents the version record's status, state, stable mark, revision and expiry, and the
/// [`content_hash`] of its metadata documents. Any of these changing in storage without a
/// re-index is drift the sync check sees.
#[must_use]
pub fn state_hash(
    permissions: &Value,
    context: &ProjectContext,
    version: Option<(&VersionRecord, u64)>,
) -> u64 {
    let project = &context.record;
    permissions_hash(&json!({
        "permissions": permissions,
        "project": {
            "title": project.title,
            "type": project.project_type,
            "description": project.description,
            "tags": project.tags,
            "namespace": project.namespace,
            "state": project.state,
            "namespace_state": context.namespace_state,
        },
        "version": version.map(|(record, content)| json!({
            "content": content,
            "status": record.status,
            "state": record.state,
            "stable": record.stable,
            "revision": record.revision,
            "numerical_revision": record.numerical_revision,
            "completed_at": record.completed_at,
            "expires_at": record.expires_at,
        })),
    }))
}

/// The hash of a version's metadata documents as listed: path, size and ETag of every `.json`
/// file not ignored. A document rewritten in place changes it.
#[must_use]
pub fn content_hash(files: &BTreeMap<String, ObjectMeta>, ignored: &HashSet<String>) -> u64 {
    let listed: Vec<(&str, u64, &str)> = files
        .iter()
        .filter(|(path, _)| path.ends_with(".json") && !is_ignored(ignored, path))
        .map(|(path, meta)| (path.as_str(), meta.size, meta.etag.as_str()))
        .collect();
    super::document::json_hash(&listed)
}

/// What every document of one version shares.
struct VersionBase<'a> {
    context: &'a ProjectContext,
    record: &'a VersionRecord,
    state: LifecycleState,
    access: Shared<DocumentAccess>,
    perm_hash: u64,
    permissions: Shared<Value>,
    project_text: Arc<super::document::ProjectText>,
    /// The entries of `_extra` every document of the version has alike (an object), shared
    /// by its documents as [`IndexDocument::version_extra`].
    extra_template: Arc<Value>,
}

impl VersionBase<'_> {
    /// The version-wide entries of `_extra`, built once per version and shared by its
    /// documents (each document's own `_extra` holds only the entries of its file).
    fn extra_template(
        context: &ProjectContext,
        record: &VersionRecord,
        state: LifecycleState,
        now: DateTime<Utc>,
    ) -> Arc<Value> {
        let project = &context.record;
        let shared = super::extra::VersionExtra {
            kind: "file",
            project_id: &project.project_id,
            version: &record.version,
            namespace: project.namespace.as_deref(),
            revision: record.revision.as_deref(),
            numerical_revision: record.numerical_revision,
            project_type: project.project_type,
            title: &project.title,
            meta_indexed: now,
            state,
            stable: record.stable,
            transient: record.expires_at.is_some(),
            status: record.status,
        };
        Arc::new(serde_json::to_value(shared).unwrap_or_else(|_| json!({})))
    }

    /// The ArtifactDB id of the version's file `path` (`project:path@version`) and the file's
    /// own entries of `_extra` (which hold the id too).
    fn extra(
        &self,
        path: &str,
        metapath: Option<&str>,
        schema: Option<&Value>,
        data: Option<(&ObjectMeta, Option<&FileRecord>)>,
        meta: Option<&ObjectMeta>,
        link: Option<&Value>,
    ) -> (String, Value) {
        let project = &self.context.record;
        let id = format!("{}:{}@{}", project.project_id, path, self.record.version);
        let (size, md5, sha256, content_type, uploaded) = file_facts(data);
        // With the version's entries (`extra_template`), the same object as one `json!`
        // literal of all the entries would build.
        let own = super::extra::FileExtra {
            id: &id,
            path,
            metapath,
            schema,
            uploaded,
            meta_uploaded: meta.map(|m| m.last_modified),
            file_size: size,
            md5sum: md5.as_deref(),
            sha256: sha256.as_deref(),
            content_type: content_type.as_deref(),
            link: link.map(|target| super::extra::LinkExtra {
                artifactdb: target.get("id"),
            }),
        };
        let extra = serde_json::to_value(own).unwrap_or_else(|_| json!({}));
        (id, extra)
    }

    fn index_document(
        &self,
        id: String,
        path: &str,
        file_key: &str,
        source: Value,
        uploaded: Option<DateTime<Utc>>,
    ) -> IndexDocument {
        let project = &self.context.record;
        IndexDocument {
            id,
            kind: DocKind::File,
            project_id: project.project_id.clone(),
            version: Some(self.record.version.clone()),
            path: Some(path.to_owned()),
            file_key: Some(file_key.to_owned()),
            perm_hash: self.perm_hash,
            namespace: project.namespace.clone(),
            numerical_revision: self.record.numerical_revision,
            uploaded,
            access: self.access.clone(),
            state: self.state.as_str().to_owned(),
            source,
            version_extra: Some(self.extra_template.clone()),
            permissions: self.permissions.clone(),
            project_text: self.project_text.clone(),
        }
    }

    fn document(
        &self,
        path: &str,
        metapath: Option<&str>,
        mut object: Map<String, Value>,
        data: Option<(&ObjectMeta, Option<&FileRecord>)>,
        meta: Option<&ObjectMeta>,
        link: Option<&Value>,
    ) -> IndexDocument {
        let (id, extra) = self.extra(path, metapath, object.get("$schema"), data, meta, link);
        let uploaded =
            data.map(|(object, sidecar)| sidecar.map_or(object.last_modified, |s| s.uploaded_at));
        object.insert("_extra".to_owned(), extra);
        self.index_document(
            id,
            path,
            metapath.unwrap_or(path),
            Value::Object(object),
            uploaded,
        )
    }

    fn automatic(
        &self,
        path: &str,
        data: Option<(&ObjectMeta, Option<&FileRecord>)>,
        link: Option<&Value>,
    ) -> IndexDocument {
        let (id, extra) = self.extra(path, None, None, data, None, link);
        let mut object = Map::new();
        object.insert("path".to_owned(), Value::String(path.to_owned()));
        for (field, name) in [
            ("file_size", "size"),
            ("md5sum", "md5sum"),
            ("sha256", "sha256"),
            ("content_type", "content_type"),
        ] {
            if let Some(value) = extra.get(field).filter(|value| !value.is_null()) {
                object.insert(name.to_owned(), value.clone());
            }
        }
        let uploaded =
            data.map(|(object, sidecar)| sidecar.map_or(object.last_modified, |s| s.uploaded_at));
        object.insert("_extra".to_owned(), extra);
        self.index_document(id, path, path, Value::Object(object), uploaded)
    }
}

#[cfg(test)]
mod extra_tests {
    use super::*;

    #[test]
    fn the_content_hash_is_the_hash_of_the_listing_as_json() {
        let now = Utc::now();
        let meta = |size: u64, etag: &str| ObjectMeta {
            key: String::new(),
            size,
            etag: etag.to_owned(),
            last_modified: now,
            content_type: None,
        };
        let files: BTreeMap<String, ObjectMeta> = [
            ("a.json".to_owned(), meta(3, "e-1")),
            ("b.bin".to_owned(), meta(9, "e-2")),
            ("d/\"q\".json".to_owned(), meta(0, "e-3")),
            ("skip.json".to_owned(), meta(1, "e-4")),
        ]
        .into_iter()
        .collect();
        let ignored: HashSet<String> = ["skip.json".to_owned()].into_iter().collect();
        // What it hashed when the listing went through a `json!` tree first.
        let expected = permissions_hash(&json!([["a.json", 3, "e-1"], ["d/\"q\".json", 0, "e-3"]]));
        assert_eq!(content_hash(&files, &ignored), expected);
    }

    /// `_extra` as one `json!` literal of all its entries (what `VersionBase::extra` built
    /// before it started from a per-version template).
    #[allow(clippy::too_many_arguments)]
    fn literal(
        base: &VersionBase<'_>,
        now: DateTime<Utc>,
        path: &str,
        metapath: Option<&str>,
        schema: Option<&Value>,
        data: Option<(&ObjectMeta, Option<&FileRecord>)>,
        meta: Option<&ObjectMeta>,
        link: Option<&Value>,
    ) -> Value {
        let project = &base.context.record;
        let (size, md5, sha256, content_type, uploaded) = file_facts(data);
        json!({
            "id": format!("{}:{}@{}", project.project_id, path, base.record.version),
            "kind": "file",
            "project_id": project.project_id,
            "version": base.record.version,
            "path": path,
            "metapath": metapath,
            "namespace": project.namespace,
            "revision": base.record.revision,
            "numerical_revision": base.record.numerical_revision,
            "$schema": schema,
            "type": project.project_type,
            "title": project.title,
            "uploaded": uploaded,
            "meta_uploaded": meta.map(|m| m.last_modified),
            "meta_indexed": now,
            "file_size": size,
            "md5sum": md5,
            "sha256": sha256,
            "content_type": content_type,
            "state": base.state,
            "stable": base.record.stable,
            "transient": base.record.expires_at.is_some(),
            "status": base.record.status,
            "link": link.map(|target| json!({"artifactdb": target.get("id").cloned().unwrap_or(Value::Null)})),
        })
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn extra_built_from_the_version_template_equals_the_whole_literal() {
        let record: ProjectRecord = serde_json::from_value(json!({
            "project_id": "p", "title": "P", "type": "MODEL", "namespace": "ns",
            "created_at": "2026-11-01T00:00:00Z", "created_by": "u", "state": "active",
        }))
        .unwrap();
        let context = ProjectContext {
            record,
            namespace_state: Some(LifecycleState::Active),
            project_profile: None,
            namespace_profile: None,
            global_profile: None,
        };
        let version: VersionRecord = serde_json::from_value(json!({
            "project_id": "p", "version": "v1", "created_at": "2026-11-01T00:00:00Z",
            "created_by": "u", "status": "completed", "revision": "NUM-1",
            "numerical_revision": 1, "expires_at": "2027-01-01T00:00:00Z",
        }))
        .unwrap();
        let now = Utc::now();
        let state = LifecycleState::Deprecated;
        let base = VersionBase {
            context: &context,
            record: &version,
            state,
            access: Shared::new(DocumentAccess::default()),
            perm_hash: 0,
            permissions: Shared::new(json!({})),
            project_text: Arc::new(super::super::document::ProjectText::default()),
            extra_template: VersionBase::extra_template(&context, &version, state, now),
        };
        let object = ObjectMeta {
            key: "p/v1/a/b.bin".to_owned(),
            size: 3,
            etag: "e".to_owned(),
            last_modified: now,
            content_type: Some("application/octet-stream".to_owned()),
        };
        let sidecar = FileRecord {
            path: "a/b.bin".to_owned(),
            size: 4,
            md5sum: "m".to_owned(),
            sha256: "s".to_owned(),
            content_type: None,
            uploaded_at: now,
            uploaded_by: "u".to_owned(),
        };
        let schema = json!("model/v1.json");
        let link = json!({"id": "q:x@v"});
        let fields = crate::index::IndexFields::resolve(
            &crate::index::IndexSchema::builtin().unwrap().tantivy(),
        )
        .unwrap();
        let cases: [(
            &str,
            Option<&str>,
            Option<&Value>,
            _,
            Option<&ObjectMeta>,
            Option<&Value>,
        ); 4] = [
            (
                "a/b.bin",
                Some("a/b.bin.json"),
                Some(&schema),
                Some((&object, Some(&sidecar))),
                Some(&object),
                None,
            ),
            ("a/b.bin", None, None, Some((&object, None)), None, None),
            ("l.txt", None, None, None, None, Some(&link)),
            ("x.json", Some("x.json"), None, None, Some(&object), None),
        ];
        for (path, metapath, schema, data, meta, link) in cases {
            let (_, mut extra) = base.extra(path, metapath, schema, data, meta, link);
            let own = extra.as_object().unwrap().clone();
            let shared = base.extra_template.as_object().unwrap();
            assert!(
                own.keys().all(|key| !shared.contains_key(key)),
                "{path}: the document's entries and the version's are distinct"
            );
            extra.as_object_mut().unwrap().extend(shared.clone());
            assert_eq!(
                extra,
                literal(&base, now, path, metapath, schema, data, meta, link),
                "{path}"
            );
            // Every entry is written, unset or not: the kind's standard entries are all of them.
            assert_eq!(
                extra.as_object().unwrap().keys().collect::<Vec<_>>(),
                super::super::extra::standard_keys(DocKind::File)
                    .iter()
                    .collect::<Vec<_>>(),
                "{path}"
            );
            // So the document records the file marker for them, but for a link (a nested
            // entry): every path then.
            let present: Vec<String> = base
                .automatic(path, data, link)
                .into_tantivy(&fields)
                .get_all(fields.fields_present)
                .filter_map(|value| tantivy::schema::Value::as_str(&value).map(str::to_owned))
                .collect();
            let marked = present.iter().any(|path| path == "_extra:file");
            let extra_paths = present
                .iter()
                .filter(|path| path.starts_with("_extra."))
                .count();
            if link.is_none() {
                assert!(marked && extra_paths == 0, "{path}: {present:?}");
            } else {
                assert!(!marked && extra_paths > 20, "{path}: {present:?}");
            }
        }
    }
}

#[cfg(test)]
mod listing_tests {
    use bytes::Bytes;

    use super::*;
    use crate::storage::PutOptions;
    use crate::storage::local::LocalStore;

    #[tokio::test]
    async fn a_project_is_listed_once_grouped_by_version_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open_for_tests(dir.path());
        for key in [
            "p/..meta/project.json",
            "p/v1/..meta/version.json",
            "p/v1/a.json",
            "p/v1/dir/b.bin",
            "p/v2/..meta/version.json",
            "pq/v1/other.json",
        ] {
            store
                .put_bytes(key, Bytes::from_static(b"{}"), PutOptions::default())
                .await
                .unwrap();
        }
        let listed = project_listing(&store, "p", 100).await.unwrap().unwrap();
        let mut v1: Vec<&str> = listed["v1"].iter().map(|o| o.key.as_str()).collect();
        v1.sort_unstable();
        assert_eq!(
            v1,
            ["p/v1/..meta/version.json", "p/v1/a.json", "p/v1/dir/b.bin"]
        );
        assert_eq!(listed["v2"].len(), 1);
        // The project's own `..meta/` groups apart, and `pq/` is another project.
        assert_eq!(listed[keys::META].len(), 1);
        assert_eq!(listed.len(), 3);
        // Beyond the limit: no listing, the caller lists versions one by one.
        assert!(project_listing(&store, "p", 4).await.unwrap().is_none());
        assert!(project_listing(&store, "p", 5).await.unwrap().is_some());
    }
}
