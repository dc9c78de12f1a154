//! API keys over the account service (`auth`): what a key scope names (exactly one project
//! or namespace) and creating a key for its creator at the app's clock (the service checks
//! that the creator may grant each scope and issues the secret).

use super::{Error, Result};
use crate::app::AppState;
use crate::auth::Principal;
use crate::auth::api_keys::CreatedApiKey;
use crate::error::ErrorCode;
use crate::permissions::{GrantAccess, GrantTarget, MachineGrant};

/// The grant of one key scope: exactly one of `project` or `namespace`, else
/// `422 unprocessable`.
pub fn scope_grant(
    project: Option<String>,
    namespace: Option<String>,
    access: GrantAccess,
) -> Result<MachineGrant> {
    let target = match (project, namespace) {
        (Some(project), None) => GrantTarget::Project(project),
        (None, Some(namespace)) => GrantTarget::Namespace(namespace),
        _ => {
            return Err(Error::new(
                ErrorCode::Unprocessable,
                "each scope names exactly one of project or namespace",
            ));
        }
    };
    Ok(MachineGrant { target, access })
}

/// Creates an API key acting for `principal` inside `scopes`; its grants are dated by the
/// app's clock.
pub async fn create_api_key(
    app: &AppState,
    principal: &Principal,
    name: &str,
    scopes: Vec<MachineGrant>,
    expires_in_days: Option<u32>,
) -> Result<CreatedApiKey> {
    let now = app.clock.now();
    Ok(app
        .auth
        .create_api_key(principal, name, scopes, expires_in_days, now)
        .await?)
}
