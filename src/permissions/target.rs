//! The one target loader: a project's or namespace's records and profile chain, read from
//! storage and built into the evaluation [`Target`] — cached or not, by a parameter. The API
//! (through `catalog::target`) and API-key scoping (`auth::service`) both load targets here,
//! so they agree on what a target is and on what a damaged record answers: a record or
//! profile that does not parse is [`TargetError::Corrupt`] / [`TargetError::Profile`],
//! which both answer as `500 internal` (damage, not absence).
//!
//! This is I/O beside the profile loader (`loader.rs`); the rules themselves stay pure.

use super::evaluate::Target;
use super::loader::{LoaderError, ProfileLoader};
use super::resolve::ScopeChain;
use super::state::{LifecycleState, effective_state};
use crate::model::records::{NamespaceRecord, ProjectRecord};
use crate::storage::records::{self, RecordError};
use crate::storage::{ObjectStore, StorageError, keys};

/// Whether profiles come through the loader's TTL cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Through the cache (request paths).
    Cached,
    /// Straight from storage (decisions that must see the latest write).
    Uncached,
}

/// Why a target could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record does not parse.
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// The storage key.
        key: String,
        /// The parse error.
        message: String,
    },
    /// A profile of the chain could not be loaded.
    #[error(transparent)]
    Profile(#[from] LoaderError),
}

/// A project with its namespace record and its evaluation target (project level).
#[derive(Debug, Clone)]
pub struct ProjectTarget {
    /// The record.
    pub record: ProjectRecord,
    /// Its namespace's record, when it has one and it exists.
    pub namespace: Option<NamespaceRecord>,
    /// The evaluation target.
    pub target: Target,
}

/// A namespace with its record's ETag and its evaluation target.
#[derive(Debug, Clone)]
pub struct NamespaceTarget {
    /// The record.
    pub record: NamespaceRecord,
    /// The record's ETag (for `If-Match` updates).
    pub etag: String,
    /// The evaluation target.
    pub target: Target,
}

/// Reads and parses a JSON record with its ETag ([`records::read`]); `None` when absent.
async fn read_record<T: serde::de::DeserializeOwned>(
    storage: &dyn ObjectStore,
    key: &str,
) -> Result<Option<(T, String)>, TargetError> {
    match records::read(storage, key).await {
        Ok(found) => Ok(found.map(|found| (found.record, found.etag))),
        Err(RecordError::Corrupt { key, message }) => Err(TargetError::Corrupt { key, message }),
        Err(RecordError::Storage(error)) => Err(error.into()),
        // A read never retries.
        Err(error @ RecordError::Contended { .. }) => Err(TargetError::Corrupt {
            key: key.to_owned(),
            message: error.to_string(),
        }),
    }
}

async fn chain(
    profiles: &ProfileLoader,
    caching: Caching,
    namespace: Option<&str>,
    project: Option<&str>,
) -> Result<ScopeChain, TargetError> {
    Ok(match caching {
        Caching::Cached => profiles.load_chain(namespace, project, None).await?,
        Caching::Uncached => {
            profiles
                .load_chain_uncached(namespace, project, None)
                .await?
        }
    })
}

/// Loads a project (record, namespace record, profile chain) and builds its target; `None`
/// when the project does not exist. The project id must be valid already.
pub async fn load_project_target(
    storage: &dyn ObjectStore,
    profiles: &ProfileLoader,
    project: &str,
    caching: Caching,
) -> Result<Option<ProjectTarget>, TargetError> {
    let Some((record, _)) =
        read_record::<ProjectRecord>(storage, &keys::project_record(project)).await?
    else {
        return Ok(None);
    };
    let namespace = match &record.namespace {
        Some(namespace) => {
            read_record::<NamespaceRecord>(storage, &keys::namespace_record(namespace))
                .await?
                .map(|(record, _)| record)
        }
        None => None,
    };
    let chain = chain(
        profiles,
        caching,
        record.namespace.as_deref(),
        Some(project),
    )
    .await?;
    let namespace_state = record.namespace.as_ref().map(|_| {
        namespace
            .as_ref()
            .map_or(LifecycleState::Active, |ns| ns.state)
    });
    let target = Target {
        profile: chain.resolve(),
        state: effective_state(namespace_state, Some(record.state), None),
        parent_state: effective_state(namespace_state, None, None),
        namespace: record.namespace.clone(),
        project: Some(record.project_id.clone()),
        version: None,
        stable: false,
        completed: false,
        auto_create: namespace.as_ref().is_some_and(|ns| ns.auto_create),
    };
    Ok(Some(ProjectTarget {
        record,
        namespace,
        target,
    }))
}

/// Loads a namespace (record, profile chain) and builds its target; `None` when it does not
/// exist. The name must be valid already.
pub async fn load_namespace_target(
    storage: &dyn ObjectStore,
    profiles: &ProfileLoader,
    namespace: &str,
    caching: Caching,
) -> Result<Option<NamespaceTarget>, TargetError> {
    let Some((record, etag)) =
        read_record::<NamespaceRecord>(storage, &keys::namespace_record(namespace)).await?
    else {
        return Ok(None);
    };
    let chain = chain(profiles, caching, Some(namespace), None).await?;
    let target = Target {
        profile: chain.resolve(),
        state: record.state,
        parent_state: LifecycleState::Active,
        namespace: Some(namespace.to_owned()),
        auto_create: record.auto_create,
        ..Target::default()
    };
    Ok(Some(NamespaceTarget {
        record,
        etag,
        target,
    }))
}
