//! The records Trove stores for projects and versions (`..meta/project.json`,
//! `..meta/version.json`), as JSON in object storage.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::permissions::LifecycleState;

/// What kind of artifact a project is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProjectType {
    /// A trained model.
    Model,
    /// A dataset.
    Dataset,
    /// Embeddings.
    Embedding,
    /// An experiment run.
    Run,
    /// A paper.
    Paper,
    /// Anything else.
    #[default]
    Other,
}

/// The record of a project (`<project>/..meta/project.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectRecord {
    /// Globally unique project id.
    pub project_id: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// Artifact type.
    #[serde(default, rename = "type")]
    pub project_type: ProjectType,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Namespace, fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Own lifecycle state.
    #[serde(default)]
    #[schema(value_type = String)]
    pub state: LifecycleState,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Creator's principal.
    pub created_by: String,
}

/// Where a version is in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    /// Created, files may be uploaded directly.
    #[default]
    Open,
    /// An ArtifactDB upload is in progress.
    Uploading,
    /// Sealed: no new files, searchable, has a revision.
    Completed,
}

/// The record of a version (`<project>/<version>/..meta/version.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionRecord {
    /// Project id.
    pub project_id: String,
    /// Version name, unique in the project.
    pub version: String,
    /// Free text.
    #[serde(default)]
    pub changelog: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Creator's principal.
    pub created_by: String,
    /// Life stage.
    #[serde(default)]
    pub status: VersionStatus,
    /// `NUM-<n>`, assigned at completion in completion order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// `<n>` of the revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_revision: Option<u64>,
    /// When it was completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Frozen: no file may ever change.
    #[serde(default)]
    pub stable: bool,
    /// Own lifecycle state.
    #[serde(default)]
    #[schema(value_type = String)]
    pub state: LifecycleState,
    /// Transient versions are purged after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// An upload not completed by then is purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_before: Option<DateTime<Utc>>,
    /// Files announced by an ArtifactDB upload, checked at completion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced_files: Vec<String>,
    /// Id of the ArtifactDB upload that created this version: its presigned URLs write only
    /// under `..meta/staging/<upload_id>/`, so a URL of an earlier upload of the same version
    /// name (aborted, purged, deleted) writes nowhere that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub upload_id: Option<String>,
    /// Id of the API key that started the upload, when a key did (`created_by` is then its
    /// `machine:` name): the upload's presigned URLs are accepted only while that very key
    /// may still upload there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub upload_key: Option<String>,
    /// Identity id of the local account that started the upload, when one did: its URLs are
    /// refused to a later account of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub upload_account: Option<String>,
    /// A caller of the external identity provider who started the upload (no local account
    /// to look up at use): the role and directory groups its token carried, with which its
    /// URLs are decided again when used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub upload_external: Option<ExternalSigner>,
    /// Direct uploads moving their staged body into the version right now (id → lease
    /// expiry). Completion waits until none is held, and a lease is only taken while the
    /// version is open, so no file lands in a version after it is sealed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schema(ignore)]
    pub leases: std::collections::BTreeMap<String, DateTime<Utc>>,
}

/// What an external identity provider's token said of the caller who started an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalSigner {
    /// The role its token carried.
    pub role: crate::permissions::Role,
    /// The directory groups its token carried, as kept by the group filter.
    #[serde(default)]
    pub directory_groups: Vec<String>,
}

impl VersionRecord {
    /// The record as the API answers it: without the ids of the API key or account that
    /// started its upload (kept for the use-time check of the upload's URLs, nobody's
    /// business else).
    #[must_use]
    pub fn presented(mut self) -> Self {
        self.upload_key = None;
        self.upload_account = None;
        self.upload_external = None;
        self
    }

    /// Whether the version is completed (sealed, searchable).
    #[must_use]
    pub fn is_completed(&self) -> bool {
        self.status == VersionStatus::Completed
    }
}

/// What Trove records about an uploaded file (`<project>/<version>/..meta/files/<path>.json`),
/// so listings and the index know its checksums without re-reading it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileRecord {
    /// Path inside the version.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// md5 (hex).
    pub md5sum: String,
    /// sha256 (hex).
    pub sha256: String,
    /// Content type given at upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Upload time.
    pub uploaded_at: DateTime<Utc>,
    /// Uploader's principal.
    #[serde(default)]
    pub uploaded_by: String,
}

/// Who sees a namespace's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceVisibility {
    /// Every logged-in caller sees the metadata; downloads still need a grant.
    Public,
    /// Only those granted see it.
    #[default]
    Private,
}

/// The record of a namespace (`..meta/namespaces/<ns>/namespace.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamespaceRecord {
    /// Namespace name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Visibility.
    #[serde(default)]
    pub visibility: NamespaceVisibility,
    /// Own lifecycle state.
    #[serde(default)]
    #[schema(value_type = String)]
    pub state: LifecycleState,
    /// Whether its writers may create projects in it.
    #[serde(default)]
    pub auto_create: bool,
    /// Set by `DELETE /namespaces/{ns}` before it checks that no project is in the namespace:
    /// a project creation that sees it (or any other change of the record) gives up, so no
    /// project is ever left in a deleted namespace. Cleared again when the deletion is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleting: bool,
    /// When the `deleting` mark was set: a mark older than a deletion can take was left by a
    /// deletion that died (a crash, a lost connection to storage) and is taken back by the
    /// scheduled purge. A mark without it (written before it existed) counts as old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub deleting_since: Option<chrono::DateTime<chrono::Utc>>,
    /// A fresh id for each creation of the name, so a namespace deleted and created again
    /// is never byte-identical to the one before: on S3 an ETag is the digest of the content,
    /// and a project creation authorized against the earlier namespace compares ETags
    /// (empty for namespaces created before it existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generation: String,
}

/// `NUM-<n>`.
#[must_use]
pub fn revision_name(numerical: u64) -> String {
    format!("NUM-{numerical}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_artifactdb_names() {
        let record: ProjectRecord = serde_json::from_value(serde_json::json!({
            "project_id": "bert-base", "title": "BERT", "type": "MODEL",
            "created_at": "2026-11-01T00:00:00Z", "created_by": "alice"
        }))
        .unwrap();
        assert_eq!(record.project_type, ProjectType::Model);
        assert_eq!(record.state, LifecycleState::Active);
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["type"], "MODEL");
        assert!(value.get("namespace").is_none());
        assert!(serde_json::from_value::<ProjectRecord>(serde_json::json!({
            "project_id": "x", "type": "ROBOT", "created_at": "2026-11-01T00:00:00Z", "created_by": "a"
        }))
        .is_err());
        assert_eq!(revision_name(3), "NUM-3");
    }
}
