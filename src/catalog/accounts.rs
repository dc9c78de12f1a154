//! Account workflows that reach beyond the account service: freeing a retired name, which
//! also changes profiles and must re-index what they govern.

use super::Result;
use super::projects::{index_error, publish};
use crate::app::AppState;
use crate::auth::service::FreedName;
use crate::auth::store::TombstoneKind;
use crate::feed::Change;
use crate::permissions::ProfileLocation;

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
