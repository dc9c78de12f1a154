//! Namespaces as domain operations: creating one (record and the profile its visibility
//! stands for), applying a PATCH and writing it, the projects a namespace holds (an index
//! search) and re-indexing them when what they inherit changes. Claims and deleting an empty
//! one are in [`super::namespace_deletion`] (re-exported here).

use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;
use serde_json::json;

pub use super::namespace_deletion::{
    Claim, STALE_DELETION_MARK, claim_project, claimed_projects, delete_namespace, release_claim,
    release_stale_deletion_marks,
};
use super::permissions::merge_profile;
use super::projects::{create_record, index_error, publish, write_record};
use super::target::{NamespaceView, load_namespace};
use super::{Error, Result};
use crate::app::AppState;
use crate::feed::Change;
use crate::model::names;
use crate::model::records::{NamespaceRecord, NamespaceVisibility};
use crate::permissions::{AccessRule, LifecycleState, Profile, ProfileLocation, ProfileScope};
use crate::storage::{PutCondition, keys};

/// The read rule a namespace's visibility stands for.
pub fn read_rule(visibility: NamespaceVisibility) -> AccessRule {
    match visibility {
        NamespaceVisibility::Public => AccessRule::Authenticated,
        NamespaceVisibility::Private => AccessRule::Viewers,
    }
}

/// The profile of a new namespace.
#[must_use]
pub fn new_namespace_profile(visibility: NamespaceVisibility) -> Profile {
    Profile {
        scope: Some(ProfileScope::Namespace),
        read_access: Some(read_rule(visibility)),
        download_access: Some(AccessRule::Viewers),
        write_access: Some(AccessRule::Writers),
        ..Profile::default()
    }
}

/// The projects of a namespace, as the index knows them (an index search, on the blocking
/// pool).
pub async fn namespace_projects(app: &AppState, namespace: &str) -> Result<Vec<String>> {
    let (index, namespace) = (app.index.clone(), namespace.to_owned());
    crate::index::off_runtime(move || {
        crate::index::search::projects_in_namespace(
            &index,
            &crate::permissions::AccessScope::Unrestricted,
            &namespace,
        )
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::from)
}

/// Tells every replica that a namespace's profile or record changed, naming its `projects`
/// to re-index — none, when it holds none: an entry still makes the other replicas drop their
/// cached profiles, which would otherwise keep a revoked grant (or a deleted namespace's
/// grants, for a new namespace of the same name) in force there until the cache's TTL.
pub async fn publish_namespace_change(app: &AppState, projects: Vec<String>) -> Result<()> {
    publish(app, Change::Projects { projects }).await
}

/// [`publish_namespace_change`] naming no project, after a change that is stored and cannot
/// be taken back (a creation, a deletion): a failure to publish is logged, not answered — the
/// other replicas' cached copy then lives out its TTL.
pub async fn announce_namespace_change(app: &AppState, namespace: &str) {
    if let Err(error) = publish_namespace_change(app, Vec::new()).await {
        tracing::warn!(namespace, %error, "namespace change not published to the change feed");
    }
}

/// Re-indexes every project of a namespace now (a change of its state, visibility or grants
/// changes who may find them); every other replica hears of it, projects or not.
pub async fn reindex_namespace(app: &AppState, namespace: &str) -> Result<()> {
    let projects = namespace_projects(app, namespace).await?;
    publish_namespace_change(app, projects.clone()).await?;
    if projects.is_empty() {
        return Ok(());
    }
    app.indexer
        .index_projects(Some(projects), |_, _| {})
        .await
        .map(|_| ())
        .map_err(index_error)
}

/// Starts a job re-indexing every project of a namespace; answers its id.
pub async fn spawn_namespace_job(app: &AppState, actor: &str, namespace: &str) -> Result<String> {
    let projects = namespace_projects(app, namespace).await?;
    publish_namespace_change(app, projects.clone()).await?;
    let job = app.jobs.create(crate::jobs::JobKind::IndexNamespace, actor);
    let id = job.id().to_owned();
    let indexer = app.indexer.clone();
    app.jobs
        .start(job, move |job| async move {
            if projects.is_empty() {
                return Ok(());
            }
            indexer
                .index_projects(Some(projects), |done, total| {
                    job.progress(done as u64, total as u64);
                })
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        })
        .await;
    Ok(id)
}

/// Creates a namespace record (`409 already_exists` when the name is taken) and the profile
/// its visibility stands for.
pub async fn create_namespace(app: &AppState, record: NamespaceRecord) -> Result<NamespaceRecord> {
    create_record(app, &keys::namespace_record(&record.name), &record, || {
        format!("namespace {} already exists", record.name)
    })
    .await?;
    app.profiles
        .write_profile(
            &ProfileLocation::Namespace(record.name.clone()),
            new_namespace_profile(record.visibility),
        )
        .await?;
    // The name may have been a deleted namespace's, whose profile another replica still holds.
    announce_namespace_change(app, &record.name).await;
    Ok(record)
}

/// `PATCH /namespaces/{ns}` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNamespaceRequest {
    /// New description.
    pub description: Option<String>,
    /// New visibility (rewrites the profile's `read_access`).
    pub visibility: Option<NamespaceVisibility>,
    /// Whether writers may create projects.
    pub auto_create: Option<bool>,
    /// New lifecycle state (owners: active ↔ deprecated; admins: anything).
    #[schema(value_type = Option<String>)]
    pub state: Option<LifecycleState>,
}

/// A namespace record with `request` applied: the new record, the fields it changes, and
/// the audit action (`state.change` when the state moves, else `namespace.update`).
#[must_use]
pub fn apply_patch(
    current: &NamespaceRecord,
    request: &PatchNamespaceRequest,
) -> (NamespaceRecord, Vec<&'static str>, &'static str) {
    let mut record = current.clone();
    let mut changed = Vec::new();
    if let Some(description) = &request.description {
        record.description.clone_from(description);
        changed.push("description");
    }
    if let Some(visibility) = request.visibility {
        record.visibility = visibility;
        changed.push("visibility");
    }
    if let Some(auto_create) = request.auto_create {
        record.auto_create = auto_create;
        changed.push("auto_create");
    }
    let action = match request.state {
        Some(to) => {
            changed.push("state");
            if to == current.state {
                "namespace.update"
            } else {
                "state.change"
            }
        }
        None => "namespace.update",
    };
    if let Some(state) = request.state {
        record.state = state;
    }
    (record, changed, action)
}

/// Writes a namespace record changed by `request` (`If-Match` its `etag`), rewrites the
/// profile's read rule when the visibility changes, and re-indexes its projects when what
/// they inherit changes (its visibility or state).
pub async fn update_namespace(
    app: &AppState,
    record: NamespaceRecord,
    etag: String,
    request: &PatchNamespaceRequest,
) -> Result<NamespaceRecord> {
    let (visibility, reindex) = (
        request.visibility,
        request.visibility.is_some() || request.state.is_some(),
    );
    let namespace = record.name.clone();
    write_record(
        app,
        &keys::namespace_record(&namespace),
        &record,
        PutCondition::IfMatch(etag),
    )
    .await?;
    if let Some(visibility) = visibility {
        merge_profile(
            app,
            &ProfileLocation::Namespace(namespace.clone()),
            json!({"read_access": read_rule(visibility).as_str()}),
        )
        .await?;
    }
    if reindex {
        reindex_namespace(app, &namespace).await?;
    }
    Ok(record)
}

/// Namespaces loaded at once by `GET /namespaces`.
const NAMESPACE_READS: usize = 16;

/// The names of the namespaces that have a record (one listing of `..meta/namespaces/`).
pub(super) async fn namespace_names(app: &AppState) -> Result<Vec<String>> {
    let prefix = keys::namespaces_prefix();
    Ok(app
        .storage
        .list_all(&prefix)
        .await?
        .iter()
        .filter_map(|object| {
            object
                .key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix("/namespace.json"))
        })
        .filter(|name| names::validate_namespace(name).is_ok())
        .map(str::to_owned)
        .collect())
}

/// Every namespace that exists with its record and profile chain (read concurrently),
/// unfiltered: the caller decides which it may see.
pub async fn load_all(app: &AppState) -> Result<Vec<NamespaceView>> {
    let names = namespace_names(app).await?;
    // Each namespace's record and profile chain, read concurrently rather than one by one.
    let views: Vec<Option<NamespaceView>> = futures::stream::iter(names)
        .map(|name| async move { load_namespace(app, &name).await })
        .buffered(NAMESPACE_READS)
        .try_collect()
        .await?;
    Ok(views.into_iter().flatten().collect())
}
