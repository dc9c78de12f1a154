//! Permission profiles as data: merging a patch into a stored profile (read-modify-write
//! with `If-Match`, retried) and the checks every grant passes — named principals exist, no
//! account is granted more than its role may hold — and read-only shares (a viewer grant
//! with an optional expiry), given and taken back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use serde_json::Value;

use super::projects::reindex_project;
use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::permissions::{
    AccessRule, Level, PrincipalRef, Profile, ProfileLocation, ProfileScope, Role,
};
use crate::storage::PutCondition;

/// Checks that no account in `profile` is granted more than its role allows (`422
/// grant_exceeds_role`), looking roles up through the account store.
pub async fn validate_grants(app: &AppState, profile: &Profile) -> Result<()> {
    let mut roles: HashMap<PrincipalRef, Role> = HashMap::new();
    for level in [Level::Owner, Level::Writer, Level::Viewer] {
        for principal in profile.entries(level).into_keys() {
            let role = match &principal {
                PrincipalRef::User(name) => app.auth.account(name).await?.map(|a| a.role),
                PrincipalRef::Machine(_) => Some(Role::Machine),
                _ => None,
            };
            if let Some(role) = role {
                roles.insert(principal, role);
            }
        }
    }
    profile
        .validate_grants(|principal| roles.get(principal).copied())
        .map_err(Error::from)
}

/// Every principal a profile lists (owners, writers, viewers).
fn listed_principals(profile: &Profile) -> std::collections::BTreeSet<PrincipalRef> {
    profile
        .owners
        .iter()
        .chain(&profile.writers)
        .chain(&profile.viewers)
        .cloned()
        .collect()
}

/// Merges `patch` into the profile at `location` (read-modify-write with `If-Match`),
/// validating scope and grants. Principals the patch adds must exist when they are accounts
/// or local groups (`422 unknown_principal`, as for shares and member grants), so a name
/// cannot be pre-claimed; those already listed are kept as they are.
pub async fn merge_profile(
    app: &AppState,
    location: &ProfileLocation,
    patch: Value,
) -> Result<Profile> {
    for _ in 0..5 {
        let stored = app.profiles.load_uncached(location).await?;
        let (mut profile, condition) = match stored {
            Some(stored) => (stored.profile, PutCondition::IfMatch(stored.etag)),
            None => (
                Profile {
                    scope: Some(location.scope()),
                    ..Profile::default()
                },
                PutCondition::IfAbsent,
            ),
        };
        let before = listed_principals(&profile);
        profile.merge_partial(patch.clone())?;
        for added in listed_principals(&profile).difference(&before) {
            ensure_principal_exists(app, added).await?;
        }
        validate_grants(app, &profile).await?;
        match app
            .profiles
            .write_profile_if(location, profile, condition)
            .await
        {
            Ok(profile) => return Ok(profile),
            Err(crate::permissions::LoaderError::Storage(
                crate::storage::StorageError::PreconditionFailed { .. }
                | crate::storage::StorageError::AlreadyExists { .. },
            )) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::new(
        ErrorCode::PreconditionFailed,
        "the profile changed concurrently, retry",
    ))
}

/// Checks that a principal exists when it is an account or a local group (`422
/// unknown_principal`: a grant to a name nobody holds could be claimed later); directory groups
/// and machines are taken as given. Answers the role of an account or machine.
pub async fn ensure_principal_exists(
    app: &AppState,
    principal: &PrincipalRef,
) -> Result<Option<Role>> {
    let unknown = || {
        Error::new(
            ErrorCode::UnknownPrincipal,
            format!("no such principal {principal}"),
        )
    };
    Ok(match principal {
        PrincipalRef::User(name) => Some(app.auth.account(name).await?.ok_or_else(unknown)?.role),
        PrincipalRef::Machine(_) => Some(Role::Machine),
        PrincipalRef::Group(name) => {
            let groups = app.auth.all_groups().await?;
            if !groups.iter().any(|group| &group.name == name) {
                return Err(unknown());
            }
            None
        }
        PrincipalRef::DirectoryGroup(_) => None,
    })
}

/// The mutation of `POST /projects/{p}/share`: adds the viewer grant (with its expiry) to the
/// project profile and re-indexes the project.
pub async fn share(
    app: &AppState,
    project: &str,
    grantee: &PrincipalRef,
    expires_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let location = ProfileLocation::Project(project.to_owned());
    let stored = app.profiles.load_uncached(&location).await?;
    let (mut profile, condition) = match stored {
        Some(stored) => (stored.profile, PutCondition::IfMatch(stored.etag)),
        None => (
            Profile {
                scope: Some(ProfileScope::Project),
                inherit: true,
                ..Profile::default()
            },
            PutCondition::IfAbsent,
        ),
    };
    if profile.owners.contains(grantee) || profile.writers.contains(grantee) {
        return Err(Error::new(
            ErrorCode::AlreadyGranted,
            format!("{grantee} already has a higher grant on {project}"),
        ));
    }
    if !profile.viewers.contains(grantee) {
        profile.viewers.push(grantee.clone());
    }
    match expires_at {
        Some(at) => {
            profile.expires.insert(grantee.clone(), at);
        }
        None => {
            profile.expires.remove(grantee);
        }
    }
    // A share is a read-only grant: it must let viewers read and download.
    if matches!(
        profile.read_rule(),
        AccessRule::Owners | AccessRule::Writers
    ) {
        profile.read_access = Some(AccessRule::Viewers);
    }
    if matches!(
        profile.download_rule(),
        AccessRule::Owners | AccessRule::Writers | AccessRule::None
    ) {
        profile.download_access = Some(AccessRule::Viewers);
    }
    validate_grants(app, &profile).await?;
    app.profiles
        .write_profile_if(&location, profile, condition)
        .await?;
    // Indexing notes the expiry; the expiry re-indexer (`jobs::schedule`) re-indexes the
    // project at that moment.
    reindex_project(app, project).await?;
    Ok(())
}

/// The mutation of `DELETE /projects/{p}/share/{principal}`: removes the viewer grant and
/// re-indexes the project; `404` when there is none.
pub async fn unshare(app: &AppState, project: &str, grantee: &PrincipalRef) -> Result<()> {
    let location = ProfileLocation::Project(project.to_owned());
    let stored = app
        .profiles
        .load_uncached(&location)
        .await?
        .ok_or_else(|| Error::not_found(format!("{project} is not shared with {grantee}")))?;
    let mut profile = stored.profile;
    if !profile.viewers.contains(grantee) {
        return Err(Error::not_found(format!(
            "{project} is not shared with {grantee}"
        )));
    }
    profile.viewers.retain(|viewer| viewer != grantee);
    profile.expires.remove(grantee);
    app.profiles
        .write_profile_if(&location, profile, PutCondition::IfMatch(stored.etag))
        .await?;
    reindex_project(app, project).await?;
    Ok(())
}
