//! The search index: a tantivy index on local disk, derived from storage (a cache that can
//! always be rebuilt). This module opens or creates it from the schema in `index-schema/`,
//! rebuilding when the recorded schema version differs, and reports its health.

pub mod answer_cache;
pub mod columns;
pub mod cursor;
pub mod doc_cache;
pub mod document;
pub mod expiry;
pub mod extra;
pub mod filter;
pub mod highlight;
pub mod indexer;
pub mod missed;
pub mod ord_names;
pub mod schema;
pub mod search;
pub mod serial;
pub mod sync;
mod wand;
pub mod writer;

use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tantivy::schema::Field;
use tantivy::{Index, IndexReader, ReloadPolicy};

use filter::AllowSetCache;
use writer::{IndexWriterHandle, OwnerFields};

pub use schema::IndexSchema;

/// File next to the index recording the schema version it was built with.
const SCHEMA_VERSION_FILE: &str = "trove-schema-version";

/// Errors of the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The schema file is invalid.
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    /// tantivy failed.
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// Disk I/O failed.
    #[error("index i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The writer thread is gone (shutdown or a crash).
    #[error("the index writer is not running")]
    WriterGone,
    /// A commit failed.
    #[error("index commit failed: {0}")]
    Commit(String),
    /// The schema file lacks a field the code needs.
    #[error("index schema lacks field {0:?}")]
    MissingField(&'static str),
}

/// Result alias of this module.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// Handles of the schema fields the code uses by name.
#[derive(Debug, Clone, Copy)]
pub struct IndexFields {
    /// ArtifactDB id.
    pub id: Field,
    /// `file` or `project`.
    pub kind: Field,
    /// Project id (fast).
    pub project_id: Field,
    /// Version (fast).
    pub version: Field,
    /// Owner key: `<project>/<version>`, or `<project>/` for a project record.
    pub version_key: Field,
    /// File path.
    pub path: Field,
    /// Source file of the document (fast).
    pub file_key: Field,
    /// Hash of the resolved profile (fast).
    pub perm_hash: Field,
    /// Namespace (fast).
    pub namespace: Field,
    /// Numerical revision (fast).
    pub numerical_revision: Field,
    /// Upload time (fast).
    pub uploaded: Field,
    /// Access tokens of allowed readers.
    pub readers: Field,
    /// Effective lifecycle state.
    pub state: Field,
    /// The project's type (fast, aggregatable).
    pub project_type: Field,
    /// The project's tags (fast, aggregatable, several values).
    pub tags: Field,
    /// The document's `$schema` (fast, aggregatable).
    pub schema: Field,
    /// The data file's content type (fast, aggregatable).
    pub content_type: Field,
    /// The file extension (fast, aggregatable).
    pub extension: Field,
    /// Earliest expiry of a reader grant, unix seconds, 0 when none (fast).
    pub grant_expiry: Field,
    /// Free text: the project's id and title.
    pub text_name: Field,
    /// Free text: the project's description and tags.
    pub text_about: Field,
    /// Free text: every string value of the document.
    pub text_meta: Field,
    /// Free text: the path and version.
    pub text_path: Field,
    /// Key paths present in the searchable document (`field:*`).
    pub fields_present: Field,
    /// Searchable JSON document (the metadata, without `_extra`).
    pub document: Field,
    /// Searchable `_extra` object (exact values), searched as `_extra.<key>:value`.
    pub extra: Field,
    /// Stored JSON bytes of `_extra.permissions` (shared by a version's documents, kept out of
    /// `source` so it is serialized once per version).
    pub permissions: Field,
    /// Stored JSON bytes of the whole document.
    pub source: Field,
    /// Stored JSON bytes of the document's access data.
    pub access: Field,
}

impl IndexFields {
    fn resolve(schema: &tantivy::schema::Schema) -> Result<Self> {
        let field = |name: &'static str| {
            schema
                .get_field(name)
                .map_err(|_| IndexError::MissingField(name))
        };
        Ok(Self {
            id: field("_id")?,
            kind: field("kind")?,
            project_id: field("project_id")?,
            version: field("version")?,
            version_key: field("version_key")?,
            path: field("path")?,
            file_key: field("file_key")?,
            perm_hash: field("perm_hash")?,
            namespace: field("namespace")?,
            numerical_revision: field("numerical_revision")?,
            uploaded: field("uploaded")?,
            readers: field("readers")?,
            state: field("state")?,
            project_type: field("type")?,
            tags: field("tags")?,
            schema: field("schema")?,
            content_type: field("content_type")?,
            extension: field("extension")?,
            grant_expiry: field("grant_expiry")?,
            text_name: field("text_name")?,
            text_about: field("text_about")?,
            text_meta: field("text_meta")?,
            text_path: field("text_path")?,
            fields_present: field("fields_present")?,
            document: field("document")?,
            extra: field("_extra")?,
            permissions: field("permissions")?,
            source: field("source")?,
            access: field("access")?,
        })
    }
}

/// Memory budget of tantivy's indexing buffers.
const WRITER_HEAP_BYTES: usize = 128 * 1024 * 1024;
/// Memory budget of the allowed-set cache of the access filter.
const ALLOW_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Memory budget of the parsed stored documents ([`doc_cache`]): a few thousand hits.
const DOCUMENT_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// An open index with its reader, its single writer and the access-filter cache.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: IndexFields,
    writer: IndexWriterHandle,
    allow_cache: Arc<AllowSetCache>,
    facets: answer_cache::FacetCache,
    versions: answer_cache::VersionsCache,
    documents: doc_cache::DocumentCache,
    ord_names: Arc<ord_names::OrdNames>,
    columns: Arc<columns::SegmentColumns>,
    schema: IndexSchema,
    directory: PathBuf,
    /// True when the index was (re)created empty at open and must be rebuilt from storage.
    needs_rebuild: bool,
    /// Searches run, and how many of them ran on an async runtime's worker threads.
    searches: SearchCounters,
    /// Orders overlapping updates of one project ([`serial`]).
    serial: serial::ProjectSerializer,
}

/// Counts of index searches (every [`SearchIndex::searcher`] call), for tests and metrics:
/// a route's cost in searches, and whether any ran where it must not.
#[derive(Debug, Default)]
pub struct SearchCounters {
    total: AtomicU64,
    on_async_workers: AtomicU64,
}

impl SearchCounters {
    /// Searches started since the index was opened.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Searches started on a thread of an async runtime outside [`off_runtime`]: each one
    /// blocked a worker that should have been serving other requests.
    #[must_use]
    pub fn on_async_workers(&self) -> u64 {
        self.on_async_workers.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// Set while a closure given to [`off_runtime`] runs on the blocking pool.
    static ON_BLOCKING_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` (index searches, storage-free CPU work over their hits) on tokio's blocking
/// pool and marks the thread meanwhile, so [`SearchIndex::searcher`] can tell a search made
/// there from one made on an async worker. Panics in `work` are answered as a join error.
///
/// # Errors
///
/// The join error when `work` panicked or the runtime is shutting down.
pub async fn off_runtime<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    struct Mark;
    impl Drop for Mark {
        fn drop(&mut self) {
            ON_BLOCKING_POOL.set(false);
        }
    }
    tokio::task::spawn_blocking(move || {
        ON_BLOCKING_POOL.set(true);
        let _mark = Mark;
        work()
    })
    .await
}

/// Whether the current thread is inside an async runtime but not in [`off_runtime`]: an
/// async worker (or a blocking closure that did not say so). Plain threads (benchmarks, the
/// CLI's synchronous parts) are not.
#[must_use]
pub fn on_async_worker() -> bool {
    tokio::runtime::Handle::try_current().is_ok() && !ON_BLOCKING_POOL.get()
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("directory", &self.directory)
            .field("schema_version", &self.schema.version)
            .field("needs_rebuild", &self.needs_rebuild)
            .finish_non_exhaustive()
    }
}

/// What `GET /status` reports about the index.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct IndexHealth {
    /// Whether a searcher could be obtained.
    pub ok: bool,
    /// Number of documents visible to searches.
    pub documents: u64,
    /// Schema version in use.
    pub schema_version: u32,
}

impl SearchIndex {
    /// Opens the index in `directory`, creating it (empty) when absent or when it was built
    /// with another schema version.
    pub fn open(directory: &Path, schema: IndexSchema) -> Result<Self> {
        std::fs::create_dir_all(directory)?;
        let version_file = directory.join(SCHEMA_VERSION_FILE);
        let recorded = std::fs::read_to_string(&version_file).ok();
        let current = schema.version.to_string();
        let has_index = directory.join("meta.json").exists();
        let needs_rebuild =
            !has_index || recorded.as_deref().map(str::trim) != Some(current.as_str());
        if needs_rebuild && has_index {
            tracing::warn!(
                directory = %directory.display(),
                recorded = recorded.as_deref().unwrap_or("none"),
                current = %current,
                "index schema changed, rebuilding the index"
            );
            for entry in std::fs::read_dir(directory)? {
                let path = entry?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)?;
                } else {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        let index = if needs_rebuild {
            let index = Index::create_in_dir(directory, schema.tantivy())?;
            std::fs::write(&version_file, &current)?;
            index
        } else {
            Index::open_in_dir(directory)?
        };
        schema::register_tokenizers(&index);
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let fields = IndexFields::resolve(&index.schema())?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let writer = IndexWriterHandle::spawn(
            index.writer_with_num_threads(threads, WRITER_HEAP_BYTES)?,
            reader.clone(),
            OwnerFields {
                owner: fields.version_key,
                project: fields.project_id,
            },
        )?;
        Ok(Self {
            index,
            reader,
            fields,
            writer,
            allow_cache: Arc::new(AllowSetCache::new(ALLOW_CACHE_BYTES)),
            facets: answer_cache::FacetCache::new(answer_cache::MAX_BYTES),
            versions: answer_cache::VersionsCache::new(answer_cache::VERSIONS_MAX_BYTES),
            documents: doc_cache::DocumentCache::new(DOCUMENT_CACHE_BYTES),
            ord_names: Arc::default(),
            columns: Arc::default(),
            schema,
            directory: directory.to_path_buf(),
            needs_rebuild,
            searches: SearchCounters::default(),
            serial: serial::ProjectSerializer::default(),
        })
    }

    /// The tantivy index.
    #[must_use]
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The shared reader (reloaded by the writer after each commit).
    #[must_use]
    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }

    /// A searcher for one search: what every search of [`search`] starts from. Counts the
    /// search, and counts (and logs at debug level) a search started on an
    /// async worker thread instead of the blocking pool.
    #[must_use]
    pub fn searcher(&self) -> tantivy::Searcher {
        self.searches.total.fetch_add(1, Ordering::Relaxed);
        if on_async_worker() {
            self.searches
                .on_async_workers
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!("index search on an async worker thread");
        }
        self.reader.searcher()
    }

    /// The segments the next search would read (ids and delete stamps), as the keys of kept
    /// answers name them ([`answer_cache::AnswerKey::segments_of`]). Not a search and not
    /// counted as one: no searcher leaves this function, so it is safe on the async runtime.
    #[must_use]
    pub fn current_segments(&self) -> Vec<(tantivy::index::SegmentId, Option<u64>)> {
        answer_cache::AnswerKey::segments_of(&self.reader.searcher())
    }

    /// How many searches ran, and where.
    #[must_use]
    pub fn search_counters(&self) -> &SearchCounters {
        &self.searches
    }

    /// The epochs and locks every indexer of this index orders its updates of a project by.
    #[must_use]
    pub fn serial(&self) -> &serial::ProjectSerializer {
        &self.serial
    }

    /// The field handles.
    #[must_use]
    pub fn fields(&self) -> &IndexFields {
        &self.fields
    }

    /// The single writer.
    #[must_use]
    pub fn writer(&self) -> &IndexWriterHandle {
        &self.writer
    }

    /// The access-filter cache shared by all searches.
    #[must_use]
    pub fn allow_cache(&self) -> Arc<AllowSetCache> {
        self.allow_cache.clone()
    }

    /// The kept term counts ([`answer_cache`]).
    #[must_use]
    pub fn facet_cache(&self) -> &answer_cache::FacetCache {
        &self.facets
    }

    /// The kept readable versions of projects ([`answer_cache`]).
    #[must_use]
    pub fn versions_cache(&self) -> &answer_cache::VersionsCache {
        &self.versions
    }

    /// The stored document at `address` of `searcher`, parsed (cached: [`doc_cache`]).
    pub fn stored_document(
        &self,
        searcher: &tantivy::Searcher,
        address: tantivy::DocAddress,
    ) -> tantivy::Result<Arc<doc_cache::StoredDocument>> {
        self.documents.get(searcher, &self.fields, address)
    }

    /// The kept strings of string-column ordinals ([`ord_names`]).
    #[must_use]
    pub fn ord_names(&self) -> Arc<ord_names::OrdNames> {
        self.ord_names.clone()
    }

    /// The fast columns opened per segment ([`columns`]).
    #[must_use]
    pub fn columns(&self) -> Arc<columns::SegmentColumns> {
        self.columns.clone()
    }

    /// The parsed-document cache, for metrics, benchmarks and tests.
    #[must_use]
    pub fn document_cache(&self) -> &doc_cache::DocumentCache {
        &self.documents
    }

    /// The schema definition in use.
    #[must_use]
    pub fn schema(&self) -> &IndexSchema {
        &self.schema
    }

    /// Whether the index was created empty at open and must be rebuilt from storage.
    #[must_use]
    pub fn needs_rebuild(&self) -> bool {
        self.needs_rebuild
    }

    /// Stops the writer and releases the index lock (graceful shutdown; tests re-opening an
    /// index directory).
    pub fn close(&self) {
        self.writer.close();
    }

    /// Health for `/status`.
    #[must_use]
    pub fn health(&self) -> IndexHealth {
        let searcher = self.reader.searcher();
        IndexHealth {
            ok: true,
            documents: searcher.num_docs(),
            schema_version: self.schema.version,
        }
    }
}
