//! The search index: a tantivy index on local disk, derived from storage (a cache that can
//! always be rebuilt). This module opens or creates it from the schema in `index-schema/`,
//! rebuilding when the recorded schema version differs, and reports its health.

pub mod schema;

use std::path::{Path, PathBuf};

use tantivy::{Index, IndexReader, ReloadPolicy};

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
}

/// Result alias of this module.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// An open index with its reader.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    schema: IndexSchema,
    directory: PathBuf,
    /// True when the index was (re)created empty at open and must be rebuilt from storage.
    needs_rebuild: bool,
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
        let needs_rebuild = !has_index || recorded.as_deref().map(str::trim) != Some(current.as_str());
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
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            schema,
            directory: directory.to_path_buf(),
            needs_rebuild,
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
