//! Team membership as profile edits: grant levels (`maintainer`, `developer`, `guest`) and
//! what each means in a profile, the checks a grant passes (the grantee exists, its role may
//! hold the level, the expiry is ahead, the grant is not redundant), and the read-modify-write
//! of a profile with `If-Match` that applies it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::permissions::ensure_principal_exists;
use super::projects::reindex_project;
use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::permissions::{
    AccessRule, Level, PrincipalRef, Profile, ProfileLocation, ProfileScope, ResolvedProfile,
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

    /// The level's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
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
) -> Result<()> {
    let role = ensure_principal_exists(app, grantee).await?;
    if let Some(role) = role
        && !role.may_be_granted(level.level())
    {
        return Err(Error::new(
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
pub async fn update_profile(
    app: &AppState,
    location: &ProfileLocation,
    initial: Profile,
    change: &(dyn Fn(&mut Profile) -> Result<bool> + Send + Sync),
) -> Result<Profile> {
    for _ in 0..5 {
        let stored = app.profiles.load_uncached(location).await?;
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
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::new(
        ErrorCode::PreconditionFailed,
        "the profile changed concurrently, retry",
    ))
}

/// Lists `grantee` at exactly `level` (removed from the other lists), with its expiry.
pub fn set_level(
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
pub fn admits(rule: AccessRule, level: Level) -> bool {
    match rule {
        AccessRule::Authenticated | AccessRule::Public => true,
        AccessRule::None => false,
        rule => rule
            .required_level()
            .is_some_and(|required| level >= required),
    }
}

/// The list-based rule that admits `level`.
pub fn rule_for(level: Level) -> AccessRule {
    match level {
        Level::Owner => AccessRule::Owners,
        Level::Writer => AccessRule::Writers,
        Level::Viewer => AccessRule::Viewers,
    }
}

/// Opens the rules in force (`resolved`) just enough that a grant at `level` means what it
/// says: every member reads and downloads, developers push. A grant that leaves its grantee
/// locked out by `read_access: owners` would be a silent no-op.
pub fn admit(profile: &mut Profile, resolved: &ResolvedProfile, level: Level) {
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
pub fn remove(profile: &mut Profile, grantee: &PrincipalRef) -> bool {
    let before = profile.owners.len() + profile.writers.len() + profile.viewers.len();
    profile.owners.retain(|p| p != grantee);
    profile.writers.retain(|p| p != grantee);
    profile.viewers.retain(|p| p != grantee);
    profile.expires.remove(grantee);
    before != profile.owners.len() + profile.writers.len() + profile.viewers.len()
}

/// The highest level `principal` is listed at in `profile`, expired entries aside.
pub fn listed_level(
    profile: &Profile,
    principal: &PrincipalRef,
    now: DateTime<Utc>,
) -> Option<Level> {
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
pub fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<()> {
    if expires_at.is_some_and(|at| at <= now) {
        return Err(Error::new(
            ErrorCode::Unprocessable,
            "expires_at lies in the past",
        ));
    }
    Ok(())
}

/// Refuses `maintainer` on a project (`422 no_maintainer_at_project_level`): it is a
/// namespace grant.
pub fn check_project_level(level: MemberLevel) -> Result<()> {
    if level == MemberLevel::Maintainer {
        return Err(Error::new(
            ErrorCode::NoMaintainerAtProjectLevel,
            "maintainer is a namespace grant; grant developer or guest on a project",
        ));
    }
    Ok(())
}

/// The checks of a project grant, in the order their refusals are answered: the level
/// (`maintainer` is a namespace grant), the principal's syntax, the expiry, the grantee
/// (exists, role may hold the level), then redundancy. Answers the grantee.
pub async fn check_project_grant(
    app: &AppState,
    project: &str,
    namespace: Option<&str>,
    request: &GrantRequest,
) -> Result<PrincipalRef> {
    check_project_level(request.level)?;
    let grantee = PrincipalRef::parse(&request.principal).map_err(Error::from)?;
    check_expiry(request.expires_at, app.clock.now())?;
    check_grantee(app, &grantee, request.level).await?;
    check_project_grant_adds(app, project, namespace, &grantee, request.level).await?;
    Ok(grantee)
}

/// Refuses a project grant that adds nothing: `409 redundant_grant` when the namespace
/// already grants as much (while its grants reach the project) or the grantee owns the
/// project.
pub async fn check_project_grant_adds(
    app: &AppState,
    project: &str,
    namespace: Option<&str>,
    grantee: &PrincipalRef,
    level: MemberLevel,
) -> Result<()> {
    let chain = app
        .profiles
        .load_chain_uncached(namespace, Some(project), None)
        .await?;
    let now = app.clock.now();
    // What the namespace already grants, while its grants reach the project.
    let reaches = chain.project.as_ref().is_none_or(|profile| profile.inherit);
    if let (Some(namespace), Some(profile), true) = (namespace, &chain.namespace, reaches)
        && let Some(granted) = listed_level(profile, grantee, now)
        && granted >= level.level()
    {
        return Err(Error::new(
            ErrorCode::RedundantGrant,
            format!(
                "{grantee} is already {} of namespace {namespace}",
                MemberLevel::of(granted).as_str()
            ),
        ));
    }
    if chain
        .project
        .as_ref()
        .is_some_and(|profile| listed_level(profile, grantee, now) == Some(Level::Owner))
    {
        return Err(Error::new(
            ErrorCode::RedundantGrant,
            format!("{grantee} already owns {project}"),
        ));
    }
    Ok(())
}

/// The mutation of a project grant: lists the grantee at the request's level in the
/// project's profile (created with `inherit` when the project is in a namespace), opens the
/// rules in force (`resolved`) enough for the grant to mean what it says, and re-indexes.
pub async fn grant_on_project(
    app: &AppState,
    project: &str,
    in_namespace: bool,
    resolved: &ResolvedProfile,
    grantee: &PrincipalRef,
    request: &GrantRequest,
) -> Result<()> {
    let initial = Profile {
        scope: Some(ProfileScope::Project),
        inherit: in_namespace,
        ..Profile::default()
    };
    update_profile(
        app,
        &ProfileLocation::Project(project.to_owned()),
        initial,
        &|profile| {
            set_level(profile, grantee, request.level.level(), request.expires_at);
            admit(profile, resolved, request.level.level());
            Ok(true)
        },
    )
    .await?;
    reindex_project(app, project).await
}

/// `404`: `grantee` holds no grant on `resource`.
pub fn not_a_member(resource: &str, grantee: &PrincipalRef) -> Error {
    Error::not_found(format!("{grantee} holds no grant on {resource}"))
}

/// The profiles resolution reads for a resource, nearest scope first, each named by its
/// source (`project:<p>`, `namespace:<ns>`, `global`); `None` where a scope has none.
pub fn chain_levels<'a>(
    chain: &'a crate::permissions::ScopeChain,
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
