//! The index contract of `_extra`: what the indexer writes beside each document and what the
//! API and the sync check read back, as types rather than string keys.
//!
//! A file document's `_extra` is written in two parts: [`VersionExtra`] (what every document
//! of a version shares, built once per version) and [`FileExtra`] (the file's own entries);
//! a project record's is [`ProjectExtra`]. Readers parse a stored document's `_extra` into
//! [`Extra`] (borrowed from the parsed source, no copy); `_extra.permissions` is stored apart
//! and put back for managers only (see `index::search`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::document::DocKind;
use crate::model::records::{ProjectType, VersionStatus};
use crate::permissions::LifecycleState;

/// The entries of `_extra` every file document of a version has alike.
#[derive(Debug, Serialize)]
pub struct VersionExtra<'a> {
    /// Always `file`.
    pub kind: &'static str,
    /// The project.
    pub project_id: &'a str,
    /// The version.
    pub version: &'a str,
    /// The project's namespace.
    pub namespace: Option<&'a str>,
    /// The version's revision (`NUM-3`).
    pub revision: Option<&'a str>,
    /// The version's revision number.
    pub numerical_revision: Option<u64>,
    /// The project's type.
    #[serde(rename = "type")]
    pub project_type: ProjectType,
    /// The project's title.
    pub title: &'a str,
    /// When the version was indexed.
    pub meta_indexed: DateTime<Utc>,
    /// The version's effective lifecycle state.
    pub state: LifecycleState,
    /// Whether the version is marked stable.
    pub stable: bool,
    /// Whether the version expires.
    pub transient: bool,
    /// The version's upload status.
    pub status: VersionStatus,
}

/// A link's entry in `_extra`: the target's id.
#[derive(Debug, Serialize)]
pub struct LinkExtra<'a> {
    /// The target's ArtifactDB id (`null` when the link names none).
    pub artifactdb: Option<&'a Value>,
}

/// The entries of `_extra` of one file document.
#[derive(Debug, Serialize)]
pub struct FileExtra<'a> {
    /// The document's ArtifactDB id (`project:path@version`).
    pub id: &'a str,
    /// The file's path.
    pub path: &'a str,
    /// The metadata document's path, when the document comes from one.
    pub metapath: Option<&'a str>,
    /// The document's `$schema`.
    #[serde(rename = "$schema")]
    pub schema: Option<&'a Value>,
    /// When the data file was uploaded.
    pub uploaded: Option<DateTime<Utc>>,
    /// When the metadata document was uploaded.
    pub meta_uploaded: Option<DateTime<Utc>>,
    /// The data file's size.
    pub file_size: Option<u64>,
    /// The data file's MD5.
    pub md5sum: Option<&'a str>,
    /// The data file's SHA-256.
    pub sha256: Option<&'a str>,
    /// The data file's content type.
    pub content_type: Option<&'a str>,
    /// The link's target, for a link.
    pub link: Option<LinkExtra<'a>>,
}

/// `_extra` of a project record's document.
#[derive(Debug, Serialize)]
pub struct ProjectExtra<'a> {
    /// The project id (a project's document id).
    pub id: &'a str,
    /// Always `project`.
    pub kind: &'static str,
    /// The project.
    pub project_id: &'a str,
    /// The project's namespace.
    pub namespace: Option<&'a str>,
    /// The project's type.
    #[serde(rename = "type")]
    pub project_type: ProjectType,
    /// The project's title.
    pub title: &'a str,
    /// The project's effective lifecycle state.
    pub state: LifecycleState,
    /// When the record was indexed.
    pub meta_indexed: DateTime<Utc>,
}

/// A link as read back: its target.
#[derive(Debug, Default, Deserialize)]
pub struct Link<'a> {
    /// The target's ArtifactDB id.
    #[serde(borrow, default)]
    pub artifactdb: Option<&'a str>,
}

/// `_extra` of a stored document as readers use it (fields a reader needs; others are kept
/// in the source as written). Parse it with [`Extra::of`].
#[derive(Debug, Default, Deserialize)]
pub struct Extra<'a> {
    /// The document's ArtifactDB id.
    #[serde(borrow, default)]
    pub id: Option<&'a str>,
    /// The project.
    #[serde(borrow, default)]
    pub project_id: Option<&'a str>,
    /// The version (file documents).
    #[serde(borrow, default)]
    pub version: Option<&'a str>,
    /// The project's namespace.
    #[serde(borrow, default)]
    pub namespace: Option<&'a str>,
    /// The effective lifecycle state.
    #[serde(default)]
    pub state: Option<LifecycleState>,
    /// A link's target.
    #[serde(borrow, default)]
    pub link: Option<Link<'a>>,
    /// Set on a metadata document too large to index, indexed as a plain file.
    #[serde(default)]
    pub oversized: Option<bool>,
}

impl<'a> Extra<'a> {
    /// The `_extra` of a stored document (`source`), empty when it has none or it is not an
    /// object of the expected shape.
    #[must_use]
    pub fn of(source: &'a Value) -> Self {
        source
            .get("_extra")
            .and_then(|extra| Self::deserialize(extra).ok())
            .unwrap_or_default()
    }

    /// A link's target id, for a link.
    #[must_use]
    pub fn link_target(&self) -> Option<&'a str> {
        self.link.as_ref().and_then(|link| link.artifactdb)
    }
}

/// The entries of `_extra` every document of `kind` the indexer writes has, sorted: each part
/// ([`VersionExtra`] and [`FileExtra`], or [`ProjectExtra`]) writes all of its entries,
/// `null` when unset, so these are the keys of the parts serialized with nothing set (a field
/// that some day skips an unset value drops out of the list by itself).
///
/// A document that has all of them records one term for them in `fields_present`
/// ([`standard_marker`]) instead of one per key path; an existence query for one of them also
/// asks for the marker (see [`markers_implying`]).
#[must_use]
pub fn standard_keys(kind: DocKind) -> &'static [String] {
    static FILE: LazyLock<Vec<String>> = LazyLock::new(|| {
        let shared = VersionExtra {
            kind: "file",
            project_id: "",
            version: "",
            namespace: None,
            revision: None,
            numerical_revision: None,
            project_type: ProjectType::default(),
            title: "",
            meta_indexed: DateTime::UNIX_EPOCH,
            state: LifecycleState::default(),
            stable: false,
            transient: false,
            status: VersionStatus::default(),
        };
        let own = FileExtra {
            id: "",
            path: "",
            metapath: None,
            schema: None,
            uploaded: None,
            meta_uploaded: None,
            file_size: None,
            md5sum: None,
            sha256: None,
            content_type: None,
            link: None,
        };
        let mut keys = keys_of(&shared);
        keys.extend(keys_of(&own));
        keys.sort_unstable();
        keys.dedup();
        keys
    });
    static PROJECT: LazyLock<Vec<String>> = LazyLock::new(|| {
        keys_of(&ProjectExtra {
            id: "",
            kind: "project",
            project_id: "",
            namespace: None,
            project_type: ProjectType::default(),
            title: "",
            state: LifecycleState::default(),
            meta_indexed: DateTime::UNIX_EPOCH,
        })
    });
    match kind {
        DocKind::File => &FILE,
        DocKind::Project => &PROJECT,
    }
}

/// The keys of a value serialized as a JSON object, in key order.
fn keys_of<T: Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => object.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The `fields_present` term a document of `kind` records instead of the key paths `_extra`
/// and `_extra.<key>` of every one of its [`standard_keys`]. No key path of a document can
/// be it: the document's own paths that start with `_extra` make it record every path as
/// before (see `index::document`), and `_extra`'s own paths go on with a `.`.
#[must_use]
pub fn standard_marker(kind: DocKind) -> &'static str {
    match kind {
        DocKind::File => "_extra:file",
        DocKind::Project => "_extra:project",
    }
}

/// The markers whose documents have the key path `path` (`_extra` or `_extra.<key>`, as an
/// existence query names it): what `path:*` must also ask for.
pub fn markers_implying(path: &str) -> impl Iterator<Item = &'static str> + '_ {
    [DocKind::File, DocKind::Project]
        .into_iter()
        .filter(move |kind| match path.strip_prefix("_extra") {
            Some("") => true,
            Some(rest) => rest.strip_prefix('.').is_some_and(|key| {
                standard_keys(*kind)
                    .binary_search_by(|standard| standard.as_str().cmp(key))
                    .is_ok()
            }),
            None => false,
        })
        .map(standard_marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the indexer writes reads back as the same values.
    /// `path:*` asks for the markers of the kinds whose documents all have `path`.
    #[test]
    fn existence_of_a_standard_entry_is_implied_by_its_kinds_marker() {
        let implying = |path: &str| markers_implying(path).collect::<Vec<_>>();
        for (path, expected) in [
            ("_extra", &["_extra:file", "_extra:project"][..]),
            ("_extra.id", &["_extra:file", "_extra:project"]),
            ("_extra.meta_indexed", &["_extra:file", "_extra:project"]),
            ("_extra.version", &["_extra:file"]),
            ("_extra.link", &["_extra:file"]),
            ("_extra.$schema", &["_extra:file"]),
            ("_extra.oversized", &[]),
            ("_extra.permissions", &[]),
            ("_extra.link.artifactdb", &[]),
            ("_extra.", &[]),
            ("_extraid", &[]),
            ("id", &[]),
            ("title", &[]),
        ] {
            assert_eq!(implying(path), expected, "{path}");
        }
        assert!(standard_keys(DocKind::Project).contains(&"kind".to_owned()));
        assert!(!standard_keys(DocKind::Project).contains(&"version".to_owned()));
        for kind in [DocKind::File, DocKind::Project] {
            assert!(standard_keys(kind).is_sorted(), "{kind:?}");
        }
    }

    #[test]
    fn written_parts_read_back() {
        let now = Utc::now();
        let shared = serde_json::to_value(VersionExtra {
            kind: "file",
            project_id: "p",
            version: "v1",
            namespace: Some("lab"),
            revision: Some("NUM-1"),
            numerical_revision: Some(1),
            project_type: ProjectType::default(),
            title: "P",
            meta_indexed: now,
            state: LifecycleState::Deprecated,
            stable: false,
            transient: false,
            status: VersionStatus::default(),
        })
        .unwrap();
        let target = serde_json::json!({"id": "q:x@v"});
        let own = serde_json::to_value(FileExtra {
            id: "p:l.txt@v1",
            path: "l.txt",
            metapath: None,
            schema: None,
            uploaded: None,
            meta_uploaded: None,
            file_size: None,
            md5sum: None,
            sha256: None,
            content_type: None,
            link: Some(LinkExtra {
                artifactdb: target.get("id"),
            }),
        })
        .unwrap();
        let mut extra = shared.as_object().unwrap().clone();
        extra.extend(own.as_object().unwrap().clone());
        let source = serde_json::json!({"title": "x", "_extra": extra});
        let read = Extra::of(&source);
        assert_eq!(read.id, Some("p:l.txt@v1"));
        assert_eq!(read.project_id, Some("p"));
        assert_eq!(read.version, Some("v1"));
        assert_eq!(read.namespace, Some("lab"));
        assert_eq!(read.state, Some(LifecycleState::Deprecated));
        assert_eq!(read.link_target(), Some("q:x@v"));
        assert_eq!(read.oversized, None);

        let project = serde_json::to_value(ProjectExtra {
            id: "p",
            kind: "project",
            project_id: "p",
            namespace: None,
            project_type: ProjectType::default(),
            title: "P",
            state: LifecycleState::Active,
            meta_indexed: now,
        })
        .unwrap();
        let source = serde_json::json!({"_extra": project});
        let read = Extra::of(&source);
        assert_eq!(
            (read.id, read.version, read.namespace),
            (Some("p"), None, None)
        );
        assert_eq!(read.link_target(), None);
        // No `_extra`, or not an object: nothing.
        assert_eq!(Extra::of(&serde_json::json!({"a": 1})).id, None);
        assert_eq!(Extra::of(&serde_json::json!({"_extra": 3})).id, None);
    }
}
