//! The one way a route reaches a project or version for a caller: load the records and the
//! profile chain from storage, build the evaluation [`Target`], and let the permission engine
//! decide. A denial becomes `404` (the caller may not know it exists), `401`, `403` or `409`
//! exactly as the engine says. Every denial of the engine is audited here as
//! `access.denied` with its reason — the one call site for that action.

use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::names;
use crate::model::records::{NamespaceRecord, ProjectRecord, VersionRecord};
use crate::permissions::{AccessScope, Action, Denial, LifecycleState, Target, effective_state};
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

/// Maps a permission denial to the API error.
impl From<Denial> for ApiError {
    fn from(denial: Denial) -> Self {
        let (code, reason) = match denial {
            Denial::NotFound => (ErrorCode::NotFound, "not found"),
            Denial::Unauthenticated => (ErrorCode::Unauthorized, "authentication required"),
            Denial::Forbidden => (ErrorCode::Forbidden, "not allowed"),
            _ => (ErrorCode::Conflict, "not possible in the current state"),
        };
        let error = Self::new(code, reason);
        if code == ErrorCode::Conflict {
            error.with_code_name(denial.code())
        } else {
            error
        }
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    key: &str,
) -> ApiResult<Option<T>> {
    match state.storage.get_bytes(key).await {
        Ok((bytes, _)) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            ApiError::internal(std::io::Error::other(format!(
                "corrupt record {key}: {error}"
            )))
        }),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The access scope a principal searches with: its own; for an API key, what its creator
/// reads, inside the key's scopes only (as `Principal::decide` on direct access).
#[must_use]
pub fn search_scope(principal: &Principal) -> AccessScope {
    match (&principal.caller, &principal.creator) {
        (crate::permissions::Caller::Machine { scopes, .. }, Some(creator)) => {
            AccessScope::delegated(creator, scopes)
        }
        // A machine key reaches nothing outside its scopes, as on direct access.
        (crate::permissions::Caller::Machine { scopes, .. }, None) => {
            AccessScope::for_caller(&principal.caller).confined_to(scopes)
        }
        _ => AccessScope::for_caller(&principal.caller),
    }
}

/// Loads a project and builds its target; `None` when it does not exist.
pub async fn load_project(state: &AppState, project: &str) -> ApiResult<Option<ProjectView>> {
    names::validate_project_id(project)
        .map_err(|error| ApiError::new(ErrorCode::InvalidName, error.to_string()))?;
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
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))?;
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
) -> ApiResult<Option<VersionView>> {
    names::validate_version(version)
        .map_err(|error| ApiError::new(ErrorCode::InvalidName, error.to_string()))?;
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
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))?;
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

/// Records a permission-engine denial (`access.denied`, buffered) and answers it as an error.
fn denied(
    state: &AppState,
    principal: &Principal,
    action: Action,
    target: &Target,
    denial: Denial,
) -> ApiError {
    let resource = match (&target.project, &target.version) {
        (Some(project), Some(version)) => format!("version:{project}@{version}"),
        (Some(project), None) => format!("project:{project}"),
        _ => target.namespace.as_ref().map_or_else(
            || "global".to_owned(),
            |namespace| format!("namespace:{namespace}"),
        ),
    };
    let error = ApiError::from(denial);
    let mut event = AuditEvent::new("access.denied")
        .by(principal)
        .resource(resource)
        .outcome(Outcome::Denied, error.code().status().as_u16())
        .detail("reason", denial.code())
        .detail("attempted", format!("{action:?}"));
    event.project.clone_from(&target.project);
    state.audit.record(event);
    error
}

/// A `404` answered as the resource's "missing" answer, so hidden and missing resources
/// cannot be told apart; any other error as it is.
fn as_missing(error: ApiError, missing: impl FnOnce() -> ApiError) -> ApiError {
    if error.code() == ErrorCode::NotFound {
        missing()
    } else {
        error
    }
}

/// Lets the permission engine decide `action` on an already loaded `target`; a denial is
/// recorded (`access.denied`) and answered as the engine says.
pub fn decide(
    state: &AppState,
    principal: &Principal,
    action: Action,
    target: &Target,
) -> ApiResult<()> {
    principal
        .decide(action, target, state.clock.now())
        .map_err(|denial| denied(state, principal, action, target, denial))
}

/// A project the caller may perform `action` on; `404` when absent or hidden from them.
pub async fn authorize_project(
    state: &AppState,
    principal: &Principal,
    project: &str,
    action: Action,
) -> ApiResult<ProjectView> {
    // A hidden project answers exactly as a missing one (byte-identical body).
    let not_found = || ApiError::not_found(format!("no project {project}"));
    let view = load_project(state, project).await?.ok_or_else(not_found)?;
    principal
        .decide(action, &view.target, state.clock.now())
        .map_err(|denial| {
            as_missing(
                denied(state, principal, action, &view.target, denial),
                not_found,
            )
        })?;
    Ok(view)
}

/// The latest version of a project the caller can read (highest revision among completed
/// versions they may read), resolved through the index. Runs an index search: call it on the
/// blocking pool ([`crate::index::off_runtime`]), or use
/// [`latest_readable_version_off_runtime`] from async code.
pub fn latest_readable_version(
    state: &AppState,
    principal: &Principal,
    project: &str,
) -> ApiResult<Option<String>> {
    let scope = search_scope(principal);
    let mut found = crate::index::search::readable_versions(
        &state.index,
        &scope,
        &[project.to_owned()],
        state.clock.now(),
    )
    .map_err(super::search::search_error)?;
    Ok(found.remove(project).and_then(|versions| versions.latest))
}

/// [`latest_readable_version`] on the blocking pool.
pub async fn latest_readable_version_off_runtime(
    state: &AppState,
    principal: &Principal,
    project: &str,
) -> ApiResult<Option<String>> {
    let (state, principal, project) = (state.clone(), principal.clone(), project.to_owned());
    crate::index::off_runtime(move || latest_readable_version(&state, &principal, &project))
        .await
        .map_err(ApiError::internal)?
}

/// A version the caller may perform `action` on (`latest` resolves among the versions they
/// can read); `404` when absent or hidden from them.
pub async fn authorize_version(
    state: &AppState,
    principal: &Principal,
    project: &str,
    version: &str,
    action: Action,
) -> ApiResult<VersionView> {
    let not_found = || ApiError::not_found(format!("no version {version} of {project}"));
    let version = if version == names::LATEST {
        latest_readable_version_off_runtime(state, principal, project)
            .await?
            .ok_or_else(not_found)?
    } else {
        version.to_owned()
    };
    let project_view = load_project(state, project).await?.ok_or_else(not_found)?;
    let view = load_version(state, project_view, &version)
        .await?
        .ok_or_else(not_found)?;
    let now = state.clock.now();
    // Seeing the project is part of seeing the version.
    if let Err(denial) = principal.decide(Action::ReadMetadata, &view.target, now) {
        denied(state, principal, action, &view.target, denial);
        return Err(not_found());
    }
    principal
        .decide(action, &view.target, now)
        .map_err(|denial| {
            as_missing(
                denied(state, principal, action, &view.target, denial),
                not_found,
            )
        })?;
    Ok(view)
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
pub async fn load_namespace(state: &AppState, namespace: &str) -> ApiResult<Option<NamespaceView>> {
    names::validate_namespace(namespace)
        .map_err(|error| ApiError::new(ErrorCode::InvalidName, error.to_string()))?;
    let (record, etag) = match state
        .storage
        .get_bytes(&keys::namespace_record(namespace))
        .await
    {
        Ok((bytes, meta)) => {
            let record: NamespaceRecord = serde_json::from_slice(&bytes).map_err(|error| {
                ApiError::internal(std::io::Error::other(format!(
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
        .map_err(|error| ApiError::internal(std::io::Error::other(error.to_string())))?;
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

/// A namespace the caller may perform `action` on; `404` when absent or hidden from them.
pub async fn authorize_namespace(
    state: &AppState,
    principal: &Principal,
    namespace: &str,
    action: Action,
) -> ApiResult<NamespaceView> {
    let not_found = || ApiError::not_found(format!("no namespace {namespace}"));
    let view = load_namespace(state, namespace)
        .await?
        .ok_or_else(not_found)?;
    decide(state, principal, action, &view.target).map_err(|error| as_missing(error, not_found))?;
    Ok(view)
}
