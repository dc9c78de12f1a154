//! Grants the way a team registry speaks of them (SPEC §8): `POST·GET /namespaces/{ns}/members`,
//! `DELETE /namespaces/{ns}/members/{principal}`, `POST·GET /projects/{p}/members`,
//! `DELETE /projects/{p}/members/{principal}`.
//!
//! Levels map onto the profile lists: `maintainer` → `owners`, `developer` → `writers`,
//! `guest` → `viewers`. The rules:
//!
//! * Namespace grants: admins and the namespace's owners.
//! * Project grants: admins, the namespace's owners and the project's owners. `maintainer`
//!   is refused at project level (`422 no_maintainer_at_project_level`: maintainers are a
//!   namespace's). A principal that the namespace already grants as much (developer or
//!   maintainer; guest for a guest grant) is refused as redundant (`409 redundant_grant`) —
//!   only while the namespace's grants reach the project (no project profile, or one with
//!   `inherit: true`). A namespace guest may be elevated to developer on one project.
//! * Every grant checks the grantee's role (`422 role_too_low`): a guest or reviewer may only
//!   be a guest, a developer or machine at most a developer.
//! * `GET .../members` answers "who can access this?" in one call: the access rules in force
//!   and every effective member with where each of its grants comes from.
//!
//! A grant names an existing account or local group (`422 unknown_principal` otherwise);
//! directory groups (`CN=...`) and machines are taken as given. Each change re-indexes what
//! it affects before the answer.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::{authorize_namespace, authorize_project};
use super::namespaces::{new_namespace_profile, reindex_namespace};
use super::permissions::parse_principal;
use super::projects::{loader_error, reindex_project};
use crate::app::AppState;
use crate::audit::AuditEvent;
use crate::auth::Principal;
pub use crate::catalog::permissions::ensure_principal_exists;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorCode};
use crate::permissions::{
    AccessRule, Action, Level, PrincipalRef, Profile, ProfileLocation, ProfileScope,
    ResolvedProfile, ScopeChain,
};
use crate::storage::{PutCondition, StorageError};

/// A grant level as a team registry names it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberLevel {
    /// Read-only (`viewers`).
    Guest,
    /// Pushes versions and files (`writers`).
    Developer,
    /// Manages (`owners`).
    Maintainer,
}

impl MemberLevel {
    /// The profile level it stands for.
    #[must_use]
    pub fn level(self) -> Level {
        match self {
            Self::Guest => Level::Viewer,
            Self::Developer => Level::Writer,
            Self::Maintainer => Level::Owner,
        }
    }

    /// The member level of a profile level.
    #[must_use]
    pub fn of(level: Level) -> Self {
        match level {
            Level::Viewer => Self::Guest,
            Level::Writer => Self::Developer,
            Level::Owner => Self::Maintainer,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Developer => "developer",
            Self::Maintainer => "maintainer",
        }
    }
}

/// `POST .../members` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Who (`alice`, `group:ml`, `CN=...`, `machine:ci`).
    pub principal: String,
    /// `maintainer` (namespaces only), `developer` or `guest`.
    pub level: MemberLevel,
    /// When the grant ends (RFC 3339); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Checks that the grantee exists (accounts and local groups) and that its role may hold
/// `level` (`422 role_too_low`).
pub async fn check_grantee(
    app: &AppState,
    grantee: &PrincipalRef,
    level: MemberLevel,
) -> ApiResult<()> {
    let role = ensure_principal_exists(app, grantee).await?;
    if let Some(role) = role
        && !role.may_be_granted(level.level())
    {
        return Err(ApiError::new(
            ErrorCode::RoleTooLow,
            format!(
                "{grantee} has the role {role}, which cannot be granted {}",
                level.as_str()
            ),
        ));
    }
    Ok(())
}

/// Read-modify-write of the profile at `location` with `If-Match` (retried on a concurrent
/// change); `initial` stands for an absent profile. `change` answers whether it changed
/// anything (`false`: nothing is written).
async fn update_profile(
    app: &AppState,
    location: &ProfileLocation,
    initial: Profile,
    change: &(dyn Fn(&mut Profile) -> ApiResult<bool> + Send + Sync),
) -> ApiResult<Profile> {
    for _ in 0..5 {
        let stored = app
            .profiles
            .load_uncached(location)
            .await
            .map_err(loader_error)?;
        let (mut profile, condition) = match stored {
            Some(stored) => (stored.profile, PutCondition::IfMatch(stored.etag)),
            None => (initial.clone(), PutCondition::IfAbsent),
        };
        if !change(&mut profile)? {
            return Ok(profile);
        }
        match app
            .profiles
            .write_profile_if(location, profile, condition)
            .await
        {
            Ok(profile) => return Ok(profile),
            Err(crate::permissions::LoaderError::Storage(
                StorageError::PreconditionFailed { .. } | StorageError::AlreadyExists { .. },
            )) => {}
            Err(error) => return Err(loader_error(error)),
        }
    }
    Err(ApiError::new(
        ErrorCode::PreconditionFailed,
        "the profile changed concurrently, retry",
    ))
}

/// Lists `grantee` at exactly `level` (removed from the other lists), with its expiry.
fn set_level(
    profile: &mut Profile,
    grantee: &PrincipalRef,
    level: Level,
    expires_at: Option<DateTime<Utc>>,
) {
    remove(profile, grantee);
    let list = match level {
        Level::Owner => &mut profile.owners,
        Level::Writer => &mut profile.writers,
        Level::Viewer => &mut profile.viewers,
    };
    list.push(grantee.clone());
    if let Some(at) = expires_at {
        profile.expires.insert(grantee.clone(), at);
    }
}

/// Whether `rule` lets a principal listed at `level` through.
fn admits(rule: AccessRule, level: Level) -> bool {
    match rule {
        AccessRule::Authenticated | AccessRule::Public => true,
        AccessRule::None => false,
        rule => rule
            .required_level()
            .is_some_and(|required| level >= required),
    }
}

/// The list-based rule that admits `level`.
fn rule_for(level: Level) -> AccessRule {
    match level {
        Level::Owner => AccessRule::Owners,
        Level::Writer => AccessRule::Writers,
        Level::Viewer => AccessRule::Viewers,
    }
}

/// Opens the rules in force (`resolved`) just enough that a grant at `level` means what it
/// says: every member reads and downloads, developers push. A grant that leaves its grantee
/// locked out by `read_access: owners` would be a silent no-op.
fn admit(profile: &mut Profile, resolved: &ResolvedProfile, level: Level) {
    if !admits(resolved.read_access, level) {
        profile.read_access = Some(rule_for(level));
    }
    if !admits(resolved.download_access, level) {
        profile.download_access = Some(rule_for(level));
    }
    if level >= Level::Writer && !admits(resolved.write_access, level) {
        profile.write_access = Some(AccessRule::Writers);
    }
}

/// Removes `grantee` from every list; answers whether it was listed.
fn remove(profile: &mut Profile, grantee: &PrincipalRef) -> bool {
    let before = profile.owners.len() + profile.writers.len() + profile.viewers.len();
    profile.owners.retain(|p| p != grantee);
    profile.writers.retain(|p| p != grantee);
    profile.viewers.retain(|p| p != grantee);
    profile.expires.remove(grantee);
    before != profile.owners.len() + profile.writers.len() + profile.viewers.len()
}

/// The highest level `principal` is listed at in `profile`, expired entries aside.
fn listed_level(profile: &Profile, principal: &PrincipalRef, now: DateTime<Utc>) -> Option<Level> {
    [Level::Owner, Level::Writer, Level::Viewer]
        .into_iter()
        .find(|level| {
            profile
                .entries(*level)
                .get(principal)
                .is_some_and(|expiry| expiry.is_none_or(|at| now < at))
        })
}

/// Refuses an expiry already past (`422`).
pub fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> ApiResult<()> {
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::new(
            ErrorCode::Unprocessable,
            "expires_at lies in the past",
        ));
    }
    Ok(())
}

fn granted(resource: &str, grantee: &PrincipalRef, request: &GrantRequest) -> Response {
    (
        StatusCode::CREATED,
        ApiJson(json!({
            "resource": resource,
            "principal": grantee.to_string(),
            "level": request.level,
            "expires_at": request.expires_at,
        })),
    )
        .into_response()
}

fn not_a_member(resource: &str, grantee: &PrincipalRef) -> ApiError {
    ApiError::not_found(format!("{grantee} holds no grant on {resource}"))
}

/// Grants a principal a level in a namespace (admins and the namespace's owners).
#[utoipa::path(post, path = "/namespaces/{namespace}/members", tag = "members",
    params(("namespace" = String, Path)), request_body = GrantRequest,
    responses((status = 201, description = "`{resource, principal, level, expires_at}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 422, description = "Unknown principal, or its role is too low", body = crate::error::ErrorBody)))]
pub async fn post_namespace_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> ApiResult<Response> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::GrantMember).await?;
    let grantee = parse_principal(&request.principal)?;
    check_expiry(request.expires_at, app.clock.now())?;
    check_grantee(&app, &grantee, request.level).await?;
    let resource = format!("namespace:{namespace}");
    let event = AuditEvent::new("member.grant")
        .by(&principal)
        .resource(resource.clone())
        .detail("principal", grantee.to_string())
        .detail("level", request.level.as_str());
    app.audit
        .mutation(event, 201, async {
            update_profile(
                &app,
                &ProfileLocation::Namespace(namespace.clone()),
                new_namespace_profile(view.record.visibility),
                &|profile| {
                    set_level(profile, &grantee, request.level.level(), request.expires_at);
                    admit(profile, &view.target.profile, request.level.level());
                    Ok(true)
                },
            )
            .await?;
            reindex_namespace(&app, &namespace).await?;
            Ok(granted(&resource, &grantee, &request))
        })
        .await
}

/// Removes a principal's grant from a namespace (admins and the namespace's owners).
#[utoipa::path(delete, path = "/namespaces/{namespace}/members/{principal}", tag = "members",
    params(("namespace" = String, Path), ("principal" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not a member", body = crate::error::ErrorBody)))]
pub async fn delete_namespace_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((namespace, grantee)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::GrantMember).await?;
    let grantee = parse_principal(&grantee)?;
    let resource = format!("namespace:{namespace}");
    let event = AuditEvent::new("member.revoke")
        .by(&principal)
        .resource(resource.clone())
        .detail("principal", grantee.to_string());
    app.audit
        .mutation(event, 204, async {
            update_profile(
                &app,
                &ProfileLocation::Namespace(namespace.clone()),
                new_namespace_profile(view.record.visibility),
                &|profile| {
                    if remove(profile, &grantee) {
                        Ok(true)
                    } else {
                        Err(not_a_member(&resource, &grantee))
                    }
                },
            )
            .await?;
            reindex_namespace(&app, &namespace).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// Grants a principal `developer` or `guest` on one project (admins, the namespace's owners,
/// the project's owners).
#[utoipa::path(post, path = "/projects/{project}/members", tag = "members",
    params(("project" = String, Path)), request_body = GrantRequest,
    responses((status = 201, description = "`{resource, principal, level, expires_at}`"),
        (status = 403, description = "Not an owner", body = crate::error::ErrorBody),
        (status = 409, description = "Redundant: the namespace already grants as much", body = crate::error::ErrorBody),
        (status = 422, description = "Maintainer at project level, unknown principal, or role too low", body = crate::error::ErrorBody)))]
pub async fn post_project_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
    ApiJson(request): ApiJson<GrantRequest>,
) -> ApiResult<Response> {
    let view = authorize_project(&app, &principal, &project, Action::GrantMember).await?;
    if request.level == MemberLevel::Maintainer {
        return Err(ApiError::new(
            ErrorCode::NoMaintainerAtProjectLevel,
            "maintainer is a namespace grant; grant developer or guest on a project",
        ));
    }
    let grantee = parse_principal(&request.principal)?;
    check_expiry(request.expires_at, app.clock.now())?;
    check_grantee(&app, &grantee, request.level).await?;
    let namespace = view.record.namespace.clone();
    let chain = app
        .profiles
        .load_chain_uncached(namespace.as_deref(), Some(&project), None)
        .await
        .map_err(loader_error)?;
    let now = app.clock.now();
    // What the namespace already grants, while its grants reach the project.
    let reaches = chain.project.as_ref().is_none_or(|profile| profile.inherit);
    if let (Some(namespace), Some(profile), true) = (&namespace, &chain.namespace, reaches)
        && let Some(level) = listed_level(profile, &grantee, now)
        && level >= request.level.level()
    {
        return Err(ApiError::new(
            ErrorCode::RedundantGrant,
            format!(
                "{grantee} is already {} of namespace {namespace}",
                MemberLevel::of(level).as_str()
            ),
        ));
    }
    if chain
        .project
        .as_ref()
        .is_some_and(|profile| listed_level(profile, &grantee, now) == Some(Level::Owner))
    {
        return Err(ApiError::new(
            ErrorCode::RedundantGrant,
            format!("{grantee} already owns {project}"),
        ));
    }
    let resource = format!("project:{project}");
    let event = AuditEvent::new("member.grant")
        .by(&principal)
        .resource(resource.clone())
        .project(&project)
        .detail("principal", grantee.to_string())
        .detail("level", request.level.as_str());
    let initial = Profile {
        scope: Some(ProfileScope::Project),
        inherit: namespace.is_some(),
        ..Profile::default()
    };
    app.audit
        .mutation(event, 201, async {
            update_profile(
                &app,
                &ProfileLocation::Project(project.clone()),
                initial,
                &|profile| {
                    set_level(profile, &grantee, request.level.level(), request.expires_at);
                    admit(profile, &view.target.profile, request.level.level());
                    Ok(true)
                },
            )
            .await?;
            reindex_project(&app, &project).await?;
            Ok(granted(&resource, &grantee, &request))
        })
        .await
}

/// Removes a principal's grant from one project (admins, the namespace's owners, the
/// project's owners).
#[utoipa::path(delete, path = "/projects/{project}/members/{principal}", tag = "members",
    params(("project" = String, Path), ("principal" = String, Path)),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not a member of the project", body = crate::error::ErrorBody)))]
pub async fn delete_project_member(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath((project, grantee)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    authorize_project(&app, &principal, &project, Action::GrantMember).await?;
    let grantee = parse_principal(&grantee)?;
    let resource = format!("project:{project}");
    let event = AuditEvent::new("member.revoke")
        .by(&principal)
        .resource(resource.clone())
        .project(&project)
        .detail("principal", grantee.to_string());
    app.audit
        .mutation(event, 204, async {
            let location = ProfileLocation::Project(project.clone());
            // An absent profile lists nobody: the change below answers 404.
            update_profile(&app, &location, Profile::default(), &|profile| {
                if remove(profile, &grantee) {
                    Ok(true)
                } else {
                    Err(not_a_member(&resource, &grantee))
                }
            })
            .await?;
            reindex_project(&app, &project).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

/// One grant of a member and where it comes from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The level granted there.
    pub level: MemberLevel,
    /// `project:<p>`, `namespace:<ns>` or `global`.
    pub source: String,
    /// When it ends; never when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// One effective member.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The principal.
    pub principal: String,
    /// Its effective level (the highest of its grants).
    pub level: MemberLevel,
    /// Every grant it holds here, nearest scope first.
    pub grants: Vec<Grant>,
}

/// The access rules in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccessRules {
    /// Who sees the metadata.
    pub read_access: String,
    /// Who downloads.
    pub download_access: String,
    /// Who pushes.
    pub write_access: String,
}

/// `GET .../members` answer: who can access this, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberList {
    /// `project:<p>` or `namespace:<ns>`.
    pub resource: String,
    /// The rules of the resolved profile (`authenticated` and `public` reach beyond members).
    pub access: AccessRules,
    /// Effective members, by principal.
    pub members: Vec<Member>,
    /// How many.
    pub count: usize,
}

/// The effective members from the profiles that resolution uses: the first profile found,
/// then, while it says `inherit`, the next one above.
fn effective_members(
    resource: String,
    levels: &[(String, Option<&Profile>)],
    resolved: &ResolvedProfile,
    now: DateTime<Utc>,
) -> MemberList {
    let mut members: BTreeMap<String, Vec<Grant>> = BTreeMap::new();
    let contributing = levels
        .iter()
        .filter_map(|(source, profile)| profile.map(|profile| (source, profile)));
    for (source, profile) in contributing {
        for level in [Level::Owner, Level::Writer, Level::Viewer] {
            for (principal, expiry) in profile.entries(level) {
                if expiry.is_some_and(|at| now >= at) {
                    continue;
                }
                members
                    .entry(principal.to_string())
                    .or_default()
                    .push(Grant {
                        level: MemberLevel::of(level),
                        source: source.clone(),
                        expires_at: expiry,
                    });
            }
        }
        if !profile.inherit {
            break;
        }
    }
    let members: Vec<Member> = members
        .into_iter()
        .map(|(principal, grants)| Member {
            principal,
            level: grants
                .iter()
                .map(|grant| grant.level)
                .max()
                .unwrap_or(MemberLevel::Guest),
            grants,
        })
        .collect();
    MemberList {
        resource,
        access: AccessRules {
            read_access: resolved.read_access.as_str().to_owned(),
            download_access: resolved.download_access.as_str().to_owned(),
            write_access: resolved.write_access.as_str().to_owned(),
        },
        count: members.len(),
        members,
    }
}

fn chain_levels<'a>(
    chain: &'a ScopeChain,
    namespace: Option<&str>,
    project: Option<&str>,
) -> Vec<(String, Option<&'a Profile>)> {
    let mut levels = Vec::new();
    if let Some(project) = project {
        levels.push((format!("project:{project}"), chain.project.as_ref()));
    }
    if let Some(namespace) = namespace {
        levels.push((format!("namespace:{namespace}"), chain.namespace.as_ref()));
    }
    levels.push(("global".to_owned(), chain.global.as_ref()));
    levels
}

/// Who can access a namespace, and through which grant.
#[utoipa::path(get, path = "/namespaces/{namespace}/members", tag = "members",
    params(("namespace" = String, Path)),
    responses((status = 200, description = "Effective members", body = MemberList),
        (status = 404, description = "No such namespace, or not visible", body = crate::error::ErrorBody)))]
pub async fn get_namespace_members(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(namespace): ApiPath<String>,
) -> ApiResult<ApiJson<MemberList>> {
    let view = authorize_namespace(&app, &principal, &namespace, Action::ReadPermissions).await?;
    let chain = app
        .profiles
        .load_chain(Some(&namespace), None, None)
        .await
        .map_err(loader_error)?;
    Ok(ApiJson(effective_members(
        format!("namespace:{namespace}"),
        &chain_levels(&chain, Some(&namespace), None),
        &view.target.profile,
        app.clock.now(),
    )))
}

/// Who can access a project, and through which grant (its own, its namespace's, global).
#[utoipa::path(get, path = "/projects/{project}/members", tag = "members",
    params(("project" = String, Path)),
    responses((status = 200, description = "Effective members", body = MemberList),
        (status = 404, description = "No such project, or not readable", body = crate::error::ErrorBody)))]
pub async fn get_project_members(
    State(app): State<AppState>,
    principal: Principal,
    ApiPath(project): ApiPath<String>,
) -> ApiResult<ApiJson<MemberList>> {
    let view = authorize_project(&app, &principal, &project, Action::ReadPermissions).await?;
    let namespace = view.record.namespace.clone();
    let chain = app
        .profiles
        .load_chain(namespace.as_deref(), Some(&project), None)
        .await
        .map_err(loader_error)?;
    Ok(ApiJson(effective_members(
        format!("project:{project}"),
        &chain_levels(&chain, namespace.as_deref(), Some(&project)),
        &view.target.profile,
        app.clock.now(),
    )))
}
