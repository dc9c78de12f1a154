//! How a search hit is answered, on every read route that returns documents: `_extra.permissions`
//! only on documents the caller may manage (with ArtifactDB's `readers`), a link's target
//! hidden unless readable, the highlight snippet, then the requested fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::access::search_scope;
use super::presented::Presented;
use crate::app::AppState;
use crate::auth::Principal;
use crate::index::cursor::CursorState;
use crate::index::extra::Extra;
use crate::index::search::Hit;
use crate::model::id::ArtifactId;
use crate::permissions::{ResolvedProfile, Target, can_manage};

/// Keeps only the requested keys (top level, or `_extra.<key>`).
pub(super) fn filter_fields(document: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields.map(str::trim).filter(|f| !f.is_empty()) else {
        return document;
    };
    let Value::Object(object) = document else {
        return document;
    };
    let mut kept = Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match field.split_once('.') {
            Some((top, sub)) => {
                if let Some(value) = object.get(top).and_then(|inner| inner.get(sub)) {
                    let entry = kept
                        .entry(top.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(inner) = entry {
                        inner.insert(sub.to_owned(), value.clone());
                    }
                }
            }
            None => {
                if let Some(value) = object.get(field) {
                    kept.insert(field.to_owned(), value.clone());
                }
            }
        }
    }
    Value::Object(kept)
}

/// Whether the caller may manage the resource a hit belongs to (then it sees
/// `_extra.permissions`), evaluated from what the hit carries.
fn may_manage(principal: &Principal, hit: &Hit, now: DateTime<Utc>) -> bool {
    if principal.is_admin() {
        return true;
    }
    if principal.is_anonymous() {
        return false;
    }
    // Only an owner manages (machine key scopes never reach the owner level): a caller that
    // none of the listed owners names does not, which most hits of a page settle here,
    // before their profile is parsed.
    if !names_an_owner(principal, hit) {
        return false;
    }
    let Ok(profile) =
        serde_json::from_value::<ResolvedProfile>(hit.source()["_extra"]["permissions"].clone())
    else {
        return false;
    };
    let extra = Extra::of(hit.source());
    let state = extra.state.unwrap_or_default();
    let target = Target {
        profile,
        state,
        parent_state: state,
        namespace: extra.namespace.map(str::to_owned),
        project: extra.project_id.map(str::to_owned),
        version: extra.version.map(str::to_owned),
        ..Target::default()
    };
    let allowed = can_manage(&principal.caller, &target, now);
    match &principal.creator {
        Some(creator) => allowed && can_manage(creator, &target, now),
        None => allowed,
    }
}

/// Whether one of the owners listed in the hit's profile names the caller.
fn names_an_owner(principal: &Principal, hit: &Hit) -> bool {
    let owners = hit.source()["_extra"]["permissions"]["owners"].as_array();
    owners.is_some_and(|owners| {
        (owners.iter())
            .filter_map(Value::as_str)
            .any(|owner| principal.caller.is_named(owner))
    })
}

/// ArtifactDB's `readers`: the principals that may read under a profile — the levels its
/// `read_access` admits (owners, writers, viewers), or `authenticated` / `public` for the
/// open rules, nobody for `none`.
fn readers_of(permissions: &Map<String, Value>) -> Vec<String> {
    let list = |key: &str| -> Vec<String> {
        permissions
            .get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let levels: &[&str] = match permissions
        .get("read_access")
        .and_then(Value::as_str)
        .unwrap_or("viewers")
    {
        "owners" => &["owners"],
        "writers" => &["owners", "writers"],
        "authenticated" => return vec!["authenticated".to_owned()],
        "public" => return vec!["public".to_owned()],
        "none" => &[],
        _ => &["owners", "writers", "viewers"],
    };
    let mut readers: Vec<String> = Vec::new();
    for level in levels {
        for principal in list(level) {
            if !readers.contains(&principal) {
                readers.push(principal);
            }
        }
    }
    readers
}

/// Whether the caller may read the document a link points to: only then does it learn the
/// target's id.
pub fn link_target_readable(app: &AppState, principal: &Principal, target: &str) -> bool {
    let Ok(id) = ArtifactId::parse(target) else {
        return false;
    };
    let version = if id.version.as_str() == crate::model::names::LATEST {
        match super::access::latest_readable_version(app, principal, &id.project) {
            Ok(Some(version)) => version,
            _ => return false,
        }
    } else {
        id.version.as_str().to_owned()
    };
    let document_id = format!("{}:{}@{}", id.project, id.path, version);
    matches!(
        crate::index::search::get_by_id(
            &app.index,
            &search_scope(principal),
            &document_id,
            app.clock.now()
        ),
        Ok(Some(_))
    )
}

/// A hit as returned: permissions left out unless manageable, a link's target hidden unless
/// readable, then fields filtered.
pub(super) fn present(
    app: &AppState,
    principal: &Principal,
    hit: Hit,
    fields: Option<&str>,
    now: DateTime<Utc>,
) -> Presented {
    let manage = may_manage(principal, &hit, now);
    let mut presented = Presented::new(hit, fields);
    let Some(source_extra) = presented.source().get("_extra").and_then(Value::as_object) else {
        return presented;
    };
    let permissions = source_extra.get("permissions").and_then(Value::as_object);
    let permissions = match permissions {
        Some(permissions) if manage && !permissions.contains_key("readers") => {
            let mut shown = permissions.clone();
            shown.insert("readers".to_owned(), json!(readers_of(permissions)));
            Some(Some(Value::Object(shown)))
        }
        Some(_) if manage => None,
        _ => Some(None),
    };
    let hidden = source_extra
        .get("link")
        .and_then(|link| link.get("artifactdb"))
        .and_then(Value::as_str)
        .is_some_and(|target| !link_target_readable(app, principal, target));
    if let Some(permissions) = permissions {
        presented.change_extra("permissions", permissions);
    }
    if hidden {
        presented.change_extra("link", Some(json!({"artifactdb": Value::Null})));
    }
    presented
}

/// The hits of a page as answered: highlighted when asked, presented (see [`present`]).
/// Runs on the blocking pool: a link's target is checked with a search.
pub(super) fn present_page(
    app: &AppState,
    principal: &Principal,
    cursor: &CursorState,
    hits: Vec<Hit>,
    now: DateTime<Utc>,
) -> Vec<Presented> {
    let words = if cursor.highlight {
        crate::index::highlight::query_words(&cursor.q)
    } else {
        Vec::new()
    };
    hits.into_iter()
        .map(|hit| {
            // Built from the hit itself, before fields are filtered.
            let highlight = cursor
                .highlight
                .then(|| crate::index::highlight::snippet(hit.source(), &words, cursor.prefix));
            let mut document = present(app, principal, hit, cursor.fields.as_deref(), now);
            if let Some(highlight) = highlight {
                document.change_extra("highlight", Some(json!(highlight)));
            }
            document
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_follow_the_read_rule() {
        let profile = |rule: &str| {
            json!({"owners": ["alice"], "writers": ["bob"], "viewers": ["carol", "alice"], "read_access": rule})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(readers_of(&profile("viewers")), ["alice", "bob", "carol"]);
        assert_eq!(readers_of(&profile("writers")), ["alice", "bob"]);
        assert_eq!(readers_of(&profile("owners")), ["alice"]);
        assert_eq!(readers_of(&profile("public")), ["public"]);
        assert!(readers_of(&profile("none")).is_empty());
    }
}
