//! The target loader: a project's, version's or namespace's records and profile chain, read
//! from storage and built into the permission engine's evaluation [`Target`]. The API
//! authorizes over it (`api::access`); the catalog's workflows reach records through it.
//!
//! The records and profile chain of projects and namespaces come from the one loader,
//! `permissions::target` (which API-key scoping uses too); a corrupt record or profile is
//! `500 internal` (the cause goes to the log).

use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::model::names;
use crate::model::records::{NamespaceRecord, ProjectRecord, VersionRecord};
use crate::permissions::target::{Caching, load_namespace_target, load_project_target};
use crate::permissions::{Target, effective_state};
use crate::storage::{keys, records};

/// A project as a caller reached it.
#[derive(Debug, Clone)]
pub struct ProjectView {
    /// The record.
    pub record: ProjectRecord,
    /// Its namespace's record, when it has one.
    pub namespace: Option<NamespaceRecord>,
    /// The evaluation target (project level).
    pub target: Target,
}

/// A version as a caller reached it.
#[derive(Debug, Clone)]
pub struct VersionView {
    /// The project.
    pub project: ProjectView,
    /// The version record.
    pub record: VersionRecord,
    /// The evaluation target (version level).
    pub target: Target,
}

/// Reads a JSON record ([`records::read`]); `None` when absent, `500 internal` when it does
/// not parse.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    key: &str,
) -> Result<Option<T>> {
    Ok(records::read(state.storage.as_ref(), key)
        .await?
        .map(|found| found.record))
}

/// Loads a project and builds its target (profiles through the cache); `None` when it does
/// not exist.
pub async fn load_project(state: &AppState, project: &str) -> Result<Option<ProjectView>> {
    names::validate_project_id(project)
        .map_err(|error| Error::new(ErrorCode::InvalidName, error.to_string()))?;
    let loaded = load_project_target(
        state.storage.as_ref(),
        &state.profiles,
        project,
        Caching::Cached,
    )
    .await?;
    Ok(loaded.map(|loaded| ProjectView {
        record: loaded.record,
        namespace: loaded.namespace,
        target: loaded.target,
    }))
}

/// Loads a version (of a loaded project) and builds its target; `None` when absent.
pub async fn load_version(
    state: &AppState,
    project: ProjectView,
    version: &str,
) -> Result<Option<VersionView>> {
    names::validate_version(version)
        .map_err(|error| Error::new(ErrorCode::InvalidName, error.to_string()))?;
    let project_id = project.record.project_id.clone();
    let Some(record) =
        read_json::<VersionRecord>(state, &keys::version_record(&project_id, version)).await?
    else {
        return Ok(None);
    };
    let chain = state
        .profiles
        .load_chain(
            project.record.namespace.as_deref(),
            Some(&project_id),
            Some(version),
        )
        .await
        .map_err(|error| Error::internal(std::io::Error::other(error.to_string())))?;
    let target = Target {
        profile: chain.resolve(),
        state: effective_state(Some(project.target.state), Some(record.state), None),
        parent_state: project.target.state,
        namespace: project.record.namespace.clone(),
        project: Some(project_id),
        version: Some(record.version.clone()),
        stable: record.stable,
        completed: record.is_completed(),
        auto_create: false,
    };
    Ok(Some(VersionView {
        project,
        record,
        target,
    }))
}

/// A namespace as a caller reached it.
#[derive(Debug, Clone)]
pub struct NamespaceView {
    /// The record.
    pub record: NamespaceRecord,
    /// The record's ETag (for `If-Match` updates).
    pub etag: String,
    /// The evaluation target (namespace level).
    pub target: Target,
}

/// Loads a namespace and builds its target (profiles through the cache); `None` when it
/// does not exist.
pub async fn load_namespace(state: &AppState, namespace: &str) -> Result<Option<NamespaceView>> {
    names::validate_namespace(namespace)
        .map_err(|error| Error::new(ErrorCode::InvalidName, error.to_string()))?;
    let loaded = load_namespace_target(
        state.storage.as_ref(),
        &state.profiles,
        namespace,
        Caching::Cached,
    )
    .await?;
    Ok(loaded.map(|loaded| NamespaceView {
        record: loaded.record,
        etag: loaded.etag,
        target: loaded.target,
    }))
}
