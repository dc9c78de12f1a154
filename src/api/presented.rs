//! A search hit as answered ([`Presented`]), written straight from the stored source it
//! shares with the index's document cache, and a page of them ([`HitsPage`]).

use serde_json::{Map, Value};

use super::hits::filter_fields;
use crate::index::search::Hit;

/// A page of presented hits as answered; keys in a JSON map's order (sorted), as before
/// the hits were written straight from their sources.
#[derive(Debug, serde::Serialize)]
pub struct HitsPage {
    /// Hits on this page.
    pub count: usize,
    /// Term counts, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Value>,
    /// The next page.
    pub next: Option<String>,
    /// The hits.
    pub results: Vec<Presented>,
    /// Matches in all.
    pub total: usize,
    /// `eq`, or `gte` when `total` is a lower bound (search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_relation: Option<&'static str>,
}

/// A key's value in a [`Presented`] hit: a new value (added, or replacing the source's), or
/// left out.
type Change = (&'static str, Option<Value>);

/// A hit as answered, written straight from the stored source it shares with the index's
/// document cache: `_extra.permissions` left out unless the caller manages the resource, a
/// hidden link target replaced, keys added — with the same bytes as a copy shaped and then
/// serialized, without the copy (cloning, shaping and freeing each hit's JSON tree took
/// about a sixth of `GET /projects`'s CPU).
#[derive(Debug)]
pub struct Presented {
    hit: Hit,
    /// Changes of top-level keys, sorted by key.
    top: Vec<Change>,
    /// Changes of `_extra`'s keys, sorted by key.
    extra: Vec<Change>,
    /// Fields kept (`?fields=`): the answer is then built as a copy.
    fields: Option<String>,
}

impl Presented {
    /// `hit` as stored, `fields` kept when given (`?fields=`, comma-separated).
    pub(super) fn new(hit: Hit, fields: Option<&str>) -> Self {
        Self {
            hit,
            top: Vec::new(),
            extra: Vec::new(),
            fields: fields
                .map(str::trim)
                .filter(|fields| !fields.is_empty())
                .map(str::to_owned),
        }
    }

    /// The stored source.
    pub(super) fn source(&self) -> &Value {
        self.hit.source()
    }

    /// Sets top-level `key` to `value` (`None`: leaves it out).
    pub(super) fn set(&mut self, key: &'static str, value: Option<Value>) {
        put(&mut self.top, key, value);
    }

    /// Sets `_extra.<key>` to `value` (`None`: leaves it out).
    pub(super) fn change_extra(&mut self, key: &'static str, value: Option<Value>) {
        put(&mut self.extra, key, value);
    }
}

/// Puts `(key, value)` into `changes`, kept sorted by key; replaces an earlier change of `key`.
fn put(changes: &mut Vec<Change>, key: &'static str, value: Option<Value>) {
    match changes.binary_search_by(|(name, _)| (*name).cmp(key)) {
        Ok(at) => changes[at].1 = value,
        Err(at) => changes.insert(at, (key, value)),
    }
}

/// `base` with `changes` applied, written in key order (the order of a `serde_json` map),
/// `nested` written under `_extra`.
struct Shaped<'a> {
    base: &'a Map<String, Value>,
    changes: &'a [Change],
    nested: Option<&'a [Change]>,
}

impl serde::Serialize for Shaped<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        let mut changes = self.changes.iter().peekable();
        for (key, value) in self.base {
            // Changes of keys before this one (added keys), then this one's, if changed.
            while let Some((name, change)) = changes.next_if(|(name, _)| *name < key.as_str()) {
                if let Some(change) = change {
                    map.serialize_entry(name, change)?;
                }
            }
            if let Some((name, change)) = changes.next_if(|(name, _)| *name == key.as_str()) {
                if let Some(change) = change {
                    map.serialize_entry(name, change)?;
                }
                continue;
            }
            match (key.as_str(), value, self.nested) {
                ("_extra", Value::Object(extra), Some(nested)) => map.serialize_entry(
                    key,
                    &Shaped {
                        base: extra,
                        changes: nested,
                        nested: None,
                    },
                )?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        for (name, change) in changes {
            if let Some(change) = change {
                map.serialize_entry(name, change)?;
            }
        }
        map.end()
    }
}

impl serde::Serialize for Presented {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let source = match self.hit.source() {
            Value::Object(source)
                if self.fields.is_none()
                    && (source.get("_extra").is_some_and(Value::is_object)
                        || self.extra.iter().all(|(_, change)| change.is_none())) =>
            {
                source
            }
            _ => return self.built().serialize(serializer),
        };
        Shaped {
            base: source,
            changes: &self.top,
            nested: Some(&self.extra),
        }
        .serialize(serializer)
    }
}

impl Presented {
    /// The answer built as a copy, the way [`Shaped`] writes it, for what it does not cover:
    /// `?fields=` (the highlight and the top-level keys set after the filter) and a source
    /// without `_extra` that gets a highlight.
    fn built(&self) -> Value {
        let mut document = self.hit.source().clone();
        let mut highlight = None;
        if let Some(object) = document.as_object_mut() {
            for (key, change) in &self.extra {
                if *key == "highlight" {
                    highlight = change.clone();
                    continue;
                }
                if let Some(extra) = object.get_mut("_extra").and_then(Value::as_object_mut) {
                    match change {
                        Some(value) => extra.insert((*key).to_owned(), value.clone()),
                        None => extra.remove(*key),
                    };
                }
            }
        }
        let mut document = filter_fields(document, self.fields.as_deref());
        if let Some(object) = document.as_object_mut() {
            if let Some(highlight) = highlight
                && let Some(extra) = object
                    .entry("_extra")
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
            {
                extra.insert("highlight".to_owned(), highlight);
            }
            for (key, change) in &self.top {
                match change {
                    Some(value) => object.insert((*key).to_owned(), value.clone()),
                    None => object.remove(*key),
                };
            }
        }
        document
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What a hit used to be answered as: its source copied, shaped, filtered, then the
    /// highlight and the top-level keys put in — the oracle [`Presented`] must equal.
    fn copied(
        source: &Value,
        extra: &[Change],
        highlight: Option<&Value>,
        fields: Option<&str>,
        top: &[Change],
    ) -> String {
        let mut document = source.clone();
        if let Some(object) = document.get_mut("_extra").and_then(Value::as_object_mut) {
            for (key, change) in extra {
                match change {
                    Some(value) => object.insert((*key).to_owned(), value.clone()),
                    None => object.remove(*key),
                };
            }
        }
        let mut document = filter_fields(document, fields);
        if let Some(object) = document.as_object_mut() {
            if let Some(highlight) = highlight {
                let extra = object
                    .entry("_extra")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(extra) = extra.as_object_mut() {
                    extra.insert("highlight".to_owned(), highlight.clone());
                }
            }
            for (key, change) in top {
                match change {
                    Some(value) => object.insert((*key).to_owned(), value.clone()),
                    None => object.remove(*key),
                };
            }
        }
        serde_json::to_string(&document).unwrap()
    }

    #[test]
    fn a_presented_hit_is_written_as_its_shaped_copy_was() {
        let sources = [
            json!({"title": "t", "project_id": "p", "b": [1, {"c": null}], "_extra": {
                "id": "p:a@v1", "permissions": {"owners": ["alice"]},
                "link": {"artifactdb": "q:b@v1"}, "zz": 1}}),
            json!({"title": "no extra", "aggs": "source's own"}),
            json!({"_extra": {"id": "x"}, "a": 1, "z": 2}),
            json!({"_extra": "not an object", "m": true}),
            Value::Null,
        ];
        let extras: [Vec<Change>; 3] = [
            vec![("permissions", None)],
            vec![
                ("link", Some(json!({"artifactdb": null}))),
                ("permissions", None),
            ],
            vec![(
                "permissions",
                Some(json!({"owners": ["alice"], "readers": ["alice"]})),
            )],
        ];
        let tops: [Vec<Change>; 3] = [
            vec![],
            vec![
                ("project_id", Some(json!("p"))),
                ("aggs", Some(json!([{"_extra.version": "v1"}]))),
                ("latest", Some(json!(null))),
            ],
            vec![("_extra", None)],
        ];
        let highlights = [None, Some(json!({"title": ["<em>t</em>"]}))];
        let fieldses = [None, Some("title,_extra.id"), Some("aggs")];
        let mut checked = 0;
        for source in &sources {
            for extra in &extras {
                for top in &tops {
                    for highlight in &highlights {
                        for fields in fieldses {
                            let hit = Hit {
                                document: std::sync::Arc::new(
                                    crate::index::doc_cache::StoredDocument {
                                        source: source.clone(),
                                        access: std::sync::Arc::default(),
                                    },
                                ),
                            };
                            let mut presented = Presented::new(hit, fields);
                            for (key, change) in extra {
                                presented.change_extra(key, change.clone());
                            }
                            if let Some(highlight) = highlight {
                                presented.change_extra("highlight", Some(highlight.clone()));
                            }
                            for (key, change) in top {
                                presented.set(key, change.clone());
                            }
                            assert_eq!(
                                serde_json::to_string(&presented).unwrap(),
                                copied(source, extra, highlight.as_ref(), fields, top),
                                "{source} {extra:?} {top:?} {highlight:?} {fields:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 3 * 3 * 2 * 3);
    }
}
