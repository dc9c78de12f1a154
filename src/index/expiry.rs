//! Grant expiries to act on: the indexer notes, per project, the earliest future expiry among
//! the grants its documents were built with; a background task re-indexes each project when
//! that moment comes, so an expired share disappears from search (totals and aggregations
//! included) within moments. Hits are re-checked at query time anyway.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// Projects to re-index, by the time their next grant expires.
#[derive(Debug, Default)]
pub struct ExpiryTracker {
    due: Mutex<BTreeMap<DateTime<Utc>, BTreeSet<String>>>,
    changed: Notify,
}

impl ExpiryTracker {
    /// An empty tracker.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `project` must be re-indexed at `at` (nothing when `None`).
    pub fn note(&self, project: &str, at: Option<DateTime<Utc>>) {
        let Some(at) = at else {
            return;
        };
        if let Ok(mut due) = self.due.lock() {
            due.entry(at).or_default().insert(project.to_owned());
        }
        self.changed.notify_one();
    }

    /// The projects whose expiry has come by `now`, removed from the tracker.
    pub fn take_due(&self, now: DateTime<Utc>) -> BTreeSet<String> {
        let Ok(mut due) = self.due.lock() else {
            return BTreeSet::new();
        };
        let later = due.split_off(&(now + chrono::Duration::nanoseconds(1)));
        let ready = std::mem::replace(&mut *due, later);
        ready.into_values().flatten().collect()
    }

    /// The earliest noted expiry.
    #[must_use]
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.due.lock().ok()?.keys().next().copied()
    }

    /// Resolves when a new expiry is noted.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_projects_are_taken_once_in_time_order() {
        let tracker = ExpiryTracker::new();
        let now: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
        tracker.note("a", Some(now + chrono::Duration::seconds(10)));
        tracker.note("b", Some(now - chrono::Duration::seconds(1)));
        tracker.note("c", None);
        assert_eq!(tracker.next(), Some(now - chrono::Duration::seconds(1)));
        assert_eq!(tracker.take_due(now), BTreeSet::from(["b".to_owned()]));
        assert!(tracker.take_due(now).is_empty());
        assert_eq!(
            tracker.take_due(now + chrono::Duration::seconds(10)),
            BTreeSet::from(["a".to_owned()])
        );
        assert_eq!(tracker.next(), None);
    }
}
