//! The one way a route reaches a project or version for a caller: load the records and the
//! profile chain from storage, build the evaluation [`Target`], and let the permission engine
//! decide. A denial becomes `404` (the caller may not know it exists), `401`, `403` or `409`
//! exactly as the engine says. Every denial of the engine is audited here as
//! `access.denied` with its reason — the one call site for that action.

use crate::app::AppState;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::Principal;
use crate::catalog::namespaces::PatchNamespaceRequest;
use crate::catalog::projects::{PatchProjectRequest, PatchVersionRequest};
pub use crate::catalog::target::{
    NamespaceView, ProjectView, VersionView, load_namespace, load_project, load_version,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::model::names;
use crate::permissions::{AccessScope, Action, Denial, LifecycleState, Target, effective_state};

/// Maps a permission denial to the API error (the mapping is the catalog's).
impl From<Denial> for ApiError {
    fn from(denial: Denial) -> Self {
        crate::catalog::Error::from(denial).into()
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

/// The decision on a lifecycle change `from` → `to` of `target` (the first check of every
/// PATCH that changes a state).
fn decide_state_change(
    app: &AppState,
    principal: &Principal,
    from: LifecycleState,
    to: LifecycleState,
    target: &Target,
) -> ApiResult<()> {
    decide(app, principal, Action::ChangeState { from, to }, target)
}

/// The permission decisions of `PATCH /projects/{p}`, before its event: a refusal is an
/// `access.denied` with its reason (recorded by [`decide`]), not a mutation.
pub fn authorize_project_patch(
    app: &AppState,
    principal: &Principal,
    view: &ProjectView,
    request: &PatchProjectRequest,
) -> ApiResult<()> {
    let mut target = view.target.clone();
    if let Some(to) = request.state {
        decide_state_change(app, principal, view.record.state, to, &target)?;
        let namespace_state = view.record.namespace.as_ref().map(|_| {
            view.namespace
                .as_ref()
                .map_or(LifecycleState::Active, |ns| ns.state)
        });
        target.state = effective_state(namespace_state, Some(to), None);
    }
    let changes_record = request.title.is_some()
        || request.description.is_some()
        || request.tags.is_some()
        || request.project_type.is_some();
    // An empty patch is judged as a record update, so readers cannot cause writes.
    if changes_record || request.state.is_none() {
        decide(app, principal, Action::UpdateRecord, &target)?;
    }
    Ok(())
}

/// The permission decisions of `PATCH /projects/{p}/version/{v}`, before its event: a
/// refusal is an `access.denied` with its reason, not a mutation.
pub fn authorize_version_patch(
    app: &AppState,
    principal: &Principal,
    view: &VersionView,
    request: &PatchVersionRequest,
) -> ApiResult<()> {
    let mut target = view.target.clone();
    if let Some(to) = request.state {
        decide_state_change(app, principal, view.record.state, to, &target)?;
        target.state = effective_state(Some(view.project.target.state), Some(to), None);
    }
    if let Some(stable) = request.stable {
        decide(app, principal, Action::MarkStable, &target)?;
        target.stable = stable;
    }
    // An empty patch is judged as a record update, so readers cannot cause writes.
    if request.changelog.is_some() || (request.state.is_none() && request.stable.is_none()) {
        decide(app, principal, Action::UpdateRecord, &target)?;
    }
    Ok(())
}

/// The permission decisions of `PATCH /namespaces/{ns}`, before its event: a refusal is an
/// `access.denied` with its reason, not a mutation.
pub fn authorize_namespace_patch(
    app: &AppState,
    principal: &Principal,
    view: &NamespaceView,
    request: &PatchNamespaceRequest,
) -> ApiResult<()> {
    let mut target = view.target.clone();
    if let Some(to) = request.state {
        decide_state_change(app, principal, view.record.state, to, &target)?;
        target.state = to;
    }
    let changes_record = request.description.is_some()
        || request.visibility.is_some()
        || request.auto_create.is_some();
    // An empty patch is judged as a change, so readers cannot cause writes.
    if changes_record || request.state.is_none() {
        decide(app, principal, Action::ChangePermissions, &target)?;
    }
    Ok(())
}
