//! One index document: the logical form the indexer builds, and its tantivy form.

use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tantivy::TantivyDocument;

use super::IndexFields;
use crate::permissions::DocumentAccess;

/// A stable hash of a resolved profile's JSON (keys sorted), to compare what a document was
/// indexed with and what storage says now without storing the profile twice.
#[must_use]
pub fn permissions_hash(permissions: &Value) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(serde_json::to_vec(permissions).unwrap_or_default());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// What a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A metadata document or an automatic file document.
    File,
    /// A project record.
    Project,
}

impl DocKind {
    /// The `kind` term.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Project => "project",
        }
    }
}

/// A value with its JSON serialization, built once and shared by every document of a version
/// (the resolved profile, the access data): indexing a version serializes them once, not once
/// per document.
#[derive(Debug, Clone)]
pub struct Shared<T>(Arc<(T, Vec<u8>)>);

impl<T: serde::Serialize> Shared<T> {
    /// Serializes `value` once.
    #[must_use]
    pub fn new(value: T) -> Self {
        let json = serde_json::to_vec(&value).unwrap_or_default();
        Self(Arc::new((value, json)))
    }

    /// The JSON bytes of the value.
    #[must_use]
    pub fn json(&self) -> &[u8] {
        &self.0.1
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.0
    }
}

/// A document ready to be indexed.
#[derive(Debug, Clone)]
pub struct IndexDocument {
    /// ArtifactDB id (`project:path@version`; the project id for a project record).
    pub id: String,
    /// File or project.
    pub kind: DocKind,
    /// Project id.
    pub project_id: String,
    /// Version (absent for project records).
    pub version: Option<String>,
    /// File path (absent for project records).
    pub path: Option<String>,
    /// The stored file the document comes from: the metadata document's path, or the data
    /// file's (absent for project records).
    pub file_key: Option<String>,
    /// Hash of what the document was indexed with besides its own content: the resolved
    /// profile, the project record's indexed fields and effective state, and the version
    /// record's (see [`crate::index::indexer::state_hash`]); the sync check compares it with
    /// storage to see permission, record, state and stable-mark drift.
    pub perm_hash: u64,
    /// Namespace of the project.
    pub namespace: Option<String>,
    /// Numerical revision of the version.
    pub numerical_revision: Option<u64>,
    /// Upload time.
    pub uploaded: Option<DateTime<Utc>>,
    /// Who may read it: the reader tokens (indexed) with their expiries (stored, re-checked on
    /// every hit).
    pub access: Shared<DocumentAccess>,
    /// Effective lifecycle state (`active`, `deprecated`, `disabled`).
    pub state: String,
    /// The whole document as searches return it (with `_extra`), but for
    /// `_extra.permissions`, which is [`permissions`](Self::permissions).
    pub source: Value,
    /// The resolved profile, shown as `_extra.permissions` (stored apart from `source`).
    pub permissions: Shared<Value>,
    /// The project's words every document of it is found by (free text).
    pub project_text: Arc<ProjectText>,
}

/// The words of a project that each of its documents is found by: an unqualified word matches
/// the project's id, title, description and tags on every document of the project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectText {
    /// Project id and title (boosted most).
    pub name: String,
    /// Description and tags.
    pub about: String,
    /// The project's type (`MODEL`, ...), a facet.
    pub project_type: String,
    /// The project's tags, a facet.
    pub tags: Vec<String>,
}

impl ProjectText {
    /// The words of a project record.
    #[must_use]
    pub fn of(record: &crate::model::records::ProjectRecord) -> Self {
        Self {
            name: format!("{} {}", record.project_id, record.title),
            about: format!("{} {}", record.description, record.tags.join(" ")),
            project_type: serde_json::to_value(record.project_type)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default(),
            tags: record.tags.clone(),
        }
    }
}

/// The lower-case extension of a path's file name (`weights.SafeTensors` → `safetensors`), when
/// it has a short one.
fn extension_of(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    let (stem, extension) = name.rsplit_once('.')?;
    (!stem.is_empty()
        && !extension.is_empty()
        && extension.len() <= 16
        && extension.chars().all(|c| c.is_ascii_alphanumeric()))
    .then(|| extension.to_ascii_lowercase())
}

/// Most bytes of string values gathered into a document's free text (a bound on index size
/// and indexing work; metadata documents are capped far below the index's own limits anyway).
const MAX_FREE_TEXT_BYTES: usize = 256 * 1024;

/// Appends every string value of `value` (keys left out) to `text`, one per line, up to
/// [`MAX_FREE_TEXT_BYTES`].
fn gather_strings(value: &Value, text: &mut String) {
    match value {
        Value::String(string) if text.len() + string.len() < MAX_FREE_TEXT_BYTES => {
            text.push_str(string);
            text.push('\n');
        }
        Value::Array(items) => {
            for item in items {
                gather_strings(item, text);
            }
        }
        Value::Object(object) => {
            for child in object.values() {
                gather_strings(child, text);
            }
        }
        _ => {}
    }
}

impl IndexDocument {
    /// The owner key the writer replaces documents by: `<project>/<version>`, or `<project>/`
    /// for a project record.
    #[must_use]
    pub fn owner_key(&self) -> String {
        format!(
            "{}/{}",
            self.project_id,
            self.version.as_deref().unwrap_or_default()
        )
    }

    /// The tantivy document (see [`into_tantivy`](Self::into_tantivy)), from a copy.
    #[must_use]
    pub fn to_tantivy(&self, fields: &IndexFields) -> TantivyDocument {
        self.clone().into_tantivy(fields)
    }

    /// The tantivy document. The metadata goes to the `document` JSON field (word search by
    /// key), `_extra` to the exact `_extra` field; `_extra.permissions` is never searchable (so
    /// nobody can probe who has access by searching) and is stored apart, once serialized per
    /// version.
    #[must_use]
    pub fn into_tantivy(self, fields: &IndexFields) -> TantivyDocument {
        let mut document = TantivyDocument::default();
        document.add_text(fields.id, &self.id);
        document.add_text(fields.kind, self.kind.as_str());
        document.add_text(fields.project_id, &self.project_id);
        document.add_text(fields.version_key, self.owner_key());
        if let Some(version) = &self.version {
            document.add_text(fields.version, version);
        }
        if let Some(path) = &self.path {
            document.add_text(fields.path, path);
        }
        if let Some(file_key) = &self.file_key {
            document.add_text(fields.file_key, file_key);
        }
        document.add_u64(fields.perm_hash, self.perm_hash);
        if let Some(namespace) = &self.namespace {
            document.add_text(fields.namespace, namespace);
        }
        document.add_u64(
            fields.numerical_revision,
            self.numerical_revision.unwrap_or_default(),
        );
        if let Some(uploaded) = self.uploaded {
            document.add_date(
                fields.uploaded,
                tantivy::DateTime::from_timestamp_micros(uploaded.timestamp_micros()),
            );
        }
        for token in self.access.tokens() {
            document.add_text(fields.readers, token);
        }
        document.add_text(fields.state, &self.state);
        // Facets.
        if !self.project_text.project_type.is_empty() {
            document.add_text(fields.project_type, &self.project_text.project_type);
        }
        for tag in &self.project_text.tags {
            document.add_text(fields.tags, tag);
        }
        if let Some(schema) = self
            .source
            .get("$schema")
            .or_else(|| self.source["_extra"].get("$schema"))
            .and_then(Value::as_str)
        {
            document.add_text(fields.schema, schema);
        }
        if let Some(content_type) = self.source["_extra"]["content_type"].as_str() {
            document.add_text(fields.content_type, content_type);
        }
        if let Some(extension) = self.path.as_deref().and_then(extension_of) {
            document.add_text(fields.extension, extension);
        }
        document.add_u64(
            fields.grant_expiry,
            self.access
                .readers
                .values()
                .flatten()
                .min()
                .map_or(0, |expiry| {
                    u64::try_from(expiry.timestamp()).unwrap_or(0).max(1)
                }),
        );
        document.add_text(fields.text_name, &self.project_text.name);
        document.add_text(fields.text_about, &self.project_text.about);
        if let Some(path) = &self.path {
            document.add_text(
                fields.text_path,
                format!("{path} {}", self.version.as_deref().unwrap_or_default()),
            );
        }
        document.add_bytes(
            fields.source,
            serde_json::to_vec(&self.source)
                .unwrap_or_default()
                .as_slice(),
        );
        document.add_bytes(fields.permissions, self.permissions.json());
        document.add_bytes(fields.access, self.access.json());

        let Value::Object(mut object) = self.source else {
            return document;
        };
        let extra = match object.remove("_extra") {
            Some(Value::Object(mut extra)) => {
                extra.remove("permissions");
                extra
            }
            _ => Map::new(),
        };
        let mut meta_text = String::new();
        for value in object.values() {
            gather_strings(value, &mut meta_text);
        }
        document.add_text(fields.text_meta, &meta_text);
        add_key_paths(&mut document, fields.fields_present, &object, &extra);
        // Straight from the parsed JSON: tantivy reads `serde_json::Value` as it reads its own
        // values (strings that parse as RFC 3339 dates are dates, as `OwnedValue::from` made
        // them), without converting the tree into `OwnedValue`s and a `BTreeMap` first.
        document.add_field_value(fields.document, &Value::Object(object));
        document.add_field_value(fields.extra, &Value::Object(extra));
        document
    }
}

/// Adds the key paths of the document (`object`) and of its `_extra` to `field`: every
/// distinct path once (see [`key_paths`]), `_extra` itself when `_extra` is not empty.
fn add_key_paths(
    document: &mut TantivyDocument,
    field: tantivy::schema::Field,
    object: &Map<String, Value>,
    extra: &Map<String, Value>,
) {
    let mut present = Vec::new();
    key_paths(object, &mut String::new(), &mut present);
    present.sort_unstable();
    present.dedup();
    // The common case, without a string per path: a flat `_extra` (its paths are its keys
    // under `_extra.`, distinct) whose paths no key of the document repeats (a literal key
    // `_extra.id` would) and that stays under the cap.
    let flat = extra
        .values()
        .all(|value| !value.is_object() && !value.is_array());
    if flat
        && present.len() + extra.len() < MAX_KEY_PATHS
        && !present.iter().any(|path| path.starts_with("_extra"))
    {
        for path in &present {
            document.add_text(field, path);
        }
        if !extra.is_empty() {
            // `_extra:*` as before `_extra` had a field of its own.
            document.add_text(field, "_extra");
        }
        let mut path = String::from("_extra.");
        for key in extra.keys() {
            path.truncate("_extra.".len());
            path.push_str(key);
            document.add_text(field, &path);
        }
        return;
    }
    if !extra.is_empty() {
        present.push("_extra".to_owned());
    }
    key_paths(extra, &mut String::from("_extra"), &mut present);
    present.sort_unstable();
    present.dedup();
    for path in &present {
        document.add_text(field, path);
    }
}

/// Most key paths recorded per document for existence queries (a document with more keys
/// keeps the first ones in key order: the cap bounds the index, not what can be stored).
const MAX_KEY_PATHS: usize = 1024;

/// Collects the dotted key paths of `object` under `prefix` (`a`, `a.b`; keys of objects
/// inside arrays count under the array's path) into `paths` (possibly repeated, when arrays
/// hold objects), up to [`MAX_KEY_PATHS`] in all.
fn key_paths(object: &Map<String, Value>, prefix: &mut String, paths: &mut Vec<String>) {
    for (key, child) in object {
        if paths.len() >= MAX_KEY_PATHS {
            // Arrays of objects repeat paths: the cap counts distinct ones.
            paths.sort_unstable();
            paths.dedup();
            if paths.len() >= MAX_KEY_PATHS {
                return;
            }
        }
        let length = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(key);
        paths.push(prefix.clone());
        value_paths(child, prefix, paths);
        prefix.truncate(length);
    }
}

fn value_paths(value: &Value, prefix: &mut String, paths: &mut Vec<String>) {
    match value {
        Value::Object(object) => key_paths(object, prefix, paths),
        Value::Array(items) => {
            for item in items {
                value_paths(item, prefix, paths);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod key_path_tests {
    use super::*;

    #[test]
    fn extensions_are_short_lower_case_and_of_the_file_name() {
        assert_eq!(
            extension_of("w/model.SafeTensors").as_deref(),
            Some("safetensors")
        );
        assert_eq!(extension_of("data.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension_of("dir.d/README"), None);
        assert_eq!(extension_of(".hidden"), None);
        assert_eq!(extension_of("x.not-an-ext"), None);
    }

    #[test]
    fn nested_keys_and_keys_inside_arrays_are_paths() {
        let mut paths = Vec::new();
        let Value::Object(object) = serde_json::json!({"title": "x", "training": {"dataset": "imagenet"},
                "runs": [{"loss": 1}, {"acc": 2}, {"acc": 3}], "_extra": {"project_id": "p"}})
        else {
            unreachable!()
        };
        key_paths(&object, &mut String::new(), &mut paths);
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(
            paths,
            [
                "_extra",
                "_extra.project_id",
                "runs",
                "runs.acc",
                "runs.loss",
                "title",
                "training",
                "training.dataset"
            ]
        );
    }

    /// The paths `add_key_paths` records, sorted, against all paths gathered, sorted and
    /// deduplicated at once.
    fn recorded_and_expected(document: &Value) -> (Vec<String>, Vec<String>) {
        let Value::Object(mut object) = document.clone() else {
            unreachable!()
        };
        let extra = match object.remove("_extra") {
            Some(Value::Object(extra)) => extra,
            _ => Map::new(),
        };
        let field = tantivy::schema::Field::from_field_id(0);
        let mut tantivy_document = TantivyDocument::default();
        add_key_paths(&mut tantivy_document, field, &object, &extra);
        let mut recorded: Vec<String> = tantivy_document
            .get_all(field)
            .filter_map(|value| tantivy::schema::Value::as_str(&value).map(str::to_owned))
            .collect();
        recorded.sort_unstable();
        let mut expected = Vec::new();
        key_paths(&object, &mut String::new(), &mut expected);
        if !extra.is_empty() {
            expected.push("_extra".to_owned());
        }
        key_paths(&extra, &mut String::from("_extra"), &mut expected);
        expected.sort_unstable();
        expected.dedup();
        (recorded, expected)
    }

    #[test]
    fn key_paths_are_recorded_once_each_flat_extra_or_not() {
        for document in [
            serde_json::json!({"title": "x", "a": {"b": 1}, "_extra": {"id": "p:x@v", "path": "x"}}),
            // A literal dotted key repeating an `_extra` path.
            serde_json::json!({"_extra.id": 1, "_extra": {"id": "p:x@v"}}),
            // Nested `_extra` (a link) and arrays of objects.
            serde_json::json!({"runs": [{"a": 1}, {"a": 2}], "_extra": {"link": {"artifactdb": "q"}, "id": "i"}}),
            serde_json::json!({"title": "no extra"}),
        ] {
            let (recorded, expected) = recorded_and_expected(&document);
            assert_eq!(recorded, expected, "{document}");
        }
    }

    #[test]
    fn the_number_of_paths_is_bounded() {
        let wide: serde_json::Map<String, Value> = (0..5000)
            .map(|index| (format!("k{index}"), Value::from(index)))
            .collect();
        let mut paths = Vec::new();
        key_paths(&wide, &mut String::new(), &mut paths);
        assert_eq!(paths.len(), MAX_KEY_PATHS);
    }
}
