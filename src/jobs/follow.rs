//! The follower of the change feed ([`crate::feed`]): every `TROVE_FEED_POLL_MS` it reads
//! the entries after its position, drops the caches they make stale and re-indexes what they
//! name from storage, then records the new position in `feed-position` of the data
//! directory — only after the index committed, so a replica that stops resumes where its
//! index is. Entries this replica wrote are skipped: it indexed them itself before answering.
//!
//! The same loop reads the audit events other replicas stored, about once a second
//! ([`crate::audit::Audit::follow_others`]), so `/audit` on any replica shows them all.
//!
//! At start-up, a replica that never followed starts at the feed's head (the start-up
//! reconciliation covers what came before); one whose position the feed no longer reaches
//! (compacted while it was down) rebuilds its index from storage.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app::AppState;
use crate::feed::{Change, Entry, FeedError};

/// Most entries read per poll.
const BATCH: usize = 500;

/// How often the other replicas' audit events are read.
const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// Where the follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this sequence number.
    After(u64),
    /// Rebuild the index, then follow after this sequence number (the head before the
    /// rebuild started).
    Rebuild(u64),
}

/// The file keeping this replica's position.
fn position_file(app: &AppState) -> PathBuf {
    app.settings.data_dir.join("feed-position")
}

fn read_position(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_position(path: &Path, position: u64) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, position.to_string())?;
    std::fs::rename(&temporary, path)
}

/// Decides where to start: read before the start-up reconciliation begins, so that nothing
/// published meanwhile is skipped.
pub async fn start_position(app: &AppState) -> Result<Start, FeedError> {
    let head = app.feed.head().await?;
    let Some(position) = read_position(&position_file(app)) else {
        return Ok(Start::After(head));
    };
    if position > head {
        // The bucket was replaced or the position file copied from elsewhere.
        return Ok(Start::Rebuild(head));
    }
    match app.feed.oldest().await? {
        Some(oldest) if oldest > position + 1 => Ok(Start::Rebuild(head)),
        _ => Ok(Start::After(position)),
    }
}

/// Most entries a restart replays before it opens reads (see [`catch_up_work`]); more than
/// that, and the full sync check is the cheaper way back.
const MAX_REPLAY: usize = 10_000;

/// What the feed asks of this replica's index since its saved position — every writer's
/// entries, this replica's own included — when that is a small, known amount: `None` when
/// following is off, no position was saved, the feed no longer reaches it (compacted, or a
/// bucket replaced), it holds more than 10,000 entries, or one of them asks to
/// re-index everything. Used after a clean shutdown (see `App::reconcile_in_background`):
/// the index then held everything this replica acknowledged, and the feed names everything
/// the others changed since.
pub async fn catch_up_work(app: &AppState) -> Result<Option<Work>, FeedError> {
    if app.settings.feed_poll_ms == 0 {
        return Ok(None);
    }
    let Some(position) = read_position(&position_file(app)) else {
        return Ok(None);
    };
    let head = app.feed.head().await?;
    if position > head {
        return Ok(None);
    }
    let mut entries = Vec::new();
    let mut after = position;
    while after < head {
        let batch = match app.feed.read_after(after, BATCH).await {
            Ok(batch) => batch,
            Err(FeedError::Gap(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(&(last, _)) = batch.last() else {
            // The head was listed but is gone: compacted meanwhile.
            return Ok(None);
        };
        entries.extend(batch.into_iter().map(|(_, entry)| entry));
        if entries.len() > MAX_REPLAY {
            return Ok(None);
        }
        after = last;
    }
    // No replica id is empty: every entry counts, this replica's own too.
    let work = Work::from_entries(&entries, "");
    Ok((!work.all).then_some(work))
}

/// What a batch of entries asks for, merged: re-indexing a project once covers every change
/// to it in the batch (re-indexing reads the latest state).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Re-index everything.
    pub all: bool,
    /// Projects to re-index whole.
    pub projects: BTreeSet<String>,
    /// Versions to re-index (of projects not re-indexed whole).
    pub versions: BTreeSet<(String, String)>,
    /// Drop cached accounts and profiles.
    pub caches: bool,
}

impl Work {
    /// Merges the entries not written by `replica`.
    #[must_use]
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a Entry>, replica: &str) -> Self {
        let mut work = Self::default();
        for entry in entries {
            if entry.replica == replica {
                continue;
            }
            // Every index change may come with a profile or record change: cached copies go.
            work.caches = true;
            match &entry.change {
                Change::All => work.all = true,
                Change::Projects { projects } => work.projects.extend(projects.iter().cloned()),
                Change::Version { project, version } => {
                    work.versions.insert((project.clone(), version.clone()));
                }
                Change::Accounts => {}
            }
        }
        let projects = &work.projects;
        work.versions
            .retain(|(project, _)| !projects.contains(project));
        work
    }

    /// Whether there is nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.all && !self.caches && self.projects.is_empty() && self.versions.is_empty()
    }
}

/// Applies `work` to this replica's index and caches.
pub async fn apply(app: &AppState, work: Work) -> Result<(), String> {
    if work.caches {
        app.profiles.invalidate_all();
        app.auth.invalidate_caches();
    }
    if work.all {
        app.indexer
            .index_projects(None, |_, _| {})
            .await
            .map_err(|error| error.to_string())?;
        return Ok(());
    }
    if !work.projects.is_empty() {
        app.indexer
            .index_projects(Some(work.projects.into_iter().collect()), |_, _| {})
            .await
            .map_err(|error| error.to_string())?;
    }
    for (project, version) in work.versions {
        app.indexer
            .index_version(&project, &version)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

/// Reads and applies what follows `position` once; answers the new position.
pub async fn poll_once(app: &AppState, position: u64) -> Result<u64, FeedError> {
    let entries = app.feed.read_after(position, BATCH).await?;
    let Some(&(last, _)) = entries.last() else {
        return Ok(position);
    };
    let work = Work::from_entries(entries.iter().map(|(_, entry)| entry), app.feed.replica());
    if !work.is_empty() {
        let started = std::time::Instant::now();
        apply(app, work)
            .await
            .map_err(|error| FeedError::Storage(crate::storage::StorageError::Backend(error)))?;
        tracing::debug!(
            entries = entries.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "change feed applied"
        );
    }
    if let Some((_, newest)) = entries.last() {
        let lag = (chrono::Utc::now() - newest.at).num_milliseconds();
        app.metrics.feed_lag_ms.set(lag.max(0));
    }
    app.metrics
        .feed_position
        .set(i64::try_from(last).unwrap_or(i64::MAX));
    Ok(last)
}

/// [`poll_once`] on an owned state, for a task of its own.
async fn poll_once_owned(app: AppState, position: u64) -> Result<u64, FeedError> {
    poll_once(&app, position).await
}

/// Rebuilds the index from storage (the feed no longer reaches this replica's position).
async fn rebuild(app: &AppState) -> Result<(), String> {
    tracing::warn!("change feed compacted past this replica's position: rebuilding the index");
    app.indexer
        .index_projects(None, |_, _| {})
        .await
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Decides where to start and follows the feed from there (`None` when following is off,
/// `TROVE_FEED_POLL_MS=0`). Call it before the start-up reconciliation begins. When storage
/// cannot be read now, the follower starts from its saved position (or the feed's start).
pub async fn start(app: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    if app.settings.feed_poll_ms == 0 {
        return None;
    }
    let start = match start_position(app).await {
        Ok(start) => start,
        Err(error) => {
            tracing::warn!(%error, "change feed head not read at start-up");
            Start::After(read_position(&position_file(app)).unwrap_or(0))
        }
    };
    Some(spawn(app.clone(), start))
}

/// Follows the feed until the process ends, from `start`.
pub fn spawn(app: AppState, start: Start) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Two loops in one task (aborting the handle stops both): the audit never delays
        // the index.
        tokio::join!(follow_feed(app.clone(), start), follow_audit(app));
    })
}

/// Reads other replicas' audit events until the process ends.
async fn follow_audit(app: AppState) {
    loop {
        if let Err(error) = app.audit.follow_others().await {
            tracing::warn!(%error, "other replicas' audit events not read; retrying");
        }
        tokio::time::sleep(AUDIT_INTERVAL).await;
    }
}

/// Applies the change feed until the process ends.
async fn follow_feed(app: AppState, start: Start) {
    {
        let interval = Duration::from_millis(app.settings.feed_poll_ms.max(1));
        let path = position_file(&app);
        let mut position = match start {
            Start::After(position) => position,
            Start::Rebuild(head) => {
                while let Err(error) = rebuild(&app).await {
                    tracing::error!(%error, "index rebuild for the change feed failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                head
            }
        };
        let mut saved = None;
        loop {
            // Run to completion like a mutating request: stopping the follower (its task
            // aborted at shutdown) never drops a batch half applied, which would leave the
            // index marked as possibly lacking changes; `App::close` waits for it. Its position
            // is saved only after it, so a batch applied but not saved is replayed, harmlessly.
            let polled = app.mutations.spawn(poll_once_owned(app.clone(), position));
            let polled = polled.await.unwrap_or_else(|error| {
                Err(FeedError::Storage(crate::storage::StorageError::Backend(
                    error.to_string(),
                )))
            });
            match polled {
                Ok(next) => position = next,
                Err(FeedError::Gap(_)) => {
                    let head = app.feed.head().await.unwrap_or(position);
                    match rebuild(&app).await {
                        Ok(()) => position = head,
                        Err(error) => tracing::error!(%error, "index rebuild failed"),
                    }
                }
                Err(error) => tracing::warn!(%error, "change feed not read; retrying"),
            }
            if saved != Some(position) {
                match write_position(&path, position) {
                    Ok(()) => saved = Some(position),
                    Err(error) => tracing::warn!(%error, "change feed position not saved"),
                }
            }
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(replica: &str, change: Change) -> Entry {
        Entry {
            replica: replica.to_owned(),
            at: chrono::Utc::now(),
            change,
        }
    }

    #[test]
    fn work_merges_entries_skips_own_and_versions_of_whole_projects() {
        let entries = [
            entry("me", Change::All),
            entry(
                "other",
                Change::Version {
                    project: "p".into(),
                    version: "v1".into(),
                },
            ),
            entry(
                "other",
                Change::Projects {
                    projects: vec!["p".into(), "q".into()],
                },
            ),
            entry(
                "other",
                Change::Version {
                    project: "r".into(),
                    version: "v2".into(),
                },
            ),
        ];
        let work = Work::from_entries(&entries, "me");
        assert!(!work.all, "its own entries are skipped");
        assert!(work.caches);
        assert_eq!(
            work.projects,
            BTreeSet::from(["p".to_owned(), "q".to_owned()])
        );
        assert_eq!(
            work.versions,
            BTreeSet::from([("r".to_owned(), "v2".to_owned())])
        );
        let own_only = Work::from_entries(&entries[..1], "me");
        assert!(own_only.is_empty());
        let accounts = Work::from_entries(&[entry("other", Change::Accounts)], "me");
        assert!(accounts.caches && accounts.projects.is_empty() && !accounts.all);
    }
}
