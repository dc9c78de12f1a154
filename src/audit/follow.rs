//! Following the other replicas' audit events: each replica indexes its own events as it
//! stores them, and reads those other writers stored in `..meta/audit/` (their keys are
//! `<day>/<nanoseconds>-<writer>-<seq>.json`) so that `/audit` on any replica shows every
//! replica's events.
//!
//! A pass lists the days from a little before the newest event seen (writers' clocks and
//! late stores: [`GRACE`]) to today, starting after that moment's key, reads the objects it
//! has not read yet, and upserts their views; a completion is merged into its pending event
//! (read in the same or an earlier pass, or already in the index).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike as _, Duration, NaiveDate, TimeZone as _, Utc};
use futures::StreamExt as _;
use serde_json::Value;

use super::event::{AuditEvent, view};
use super::{Audit, Result};
use crate::storage::{ListRequest, ObjectStoreExt as _, keys};

/// How far before the newest event seen a pass reads again.
pub const GRACE: Duration = Duration::seconds(30);

/// Most days one pass walks back (a replica down longer relies on its start-up rebuild).
const MAX_DAYS: i64 = 7;

/// Pending events kept for their completions, at most.
const MAX_PENDING: usize = 10_000;

/// Where the follower is.
#[derive(Debug, Default)]
pub struct FollowState {
    /// Newest event time seen (nanoseconds); `None` before the first pass.
    newest: Option<i64>,
    /// Keys already read within the grace window.
    seen: HashSet<String>,
    /// Pending events of other writers, by id, awaiting their completion.
    pending: HashMap<String, AuditEvent>,
}

/// The nanoseconds of an event key (`.../<nanos>-<writer>-<seq>.json`).
fn key_nanos(key: &str) -> Option<i64> {
    let name = key.rsplit('/').next()?;
    name.split('-').next()?.parse().ok()
}

/// The day prefix of `day`.
fn day_prefix(day: NaiveDate) -> String {
    format!(
        "{}{:04}/{:02}/{:02}/",
        keys::audit_prefix(),
        day.year(),
        day.month(),
        day.day()
    )
}

/// Merges a completion into an indexed view (what [`view`] does with the pending event).
fn merge_into_view(mut base: Value, completion: &AuditEvent) -> Value {
    if let Value::Object(map) = &mut base {
        map.insert(
            "outcome".to_owned(),
            serde_json::to_value(completion.outcome).unwrap_or(Value::Null),
        );
        map.insert(
            "status".to_owned(),
            serde_json::to_value(completion.status).unwrap_or(Value::Null),
        );
        if let (Some(Value::Object(details)), Value::Object(extra)) =
            (map.get_mut("details"), &completion.details)
        {
            for (key, value) in extra {
                details.insert(key.clone(), value.clone());
            }
        }
        map.insert("completed".to_owned(), Value::Bool(true));
        map.insert(
            "completed_at".to_owned(),
            serde_json::to_value(completion.ts).unwrap_or(Value::Null),
        );
    }
    base
}

impl Audit {
    /// One pass over the events other writers stored since the last one; answers how many
    /// were indexed.
    pub async fn follow_others(&self) -> Result<usize> {
        let mut state = self.follow.lock().await;
        let index = self.index.clone();
        if state.newest.is_none() {
            let newest = tokio::task::spawn_blocking(move || {
                index.search(&super::index::AuditQuery {
                    size: 1,
                    ..super::index::AuditQuery::default()
                })
            })
            .await
            .map_err(|error| {
                super::AuditError::Index(super::index::IndexError::from(std::io::Error::other(
                    error,
                )))
            })??
            .results
            .first()
            .and_then(|view| view.get("ts").cloned())
            .and_then(|ts| serde_json::from_value::<DateTime<Utc>>(ts).ok())
            .and_then(|ts| ts.timestamp_nanos_opt());
            state.newest = Some(
                newest.unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or_default()),
            );
        }
        let newest = state.newest.unwrap_or_default();
        let from_nanos = newest - GRACE.num_nanoseconds().unwrap_or_default();
        let from = Utc.timestamp_nanos(from_nanos);
        let today = Utc::now().date_naive();
        let first_day = from.date_naive().max(today - Duration::days(MAX_DAYS));
        let own = format!("-{}-", self.sink.writer());

        let mut fresh: Vec<(String, AuditEvent)> = Vec::new();
        let mut day = first_day;
        while day <= today {
            let prefix = day_prefix(day);
            let mut request = ListRequest {
                prefix: prefix.clone(),
                start_after: (day == from.date_naive())
                    .then(|| format!("{prefix}{:019}", from_nanos.max(0))),
                ..ListRequest::default()
            };
            loop {
                let page = self.storage.list(&request).await?;
                let wanted: Vec<String> = page
                    .objects
                    .into_iter()
                    .map(|object| object.key)
                    .filter(|key| !key.contains(&own) && !state.seen.contains(key))
                    .collect();
                let storage = self.storage.clone();
                let read: Vec<_> = futures::stream::iter(wanted)
                    .map(|key| {
                        let storage = storage.clone();
                        async move {
                            let body = storage.get_bytes(&key).await;
                            (key, body)
                        }
                    })
                    .buffered(16)
                    .collect()
                    .await;
                for (key, body) in read {
                    match body {
                        Ok((bytes, _)) => {
                            if let Ok(event) = serde_json::from_slice::<AuditEvent>(&bytes) {
                                fresh.push((key.clone(), event));
                            }
                        }
                        Err(error) if error.is_not_found() => {}
                        Err(error) => return Err(error.into()),
                    }
                    state.seen.insert(key);
                }
                match page.next {
                    Some(next) => request.continuation = Some(next),
                    None => break,
                }
            }
            day = day.succ_opt().unwrap_or(today + Duration::days(1));
        }

        let mut views = Vec::new();
        let (completions, originals): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|(_, event)| event.completes.is_some());
        let mut newest_seen = newest;
        for (_, event) in &originals {
            views.push(view(event, None));
            if state.pending.len() < MAX_PENDING {
                state.pending.insert(event.id.clone(), event.clone());
            }
            newest_seen = newest_seen.max(event.ts.timestamp_nanos_opt().unwrap_or_default());
        }
        for (_, completion) in &completions {
            newest_seen = newest_seen.max(completion.ts.timestamp_nanos_opt().unwrap_or_default());
            let Some(id) = completion.completes.clone() else {
                continue;
            };
            if let Some(pending) = state.pending.remove(&id) {
                views.push(view(&pending, Some(completion)));
                continue;
            }
            let index = self.index.clone();
            let lookup = id.clone();
            let indexed = tokio::task::spawn_blocking(move || index.get(&lookup))
                .await
                .ok()
                .and_then(std::result::Result::ok)
                .flatten();
            if let Some(base) = indexed {
                views.push(merge_into_view(base, completion));
            }
        }
        let count = views.len();
        if count > 0 {
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || index.upsert(&views))
                .await
                .map_err(|error| {
                    super::AuditError::Index(super::index::IndexError::from(std::io::Error::other(
                        error,
                    )))
                })??;
        }
        state.newest = Some(newest_seen);
        let cutoff = newest_seen - GRACE.num_nanoseconds().unwrap_or_default();
        state
            .seen
            .retain(|key| key_nanos(key).is_none_or(|nanos| nanos >= cutoff));
        let horizon = Utc.timestamp_nanos(cutoff) - Duration::hours(1);
        state.pending.retain(|_, event| event.ts >= horizon);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_nanos_reads_the_time_of_an_event_key() {
        assert_eq!(
            key_nanos("..meta/audit/2026/12/02/0001764633600000000000-abc-000000000001.json"),
            Some(1_764_633_600_000_000_000)
        );
        assert_eq!(key_nanos("..meta/audit/2026/12/02/junk"), None);
    }

    #[test]
    fn merge_into_view_completes_the_pending_view() {
        let base = serde_json::json!({
            "id": "e1", "outcome": "pending", "status": null,
            "details": {"a": 1}, "completed": false
        });
        let mut completion = AuditEvent::new("project.create");
        completion.outcome = super::super::Outcome::Ok;
        completion.status = Some(201);
        completion.details = serde_json::json!({"b": 2});
        let merged = merge_into_view(base, &completion);
        assert_eq!(merged["outcome"], "ok");
        assert_eq!(merged["status"], 201);
        assert_eq!(merged["details"], serde_json::json!({"a": 1, "b": 2}));
        assert_eq!(merged["completed"], true);
    }
}
