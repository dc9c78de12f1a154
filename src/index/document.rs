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
    json_hash(permissions)
}

/// The hash [`permissions_hash`] computes, of any value's JSON serialization (the same bytes
/// as the value converted to a `serde_json::Value` first, without building that tree).
#[must_use]
pub fn json_hash<T: serde::Serialize + ?Sized>(value: &T) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(serde_json::to_vec(value).unwrap_or_default());
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
    /// `_extra.permissions`, which is [`permissions`](Self::permissions), and for the entries
    /// of [`version_extra`](Self::version_extra).
    pub source: Value,
    /// Entries of `_extra` that every document of a version has alike (its project, version,
    /// revision, state...), built once per version and shared instead of copied into each
    /// document's `source._extra`: the stored source and the `_extra` field get both, as one
    /// object (a key of `source._extra` wins over the same key here). Only used when `source`
    /// has an `_extra` object.
    pub version_extra: Option<Arc<Value>>,
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

/// Per-thread buffers `into_tantivy` builds its stored source and free text in (tantivy
/// copies both into the document), instead of a fresh allocation per document.
#[derive(Default)]
struct Scratch {
    bytes: Vec<u8>,
    text: String,
}

impl Scratch {
    /// Most bytes a buffer keeps between documents (a rare large document does not pin its
    /// size on every thread that indexed it).
    const KEEP: usize = 1 << 20;

    fn clear(&mut self) {
        if self.bytes.capacity() > Self::KEEP {
            self.bytes = Vec::new();
        }
        if self.text.capacity() > Self::KEEP {
            self.text = String::new();
        }
        self.bytes.clear();
        self.text.clear();
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// A document's source as stored: its `_extra` object merged with the version's shared
/// entries, in key order (the bytes serializing the merged object would give).
struct SourceView<'a> {
    source: &'a Value,
    version_extra: Option<&'a Map<String, Value>>,
}

impl serde::Serialize for SourceView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let (Value::Object(object), Some(shared)) = (self.source, self.version_extra) else {
            return self.source.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(object.len()))?;
        for (key, value) in object {
            match value {
                Value::Object(extra) if key == "_extra" => {
                    map.serialize_entry(key, &MergedMaps(extra, shared))?;
                }
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// The (field, value) pairs of a document beyond its reader tokens and tags, with room for
/// a document's key paths (`fields_present`, one value each): what its tantivy document is
/// sized for.
const DOCUMENT_VALUES: usize = 64;

/// The bytes a tantivy document needs, from its serialized source (`source` bytes), the
/// stored permissions and access data (`stored` bytes) and its reader tokens: the source
/// itself, the document and `_extra` again as tantivy's compact JSON (keys, values and
/// addresses), the free text gathered from them and their key paths — together about three
/// times the source — plus the tokens and the short fields.
fn document_bytes(source: usize, stored: usize, readers: usize) -> usize {
    3 * source + stored + 32 * readers + 512
}

/// Two objects as one, in key order; a key of the first wins over the same key of the second.
struct MergedMaps<'a>(&'a Map<String, Value>, &'a Map<String, Value>);

impl serde::Serialize for MergedMaps<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        let mut first = self.0.iter().peekable();
        let mut second = self.1.iter().peekable();
        loop {
            let order = match (first.peek(), second.peek()) {
                (None, None) => break,
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some((a, _)), Some((b, _))) => a.cmp(b),
            };
            let next = match order {
                std::cmp::Ordering::Less => first.next(),
                std::cmp::Ordering::Greater => second.next(),
                std::cmp::Ordering::Equal => {
                    second.next();
                    first.next()
                }
            };
            if let Some((key, value)) = next {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
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
        // The source first: its length sizes the document's buffers, which would otherwise
        // start at 1 KiB and 4 values and be grown (and copied) three times on the way.
        let mut document = SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            let source = SourceView {
                source: &self.source,
                version_extra: self.version_extra.as_deref().and_then(Value::as_object),
            };
            if serde_json::to_writer(&mut scratch.bytes, &source).is_err() {
                scratch.bytes.clear();
            }
            let readers = self.access.readers.len();
            let mut document = TantivyDocument::with_capacities(
                document_bytes(
                    scratch.bytes.len(),
                    self.permissions.json().len() + self.access.json().len(),
                    readers,
                ),
                DOCUMENT_VALUES + readers + self.project_text.tags.len(),
            );
            document.add_bytes(fields.source, &scratch.bytes);
            document
        });
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
        document.add_bytes(fields.permissions, self.permissions.json());
        document.add_bytes(fields.access, self.access.json());

        let Value::Object(mut object) = self.source else {
            return document;
        };
        let (mut extra, had_extra) = match object.remove("_extra") {
            Some(Value::Object(mut extra)) => {
                extra.remove("permissions");
                (extra, true)
            }
            _ => (Map::new(), false),
        };
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            for value in object.values() {
                gather_strings(value, &mut scratch.text);
            }
            document.add_text(fields.text_meta, &scratch.text);
        });
        let mut shared_value = self
            .version_extra
            .as_deref()
            .filter(|shared| had_extra && shared.is_object());
        let mut shared = shared_value.and_then(Value::as_object);
        if let Some(entries) = shared
            && keys_overlap(&extra, entries)
        {
            // Overlapping keys (the indexer never writes them): one merged object, the
            // document's entries first.
            for (key, value) in entries {
                extra.entry(key.as_str()).or_insert_with(|| value.clone());
            }
            shared = None;
            shared_value = None;
        }
        let extras: &[&Map<String, Value>] = match shared {
            Some(entries) => &[&extra, entries],
            None => &[&extra],
        };
        add_key_paths(
            &mut document,
            fields.fields_present,
            self.kind,
            &object,
            extras,
        );
        // Straight from the parsed JSON: tantivy reads `serde_json::Value` as it reads its own
        // values (strings that parse as RFC 3339 dates are dates, as `OwnedValue::from` made
        // them), without converting the tree into `OwnedValue`s and a `BTreeMap` first.
        document.add_field_value(fields.document, &Value::Object(object));
        document.add_field_value(fields.extra, &Value::Object(extra));
        if let Some(entries) = shared_value {
            // The version's shared entries: a second value of the same JSON field indexes
            // their paths as the first value's (the keys are distinct).
            document.add_field_value(fields.extra, entries);
        }
        document
    }
}

/// Whether two objects share a key: one walk over both key lists, which are in key order
/// (`serde_json`'s map is a `BTreeMap`; [`MergedMaps`] relies on the same), instead of a
/// lookup per key.
fn keys_overlap(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let (mut first, mut second) = (a.keys().peekable(), b.keys().peekable());
    while let (Some(x), Some(y)) = (first.peek(), second.peek()) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => {
                first.next();
            }
            std::cmp::Ordering::Greater => {
                second.next();
            }
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// Adds the key paths of the document (`object`) and of its `_extra` (the union of
/// `extras`, parts with distinct keys) to `field`: every distinct path once (see
/// [`key_paths`]), `_extra` itself when `_extra` is not empty — but `_extra` and the paths of
/// the entries every document of `kind` has are one term, the kind's marker, when the
/// document has all of them (see [`super::extra::standard_keys`]): two dozen fewer terms to
/// index per document, and existence queries ask for the marker too.
fn add_key_paths(
    document: &mut TantivyDocument,
    field: tantivy::schema::Field,
    kind: DocKind,
    object: &Map<String, Value>,
    extras: &[&Map<String, Value>],
) {
    let mut present = Vec::new();
    key_paths(object, &mut String::new(), &mut present);
    present.sort_unstable();
    present.dedup();
    let extra_len: usize = extras.iter().map(|extra| extra.len()).sum();
    // The common case, without a string per path: a flat `_extra` (its paths are its keys
    // under `_extra.`, distinct since the parts' keys are) whose paths no key of the document
    // repeats (a literal key `_extra.id` would) and that stays under the cap.
    let flat = extras.iter().all(|extra| {
        extra
            .values()
            .all(|value| !value.is_object() && !value.is_array())
    });
    if flat
        && present.len() + extra_len < MAX_KEY_PATHS
        && !present.iter().any(|path| path.starts_with("_extra"))
    {
        for path in &present {
            document.add_text(field, path);
        }
        let standard = super::extra::standard_keys(kind);
        // Each part's keys are in order, as are the standard ones: one walk per part.
        let mut standard_found = 0;
        let mut path = String::from("_extra.");
        for extra in extras {
            let mut standard_keys = standard.iter().peekable();
            for key in extra.keys() {
                while standard_keys
                    .next_if(|s| s.as_str() < key.as_str())
                    .is_some()
                {}
                if standard_keys
                    .next_if(|s| s.as_str() == key.as_str())
                    .is_some()
                {
                    standard_found += 1;
                    continue;
                }
                path.truncate("_extra.".len());
                path.push_str(key);
                document.add_text(field, &path);
            }
        }
        if !standard.is_empty() && standard_found == standard.len() {
            document.add_text(field, super::extra::standard_marker(kind));
            return;
        }
        // Not all of them (a document built by hand): every path, as for any key.
        if extra_len > 0 {
            // `_extra:*` as before `_extra` had a field of its own.
            document.add_text(field, "_extra");
        }
        for key in extras
            .iter()
            .flat_map(|extra| extra.keys())
            .filter(|key| standard.binary_search(key).is_ok())
        {
            path.truncate("_extra.".len());
            path.push_str(key);
            document.add_text(field, &path);
        }
        return;
    }
    if extra_len > 0 {
        present.push("_extra".to_owned());
    }
    for extra in extras {
        key_paths(extra, &mut String::from("_extra"), &mut present);
    }
    present.sort_unstable();
    present.dedup();
    for path in &present {
        // A document key that spells a marker (`{"_extra:file": 1}`) must not pass for one.
        if [DocKind::File, DocKind::Project]
            .into_iter()
            .any(|kind| path == super::extra::standard_marker(kind))
        {
            continue;
        }
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
        let recorded = recorded(DocKind::File, &object, &[&extra]);
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

    /// The key paths [`add_key_paths`] records for a document of `kind`, sorted.
    fn recorded(
        kind: DocKind,
        object: &Map<String, Value>,
        extras: &[&Map<String, Value>],
    ) -> Vec<String> {
        let field = tantivy::schema::Field::from_field_id(0);
        let mut tantivy_document = TantivyDocument::default();
        add_key_paths(&mut tantivy_document, field, kind, object, extras);
        let mut recorded: Vec<String> = tantivy_document
            .get_all(field)
            .filter_map(|value| tantivy::schema::Value::as_str(&value).map(str::to_owned))
            .collect();
        recorded.sort_unstable();
        recorded
    }

    /// A document with every `_extra` entry its kind always has records the kind's marker for
    /// them and `_extra` (one term instead of two dozen); its other paths as before. Without
    /// one of them, or with a key of its own that makes the paths be listed one by one, it
    /// records every path and no marker.
    #[test]
    fn the_standard_extra_entries_are_one_marker_term() {
        for kind in [DocKind::File, DocKind::Project] {
            let standard = crate::index::extra::standard_keys(kind);
            assert!(standard.len() > 5 && standard.contains(&"id".to_owned()));
            // In two parts (the document's own and the version's), keys alternating.
            let (mut own, mut shared) = (Map::new(), Map::new());
            for (index, key) in standard.iter().enumerate() {
                let part = if index % 2 == 0 {
                    &mut own
                } else {
                    &mut shared
                };
                part.insert(key.clone(), Value::Null);
            }
            own.insert("oversized".to_owned(), Value::Bool(true));
            let Value::Object(object) = serde_json::json!({"title": "x", "a": {"b": 1}}) else {
                unreachable!()
            };
            let marker = crate::index::extra::standard_marker(kind);
            let mut expected = ["_extra.oversized", "a", "a.b", marker, "title"];
            expected.sort_unstable();
            assert_eq!(
                recorded(kind, &object, &[&own, &shared]),
                expected,
                "{kind:?}"
            );
            // One missing: every path, no marker.
            let mut lacking = shared.clone();
            let missing = lacking.keys().next().unwrap().clone();
            lacking.remove(&missing);
            let paths = recorded(kind, &object, &[&own, &lacking]);
            let mut expected: Vec<String> = ["_extra", "a", "a.b", "title"]
                .into_iter()
                .map(str::to_owned)
                .chain(
                    own.keys()
                        .chain(lacking.keys())
                        .map(|key| format!("_extra.{key}")),
                )
                .collect();
            expected.sort_unstable();
            assert_eq!(paths, expected, "{kind:?}");
            // A key of the document's own that spells the marker is not taken for it.
            let Value::Object(spelled) = serde_json::json!({"_extra:file": 1, "_extra:project": 2})
            else {
                unreachable!()
            };
            let paths = recorded(kind, &spelled, &[&own, &shared]);
            assert!(!paths.iter().any(|path| path.contains(':')), "{paths:?}");
            assert_eq!(
                paths.len(),
                standard.len() + 2,
                "`_extra`, its entries and `oversized`: {paths:?}"
            );
        }
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

    /// What a tantivy document holds in `field`, as sorted debug strings.
    fn values_of(document: &TantivyDocument, field: tantivy::schema::Field) -> Vec<String> {
        let mut values: Vec<String> = document
            .get_all(field)
            .map(|value| format!("{:?}", tantivy::schema::OwnedValue::from(value)))
            .collect();
        values.sort_unstable();
        values
    }

    /// A document whose `_extra` holds the version's shared entries as `version_extra` is
    /// indexed and stored exactly as the same document with them copied into its `_extra`.
    #[test]
    fn shared_version_entries_index_and_store_as_if_copied() {
        let schema = crate::index::schema::IndexSchema::builtin().unwrap();
        let fields = IndexFields::resolve(&schema.tantivy()).unwrap();
        let shared = serde_json::json!({"kind": "file", "project_id": "p", "version": "v1",
            "revision": "NUM-1", "numerical_revision": 1, "state": "active", "namespace": null});
        for (own, body) in [
            (
                serde_json::json!({"id": "p:a.json@v1", "path": "a.json", "$schema": "s/v1.json"}),
                serde_json::json!({"title": "BERT base", "training": {"dataset": "imagenet"}}),
            ),
            // A link (a nested `_extra` value) and a key repeated with another value.
            (
                serde_json::json!({"id": "p:l@v1", "link": {"artifactdb": "q:x@v"}, "state": "disabled"}),
                serde_json::json!({"_extra.id": 1, "zzz": ["a", {"b": "c"}]}),
            ),
        ] {
            let mut merged_extra = shared.as_object().unwrap().clone();
            merged_extra.extend(own.as_object().unwrap().clone());
            let mut merged = body.clone();
            merged["_extra"] = Value::Object(merged_extra);
            let mut split = body.clone();
            split["_extra"] = own.clone();
            let document = |source: Value, version_extra: Option<Arc<Value>>| IndexDocument {
                id: "p:a.json@v1".to_owned(),
                kind: DocKind::File,
                project_id: "p".to_owned(),
                version: Some("v1".to_owned()),
                path: Some("a.json".to_owned()),
                file_key: Some("a.json".to_owned()),
                perm_hash: 0,
                namespace: None,
                numerical_revision: Some(1),
                uploaded: None,
                access: Shared::new(DocumentAccess::default()),
                state: "active".to_owned(),
                source,
                version_extra,
                permissions: Shared::new(serde_json::json!({})),
                project_text: Arc::default(),
            };
            let whole = document(merged.clone(), None).into_tantivy(&fields);
            let parts = document(split, Some(Arc::new(shared.clone()))).into_tantivy(&fields);
            let stored = |document: &TantivyDocument| {
                document
                    .get_first(fields.source)
                    .and_then(|value| tantivy::schema::Value::as_bytes(&value).map(<[u8]>::to_vec))
                    .unwrap()
            };
            assert_eq!(stored(&parts), stored(&whole));
            assert_eq!(
                serde_json::from_slice::<Value>(&stored(&parts)).unwrap(),
                merged
            );
            assert_eq!(
                values_of(&parts, fields.fields_present),
                values_of(&whole, fields.fields_present)
            );
            assert_eq!(
                values_of(&parts, fields.text_meta),
                values_of(&whole, fields.text_meta)
            );
            // The `_extra` field: the same leaves (one object or two parts).
            let leaves = |document: &TantivyDocument| {
                let mut leaves = Vec::new();
                for value in document.get_all(fields.extra) {
                    if let tantivy::schema::OwnedValue::Object(entries) =
                        tantivy::schema::OwnedValue::from(value)
                    {
                        leaves.extend(entries.into_iter().map(|(k, v)| format!("{k}={v:?}")));
                    }
                }
                leaves.sort_unstable();
                leaves
            };
            assert_eq!(leaves(&parts), leaves(&whole));
        }
    }

    #[test]
    fn keys_overlap_when_and_only_when_a_key_is_in_both() {
        let object = |keys: &[&str]| -> Map<String, Value> {
            keys.iter()
                .map(|key| ((*key).to_owned(), Value::Null))
                .collect()
        };
        for (a, b, expected) in [
            (&[][..], &[][..], false),
            (&["a"][..], &[][..], false),
            (&["a", "c", "e"][..], &["b", "d", "f"][..], false),
            (&["a", "c", "e"][..], &["b", "e"][..], true),
            (&["z"][..], &["a", "b", "z"][..], true),
            (
                &["id", "path"][..],
                &["kind", "project_id", "version"][..],
                false,
            ),
        ] {
            assert_eq!(
                keys_overlap(&object(a), &object(b)),
                expected,
                "{a:?} {b:?}"
            );
            assert_eq!(
                keys_overlap(&object(b), &object(a)),
                expected,
                "{b:?} {a:?}"
            );
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
