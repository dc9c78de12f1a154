//! Account workflows over the account service (`auth`): an account by name, an admin's change
//! of its role or state, its deletion (each refusing a name that is not a username as absent),
//! and freeing a retired name, which also changes profiles and must re-index what they govern.

use super::projects::{index_error, publish};
use super::{Error, Result};
use crate::app::AppState;
use crate::auth::service::{AccountChange, AuthError, FreedName};
use crate::auth::store::{AccountRecord, TombstoneKind};
use crate::error::ErrorCode;
use crate::feed::Change;
use crate::model::names;
use crate::permissions::{ProfileLocation, UnknownRole};

/// `404 not_found` for `username`.
fn no_such_user(username: &str) -> Error {
    Error::not_found(format!("user {username} not found"))
}

/// The account `username` (`404 not_found` when absent, or when the name is not a valid
/// username).
pub async fn account(app: &AppState, username: &str) -> Result<AccountRecord> {
    app.auth
        .records()
        .account(username)
        .await
        .map_err(AuthError::from)?
        .filter(|_| names::validate_username(username).is_ok())
        .map(|account| account.record)
        .ok_or_else(|| no_such_user(username))
}

/// Changes an account's role (a role name, `422 unprocessable` when unknown) and/or whether
/// it is disabled; the account service keeps the last admin.
pub async fn change_account(
    app: &AppState,
    username: &str,
    role: Option<&str>,
    disabled: Option<bool>,
) -> Result<AccountRecord> {
    if names::validate_username(username).is_err() {
        return Err(no_such_user(username));
    }
    let role = role
        .map(|role| {
            role.parse().map_err(|error: UnknownRole| {
                Error::new(ErrorCode::Unprocessable, error.to_string())
            })
        })
        .transpose()?;
    Ok(app
        .auth
        .update_account(username, &AccountChange { role, disabled })
        .await?)
}

/// Deletes an account (its name is retired until an admin frees it).
pub async fn delete_account(app: &AppState, username: &str, deleted_by: &str) -> Result<()> {
    if names::validate_username(username).is_err() {
        return Err(no_such_user(username));
    }
    Ok(app.auth.delete_account(username, deleted_by).await?)
}

/// Frees a retired name: removes it from every profile (and, for a user, every group),
/// re-indexes what changed, then lifts the tombstone so the name can be created again
/// (the account service does the first and the last; this adds the re-index).
pub async fn free_name(app: &AppState, kind: TombstoneKind, name: &str) -> Result<FreedName> {
    let freed = app.auth.free_name(kind, name, &app.profiles).await?;
    let mut projects: Vec<String> = Vec::new();
    let mut everything = false;
    for location in &freed.profiles {
        match location {
            ProfileLocation::Project(project) | ProfileLocation::Version { project, .. } => {
                projects.push(project.clone());
            }
            ProfileLocation::Namespace(_) | ProfileLocation::Global => everything = true,
        }
    }
    projects.sort();
    projects.dedup();
    // Search must not keep admitting the old name (a new account may take it next).
    if everything || !projects.is_empty() {
        let change = if everything {
            Change::All
        } else {
            Change::Projects {
                projects: projects.clone(),
            }
        };
        publish(app, change).await?;
        app.indexer
            .index_projects((!everything).then_some(projects), |_, _| {})
            .await
            .map_err(index_error)?;
    }
    Ok(freed)
}
