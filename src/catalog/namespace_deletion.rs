//! Claims and deleting an empty namespace.
//!
//! A project created in a namespace first writes a *claim* under
//! `..meta/namespace-projects/<ns>/` and then re-reads the namespace record; a deletion first
//! marks the record `deleting` and then looks for claims. Storage is read-after-write
//! consistent, so one of the two always sees the other: either the deletion finds the claim
//! and is refused, or the creation finds the mark (or a changed record) and gives up. No
//! replica's index is trusted for this: a project created on another replica a moment ago
//! may not be in it yet. A mark left by a deletion that died is taken back by the scheduled
//! purge, or the deletion finished when it had already deleted the profile
//! ([`release_stale_deletion_marks`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;

use super::namespaces::{namespace_names, namespace_projects};
use super::projects::{read_record, write_record};
use super::{Error, Result};
use crate::app::AppState;
use crate::error::ErrorCode;
use crate::model::names;
use crate::model::records::{NamespaceRecord, ProjectRecord};
use crate::permissions::ProfileLocation;
use crate::storage::{ObjectStoreExt as _, PutCondition, PutOptions, keys};

/// How long a claim whose project record does not exist (or names another namespace) counts
/// as a creation still in flight. An older one was left by a creation that failed or crashed
/// before it could take its claim back, and holds nothing.
const CLAIM_IN_FLIGHT: TimeDelta = TimeDelta::minutes(15);

/// Claims read at once when a deletion looks for the projects of a namespace.
const CLAIM_READS: usize = 16;

/// One creation's claim of a project in a namespace ([`claim_project`]); give it back with
/// [`release_claim`] when the creation fails.
#[derive(Debug)]
#[must_use]
pub struct Claim {
    key: String,
}

/// Claims `project` in `namespace` for a creation that was authorized against the namespace
/// record with ETag `etag`: writes the claim, then re-reads the record. The creation may go
/// on only when the record is unchanged — a deletion marks it `deleting` before it looks for
/// claims, so either it sees this claim, or this re-read sees its mark.
///
/// # Errors
///
/// `409 conflict` when the namespace changed or is being deleted meanwhile (the claim is
/// given back), `404` when it is gone; storage failures.
pub async fn claim_project(
    app: &AppState,
    namespace: &str,
    project: &str,
    etag: &str,
) -> Result<Claim> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let claim = Claim {
        key: keys::namespace_claim(namespace, project, &id),
    };
    let body = json!({"project_id": project}).to_string();
    app.storage
        .put_bytes(&claim.key, body.into(), PutOptions::default())
        .await?;
    let current = read_record::<NamespaceRecord>(app, &keys::namespace_record(namespace)).await;
    let refusal = match current {
        Ok(Some((record, now))) if now == etag && !record.deleting => return Ok(claim),
        Ok(Some((record, _))) if record.deleting => Error::new(
            ErrorCode::Conflict,
            format!("namespace {namespace} is being deleted"),
        ),
        Ok(Some(_)) => Error::new(
            ErrorCode::Conflict,
            format!("namespace {namespace} changed while project {project} was created; retry"),
        ),
        Ok(None) => Error::not_found(format!("no namespace {namespace}")),
        Err(error) => error,
    };
    release_claim(app, claim).await;
    Err(refusal)
}

/// Gives back the claim of a creation that failed. A claim that cannot be deleted holds
/// nothing once it is 15 minutes old without its project.
pub async fn release_claim(app: &AppState, claim: Claim) {
    if let Err(error) = app.storage.delete(&claim.key).await {
        tracing::warn!(key = %claim.key, %error, "namespace claim not given back");
    }
}

/// The projects claimed in `namespace` that are in it, or may be about to be: every claim
/// whose project record names the namespace, and every project whose newest claim is younger
/// than 15 minutes (a creation in flight). Read from storage, never the index.
///
/// # Errors
///
/// Storage failures, a corrupt project record.
pub async fn claimed_projects(
    app: &AppState,
    namespace: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let prefix = keys::namespace_claims_prefix(namespace);
    let mut newest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for claim in app.storage.list_all(&prefix).await? {
        let Some((project, _)) = claim
            .key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if names::validate_project_id(project).is_err() {
            continue;
        }
        let latest = newest
            .entry(project.to_owned())
            .or_insert(claim.last_modified);
        *latest = (*latest).max(claim.last_modified);
    }
    let held: Vec<Option<String>> = futures::stream::iter(newest)
        .map(|(project, latest)| async move {
            let record = read_record::<ProjectRecord>(app, &keys::project_record(&project)).await?;
            let in_namespace =
                record.is_some_and(|(record, _)| record.namespace.as_deref() == Some(namespace));
            let in_flight = now.signed_duration_since(latest) < CLAIM_IN_FLIGHT;
            Ok::<_, Error>((in_namespace || in_flight).then_some(project))
        })
        .buffered(CLAIM_READS)
        .try_collect()
        .await?;
    Ok(held.into_iter().flatten().collect())
}

/// Deletes an empty namespace: marks its record `deleting` (so no creation can slip in),
/// looks for its projects — its claims in storage, and the index for projects created before
/// claims existed — and, when there are none, deletes its profile, its claims and its record.
/// A refused deletion takes its mark back.
///
/// # Errors
///
/// `404` when there is no such namespace; `409 namespace_not_empty` when it holds projects
/// (or a creation is in flight); `409 conflict` when the record changed meanwhile; storage
/// failures.
pub async fn delete_namespace(app: &AppState, namespace: &str) -> Result<()> {
    let key = keys::namespace_record(namespace);
    let (mut record, etag) = read_record::<NamespaceRecord>(app, &key)
        .await?
        .ok_or_else(|| Error::not_found(format!("no namespace {namespace}")))?;
    record.deleting = true;
    record.deleting_since = Some(Utc::now());
    let marked = write_record(app, &key, &record, PutCondition::IfMatch(etag))
        .await
        .map_err(|error| changed_meanwhile(error, namespace))?;
    crate::crash::point("namespace.delete.marked");
    let held = match held_projects(app, namespace).await {
        Ok(held) => held,
        Err(error) => {
            unmark(app, record, marked).await;
            return Err(error);
        }
    };
    if !held.is_empty() {
        unmark(app, record, marked).await;
        return Err(Error::new(
            ErrorCode::NamespaceNotEmpty,
            format!(
                "namespace {namespace} holds {} project(s); delete or move them first",
                held.len()
            ),
        ));
    }
    crate::crash::pause("namespace.delete.checked").await;
    // Still the record this deletion marked? A deletion stalled past `STALE_DELETION_MARK`
    // may have had its mark taken back by the purge, and a creation may have claimed a
    // project since: that claim is not in what was looked at, so give up rather than delete.
    match read_record::<NamespaceRecord>(app, &key).await? {
        Some((_, now)) if now == marked => {}
        _ => return Err(changed_meanwhile_conflict(namespace)),
    }
    app.profiles
        .delete_profile(&ProfileLocation::Namespace(namespace.to_owned()))
        .await
        .map_err(|error| Error::internal(std::io::Error::other(error.to_string())))?;
    crate::crash::point("namespace.delete.profile_deleted");
    delete_claims_and_record(app, namespace).await?;
    super::namespaces::announce_namespace_change(app, namespace).await;
    Ok(())
}

/// The last steps of a deletion, after the profile: the claims, then the record.
async fn delete_claims_and_record(app: &AppState, namespace: &str) -> Result<()> {
    for claim in app
        .storage
        .list_all(&keys::namespace_claims_prefix(namespace))
        .await?
    {
        app.storage.delete(&claim.key).await?;
    }
    app.storage
        .delete(&keys::namespace_record(namespace))
        .await?;
    Ok(())
}

/// The projects that keep `namespace` from being deleted: its claims, and what the index
/// knows (projects created before claims were written).
async fn held_projects(app: &AppState, namespace: &str) -> Result<BTreeSet<String>> {
    let mut held: BTreeSet<String> = claimed_projects(app, namespace, app.clock.now())
        .await?
        .into_iter()
        .collect();
    held.extend(namespace_projects(app, namespace).await?);
    Ok(held)
}

/// Takes back the `deleting` mark of a refused deletion, unless the record changed since.
async fn unmark(app: &AppState, mut record: NamespaceRecord, etag: String) {
    record.deleting = false;
    record.deleting_since = None;
    let key = keys::namespace_record(&record.name);
    if let Err(error) = write_record(app, &key, &record, PutCondition::IfMatch(etag)).await {
        tracing::warn!(namespace = %record.name, %error, "deletion mark not taken back");
    }
}

/// How old a `deleting` mark must be before the scheduled purge takes it back. A deletion
/// marks, looks for projects (a listing and an index search, each bounded by the storage
/// timeout) and deletes or unmarks within seconds; a mark this old was left by one that died
/// in between, and would otherwise refuse every project creation in the namespace until an
/// admin asked for the deletion again.
pub const STALE_DELETION_MARK: TimeDelta = TimeDelta::minutes(15);

/// What the purge did with the `deleting` marks of deletions that died
/// ([`release_stale_deletion_marks`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StaleMarks {
    /// Namespaces whose mark was taken back: they stay, as a refused deletion leaves them.
    pub released: Vec<String>,
    /// Namespaces whose deletion had already deleted the profile: it was finished.
    pub finished: Vec<String>,
}

/// Deals with the `deleting` marks that deletions which died left behind (older than
/// [`STALE_DELETION_MARK`], or without a time), each only if its record is unchanged since it
/// was read. A deletion that died after deleting the namespace's profile had found no project
/// (and the mark has refused every creation since): it is finished — claims and record
/// deleted — rather than leaving a namespace whose grants are gone. Any other mark is taken
/// back: the namespace stays, as a refused deletion leaves it, and the admin who asked for
/// the deletion can ask again.
///
/// # Errors
///
/// Storage failures of the listing; a record that cannot be read or written is logged and
/// skipped.
pub async fn release_stale_deletion_marks(
    app: &AppState,
    now: DateTime<Utc>,
) -> Result<StaleMarks> {
    let mut marks = StaleMarks::default();
    for name in namespace_names(app).await? {
        let key = keys::namespace_record(&name);
        let (mut record, etag) = match read_record::<NamespaceRecord>(app, &key).await {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(namespace = %name, %error, "namespace record unreadable");
                continue;
            }
        };
        let stale = record
            .deleting_since
            .is_none_or(|since| now.signed_duration_since(since) >= STALE_DELETION_MARK);
        if !record.deleting || !stale {
            continue;
        }
        match finish_deletion(app, &name, &etag).await {
            Ok(true) => {
                tracing::warn!(namespace = %name, "deletion that died after its profile finished");
                marks.finished.push(name);
                continue;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(namespace = %name, %error, "stale deletion not finished");
                continue;
            }
        }
        record.deleting = false;
        record.deleting_since = None;
        match write_record(app, &key, &record, PutCondition::IfMatch(etag)).await {
            Ok(_) => {
                tracing::warn!(namespace = %name, "stale deletion mark taken back");
                marks.released.push(name);
            }
            Err(error) => {
                tracing::warn!(namespace = %name, %error, "stale deletion mark not taken back");
            }
        }
    }
    Ok(marks)
}

/// Finishes the deletion that marked `namespace` (record ETag `marked`) when it had deleted
/// the profile and no project holds the namespace; answers whether it did.
async fn finish_deletion(app: &AppState, namespace: &str, marked: &str) -> Result<bool> {
    let profile = app
        .profiles
        .load_uncached(&ProfileLocation::Namespace(namespace.to_owned()))
        .await;
    // An unreadable profile is still there: only an absent one tells the deletion got past it.
    if !matches!(profile, Ok(None)) {
        return Ok(false);
    }
    if !held_projects(app, namespace).await?.is_empty() {
        return Ok(false);
    }
    match read_record::<NamespaceRecord>(app, &keys::namespace_record(namespace)).await? {
        Some((_, now)) if now == marked => {}
        _ => return Ok(false),
    }
    // Deleting data: a mutation of the system actor, audited like the purge's others.
    let event = crate::audit::AuditEvent::new("namespace.purge")
        .resource(format!("namespace:{namespace}"))
        .detail("reason", "deletion_interrupted");
    app.audit
        .mutation(event, 204, delete_claims_and_record(app, namespace))
        .await?;
    app.profiles
        .invalidate(&ProfileLocation::Namespace(namespace.to_owned()));
    super::namespaces::announce_namespace_change(app, namespace).await;
    Ok(true)
}

/// A conditional write that lost to another change: `409 conflict` (the caller sent no
/// `If-Match`; retrying is the answer).
fn changed_meanwhile(error: Error, namespace: &str) -> Error {
    if error.code() == ErrorCode::PreconditionFailed {
        changed_meanwhile_conflict(namespace)
    } else {
        error
    }
}

/// `409 conflict`: the namespace record changed under the request; retrying is the answer.
fn changed_meanwhile_conflict(namespace: &str) -> Error {
    Error::new(
        ErrorCode::Conflict,
        format!("namespace {namespace} changed meanwhile; retry"),
    )
}
