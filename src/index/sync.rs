//! The sync check: proves that the index and storage agree, and repairs drift.
//!
//! [`check_version`] is ArtifactDB's `/info` report for one version: it recomputes the
//! version's documents from storage (profiles read uncached, so an edit made behind the
//! service's back shows) and compares them, permissions included, with what the index holds.
//! [`check_all`] compares every project and version without reading documents: per version
//! one record, one profile and one listing from storage against fast fields of the index
//! (source files, document paths, and the state hash of every document: its resolved
//! profile, project record fields, effective state and version record — see
//! [`super::indexer::state_hash`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tantivy::query::{AllQuery, TermQuery, TermSetQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::{TantivyDocument, Term};

mod owners;

use self::owners::{OwnerCollector, OwnerState};
use super::SearchIndex;
use super::indexer::{Indexer, IndexerError};
use super::writer::WriteOp;
use crate::permissions::ProfileLocation;
use crate::storage::keys;

/// ArtifactDB's report of one version (`GET /projects/{p}/version/{v}/info`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionReport {
    /// `ok` or `error`.
    pub status: &'static str,
    /// The profile resolved from storage now.
    pub permissions: Value,
    /// What differs.
    pub anomalies: Vec<String>,
    /// What would fix it.
    pub actions: Vec<String>,
    /// Ids of the documents that differ.
    pub drifted_ids: Vec<String>,
    /// Documents the index holds for the version.
    pub indexed_docs: usize,
    /// Documents storage yields for the version.
    pub storage_docs: usize,
}

/// The drift found in one version (or project record, `version` = `None`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Drift {
    /// Project id.
    pub project_id: String,
    /// Version, or `None` for the project record / the whole project.
    pub version: Option<String>,
    /// What differs.
    pub reasons: Vec<String>,
}

/// The global report (`GET /index/sync`).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    /// `ok` when nothing drifted.
    pub status: &'static str,
    /// When the check ran.
    pub checked_at: Option<DateTime<Utc>>,
    /// Projects compared.
    pub projects: usize,
    /// Versions compared.
    pub versions: usize,
    /// Everything that drifted.
    pub drift: Vec<Drift>,
    /// Number of drifted entries.
    pub drift_count: usize,
    /// Whether the drift was repaired (re-indexed).
    pub repaired: bool,
}

fn stored_json(document: &TantivyDocument, field: tantivy::schema::Field) -> Value {
    document
        .get_first(field)
        .and_then(|value| value.as_bytes())
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null)
}

/// The documents the index holds for one owner key: id → stored `_extra.permissions`.
fn indexed_documents(
    index: &SearchIndex,
    owner: &str,
) -> Result<BTreeMap<String, Value>, IndexerError> {
    let fields = index.fields();
    let searcher = index.searcher();
    let query = TermQuery::new(
        Term::from_field_text(fields.version_key, owner),
        IndexRecordOption::Basic,
    );
    let addresses = searcher
        .search(&query, &tantivy::collector::DocSetCollector)
        .map_err(|error| IndexerError::Index(error.into()))?;
    let mut documents = BTreeMap::new();
    for address in addresses {
        let document: TantivyDocument = searcher
            .doc(address)
            .map_err(|error| IndexerError::Index(error.into()))?;
        let source = stored_json(&document, fields.source);
        let id = super::extra::Extra::of(&source)
            .id
            .unwrap_or_default()
            .to_owned();
        documents.insert(id, stored_json(&document, fields.permissions));
    }
    Ok(documents)
}

/// ArtifactDB's `/info` report for one version; `None` when the project or version does not
/// exist in storage.
pub async fn check_version(
    indexer: &Indexer,
    index: &SearchIndex,
    project: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<Option<VersionReport>, IndexerError> {
    let Some(context) = indexer.project_context(project).await? else {
        return Ok(None);
    };
    if indexer
        .storage()
        .head(&keys::version_record(project, version))
        .await
        .is_err_and(|error| error.is_not_found())
    {
        return Ok(None);
    }
    let version_profile = indexer
        .load_profile(&ProfileLocation::Version {
            project: project.to_owned(),
            version: version.to_owned(),
        })
        .await?;
    let has_profile = version_profile.is_some()
        || context.project_profile.is_some()
        || context.namespace_profile.is_some()
        || context.global_profile.is_some();
    let permissions = context.resolve(version_profile).to_json_value();
    let (expected, _) = indexer.version_documents(&context, version, now).await?;
    let indexed = indexed_documents(index, &format!("{project}/{version}"))?;

    let mut anomalies = Vec::new();
    let mut actions = Vec::new();
    let mut drifted = BTreeSet::new();
    if !has_profile {
        anomalies.push("Missing permissions file on storage".to_owned());
        actions.push("create permissions".to_owned());
    }
    let expected_ids: BTreeSet<&str> = expected.iter().map(|d| d.id.as_str()).collect();
    for document in &expected {
        match indexed.get(&document.id) {
            None => {
                anomalies.push(format!("{}: not indexed", document.id));
                drifted.insert(document.id.clone());
            }
            Some(Value::Null) => {
                anomalies.push(format!("{}: missing permissions", document.id));
                drifted.insert(document.id.clone());
            }
            Some(stored) if *stored != *document.permissions => {
                anomalies.push(format!("{}: permissions differ", document.id));
                drifted.insert(document.id.clone());
            }
            Some(_) => {}
        }
    }
    for document in &expected {
        if super::extra::Extra::of(&document.source).oversized == Some(true) {
            anomalies.push(format!(
                "{}: oversized metadata document, indexed as a plain file",
                document.id
            ));
        }
    }
    for id in indexed.keys() {
        if !expected_ids.contains(id.as_str()) {
            anomalies.push(format!("{id}: indexed but not in storage"));
            drifted.insert(id.clone());
        }
    }
    if !drifted.is_empty() {
        actions.push("re-index project/version".to_owned());
    }
    Ok(Some(VersionReport {
        status: if anomalies.is_empty() { "ok" } else { "error" },
        permissions,
        anomalies,
        actions,
        drifted_ids: drifted.into_iter().collect(),
        indexed_docs: indexed.len(),
        storage_docs: expected.len(),
    }))
}

/// What one comparison of storage with the index found.
#[derive(Default)]
struct Comparison {
    drift: Vec<Drift>,
    projects: usize,
    versions: usize,
    /// Projects whose record document drifted (re-indexed whole).
    drifted_projects: Vec<String>,
    /// Versions that drifted (`""` for documents of no version).
    drifted_versions: Vec<(String, String)>,
    /// Projects the index holds and storage does not.
    orphan_projects: BTreeSet<String>,
}

impl Comparison {
    fn drifted(&mut self, project: &str, version: Option<&str>, reasons: Vec<String>) {
        self.drift.push(Drift {
            project_id: project.to_owned(),
            version: version.map(str::to_owned),
            reasons,
        });
        match version {
            None => self.drifted_projects.push(project.to_owned()),
            Some(version) => self
                .drifted_versions
                .push((project.to_owned(), version.to_owned())),
        }
    }
}

/// What the index holds per owner key for every document `query` matches, from fast fields.
fn held_state(
    index: &SearchIndex,
    query: &dyn tantivy::query::Query,
) -> Result<HashMap<String, OwnerState>, IndexerError> {
    index
        .searcher()
        .search(query, &OwnerCollector)
        .map_err(|error| IndexerError::Index(error.into()))
}

/// Compares `projects` as storage holds them now with `held` (what the index held for them,
/// and possibly for others); whatever of `held` matches nothing in storage is drift too.
async fn compare(
    indexer: &Indexer,
    mut held: HashMap<String, OwnerState>,
    projects: &[String],
    now: DateTime<Utc>,
) -> Result<Comparison, IndexerError> {
    let mut found = Comparison::default();
    let mut in_storage: BTreeSet<&str> = BTreeSet::new();
    for project in projects {
        found.projects += 1;
        let Some(context) = indexer.project_context(project).await? else {
            continue;
        };
        in_storage.insert(project);
        let project_document = indexer.project_document(&context, now);
        match held.remove(&format!("{project}/")) {
            None => found.drifted(project, None, vec!["project record not indexed".to_owned()]),
            Some(state) if state.perm_hashes != BTreeSet::from([project_document.perm_hash]) => {
                found.drifted(
                    project,
                    None,
                    vec!["project permissions, record or state differ".to_owned()],
                );
            }
            Some(_) => {}
        }
        for version in indexer.version_names(project).await? {
            found.versions += 1;
            let state = held
                .remove(&format!("{project}/{version}"))
                .unwrap_or_default();
            let Some(expected) = indexer.version_summary(&context, &version).await? else {
                if !state.file_keys.is_empty() {
                    found.drifted(
                        project,
                        Some(&version),
                        vec!["indexed but not in storage".to_owned()],
                    );
                }
                continue;
            };
            let mut reasons = Vec::new();
            for file_key in &state.file_keys {
                if !expected.files.contains(file_key) {
                    reasons.push(format!("{file_key}: indexed but not in storage"));
                }
            }
            for file in &expected.files {
                let is_metadata = file.ends_with(".json");
                let covered =
                    state.file_keys.contains(file) || (!is_metadata && state.paths.contains(file));
                if !covered {
                    reasons.push(format!("{file}: not indexed"));
                }
            }
            if !expected.files.is_empty()
                && !state.perm_hashes.is_empty()
                && state.perm_hashes != BTreeSet::from([expected.perm_hash])
            {
                reasons.push("permissions, record, state or stable mark differ".to_owned());
            }
            if !reasons.is_empty() {
                found.drifted(project, Some(&version), reasons);
            }
        }
    }
    // Whatever is left in the index belongs to nothing in storage.
    for owner in held.keys() {
        let (project, version) = owner.split_once('/').unwrap_or((owner.as_str(), ""));
        found.drift.push(Drift {
            project_id: project.to_owned(),
            version: (!version.is_empty()).then(|| version.to_owned()),
            reasons: vec!["indexed but not in storage".to_owned()],
        });
        if in_storage.contains(project) {
            found
                .drifted_versions
                .push((project.to_owned(), version.to_owned()));
        } else {
            found.orphan_projects.insert(project.to_owned());
        }
    }
    Ok(found)
}

/// Compares every project and version of storage with the index; with `repair`, re-indexes
/// what drifted and removes what storage no longer has.
///
/// The index is read once, then storage project by project, so a change made meanwhile
/// (stored, then indexed, after the index was read) would look like drift. What drifted is
/// therefore compared again — storage read anew, against the index as it is then — and only
/// what still differs is reported and repaired.
pub async fn check_all(
    indexer: &Indexer,
    index: &SearchIndex,
    repair: bool,
) -> Result<SyncReport, IndexerError> {
    let now = indexer.clock().now();
    let held = held_state(index, &AllQuery)?;
    crate::crash::pause("sync.index_read").await;
    let projects = indexer.project_ids().await?;
    let first = compare(indexer, held, &projects, now).await?;
    let mut report = SyncReport {
        checked_at: Some(now),
        projects: first.projects,
        versions: first.versions,
        ..SyncReport::default()
    };
    let found = if first.drift.is_empty() {
        first
    } else {
        let suspects: Vec<String> = first
            .drift
            .iter()
            .map(|drift| drift.project_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fields = index.fields();
        let query = TermSetQuery::new(
            suspects
                .iter()
                .map(|project| Term::from_field_text(fields.project_id, project)),
        );
        let held = held_state(index, &query)?;
        compare(indexer, held, &suspects, indexer.clock().now()).await?
    };
    let Comparison {
        drift,
        mut drifted_projects,
        drifted_versions,
        orphan_projects,
        ..
    } = found;
    report.drift = drift;
    report.drift_count = report.drift.len();
    report.status = if report.drift.is_empty() {
        "ok"
    } else {
        "error"
    };
    if repair && !report.drift.is_empty() {
        if !orphan_projects.is_empty() {
            index
                .writer()
                .apply(
                    orphan_projects
                        .into_iter()
                        .map(WriteOp::DeleteProject)
                        .collect(),
                )
                .await?;
        }
        drifted_projects.sort();
        drifted_projects.dedup();
        indexer
            .index_projects(Some(drifted_projects.clone()), |_, _| {})
            .await?;
        for (project, version) in drifted_versions {
            if drifted_projects.contains(&project) {
                continue;
            }
            if version.is_empty() {
                indexer
                    .index_projects(Some(vec![project]), |_, _| {})
                    .await?;
            } else {
                indexer.index_version(&project, &version).await?;
            }
        }
        report.repaired = true;
    }
    Ok(report)
}
