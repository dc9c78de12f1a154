//! The target loader: a project's, version's or namespace's records and profile chain, read
//! from storage and built into the permission engine's evaluation [`Target`]. The API
//! authorizes over it (`api::access`); the catalog's workflows reach records through it.
//!
//! A corrupt record or profile is `500 internal` here (the cause goes to the log).

use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::model::names;
use crate::model::records::{NamespaceRecord, ProjectRecord, VersionRecord};
use crate::permissions::{LifecycleState, Target, effective_state};
use crate::storage::{ObjectStoreExt as _, keys};

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

async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    key: &str,
) -> Result<Option<T>> {
    match state.storage.get_bytes(key).await {
        Ok((bytes, _)) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            Error::internal(std::io::Error::other(format!(
                "corrupt record {key}: {error}"
            )))
        }),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Loads a project and builds its target; `None` when it does not exist.
pub async fn load_project(state: &AppState, project: &str) -> Result<Option<ProjectView>> {
    names::validate_project_id(project)
        .map_err(|error| Error::new(ErrorCode::InvalidName, error.to_string()))?;
    let Some(record) = read_json::<ProjectRecord>(state, &keys::project_record(project)).await?
    else {
        return Ok(None);
    };
    let namespace = match &record.namespace {
        Some(namespace) => {
            read_json::<NamespaceRecord>(state, &keys::namespace_record(namespace)).await?
        }
        None => None,
    };
    let chain = state
        .profiles
        .load_chain(record.namespace.as_deref(), Some(project), None)
        .await
        .map_err(|error| Error::internal(std::io::Error::other(error.to_string())))?;
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
    Ok(Some(ProjectView {
        record,
        namespace,
        target,
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

/// Loads a namespace and builds its target; `None` when it does not exist.
pub async fn load_namespace(state: &AppState, namespace: &str) -> Result<Option<NamespaceView>> {
    names::validate_namespace(namespace)
        .map_err(|error| Error::new(ErrorCode::InvalidName, error.to_string()))?;
    let (record, etag) = match state
        .storage
        .get_bytes(&keys::namespace_record(namespace))
        .await
    {
        Ok((bytes, meta)) => {
            let record: NamespaceRecord = serde_json::from_slice(&bytes).map_err(|error| {
                Error::internal(std::io::Error::other(format!(
                    "corrupt namespace record {namespace}: {error}"
                )))
            })?;
            (record, meta.etag)
        }
        Err(error) if error.is_not_found() => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let chain = state
        .profiles
        .load_chain(Some(namespace), None, None)
        .await
        .map_err(|error| Error::internal(std::io::Error::other(error.to_string())))?;
    let target = Target {
        profile: chain.resolve(),
        state: record.state,
        parent_state: LifecycleState::Active,
        namespace: Some(namespace.to_owned()),
        auto_create: record.auto_create,
        ..Target::default()
    };
    Ok(Some(NamespaceView {
        record,
        etag,
        target,
    }))
}
