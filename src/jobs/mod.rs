//! Background jobs: the registry that `GET /jobs/{id}` reads, and the bodies of the jobs
//! (indexing, sync). Each job's body is separate from what starts it — a route, the start-up
//! reconciliation, or the scheduler ([`schedule`]).
//!
//! The registry keeps the jobs this process runs in memory and writes each one to storage
//! (`..meta/jobs/<id>.json`) when it is started, every second while it runs (a heartbeat)
//! and when it ends, so that any replica answers `GET /jobs/{id}`. A job whose heartbeat
//! stopped (its replica died) is reported as failed. Finished jobs are kept for an hour; the
//! purge deletes older records.

pub mod follow;
pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, keys};

/// How long finished jobs stay queryable.
const KEEP_FINISHED: Duration = Duration::hours(1);

/// How often a running job's record is rewritten in storage.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

/// A running job whose record is older than this is reported as failed (its replica stopped).
const HEARTBEAT_LAPSE: Duration = Duration::seconds(60);

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    /// Accepted, not started.
    Pending,
    /// Running.
    Started,
    /// Finished well.
    Success,
    /// Finished with an error.
    Failure,
}

/// Progress of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Units done.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
}

/// Every kind of background job, by the name a job's `kind` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Re-indexing one project (record and versions).
    IndexProject,
    /// Re-indexing every project of a namespace.
    IndexNamespace,
    /// Re-indexing one version.
    IndexVersion,
    /// Rebuilding the whole index.
    IndexBuild,
    /// The scheduled check of index against storage.
    Sync,
    /// The scheduled purge of late uploads and expired transient versions.
    Purge,
    /// The scheduled purge of expired token revocations.
    RevocationPurge,
    /// The reconciliation of the index with storage at start-up.
    StartupReconcile,
}

impl JobKind {
    /// The name a job of this kind carries (`kind` in the job's JSON).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IndexProject => "index_project",
            Self::IndexNamespace => "index_namespace",
            Self::IndexVersion => "index_version",
            Self::IndexBuild => "index_build",
            Self::Sync => "sync",
            Self::Purge => "purge",
            Self::RevocationPurge => "revocation_purge",
            Self::StartupReconcile => "startup_reconcile",
        }
    }

    /// Whether a graceful stop cuts a running job of this kind short instead of waiting
    /// for it: the jobs that walk all of storage (a rebuild, a sync check, the start-up
    /// reconciliation) can run for minutes at a million documents — longer than an
    /// orchestrator's grace period — and what they write is the index, which the next start
    /// checks against storage when this process did not vouch for it. A job cut short counts
    /// as failed, so it does not.
    #[must_use]
    pub fn stops_at_shutdown(self) -> bool {
        matches!(self, Self::IndexBuild | Self::Sync | Self::StartupReconcile)
    }
}

/// The error of a job a graceful stop cut short (see [`JobKind::stops_at_shutdown`]).
pub const STOPPED_BY_SHUTDOWN: &str = "stopped by the shutdown of its replica before it ended";

/// What `GET /jobs/{id}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobInfo {
    /// Job id.
    pub job_id: String,
    /// Status.
    pub status: JobStatus,
    /// What the job does (`index_build`, `index_version`, `sync`, ...).
    pub kind: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Progress.
    pub progress: Progress,
    /// The error of a failed job.
    pub error: Option<String>,
    /// Who started it (principal), `system` for internal jobs.
    #[serde(skip)]
    pub creator: String,
}

/// A job as kept in storage.
#[derive(Debug, Serialize, Deserialize)]
struct JobRecord {
    #[serde(flatten)]
    info: JobInfo,
    creator: String,
    /// When the record was last written by the replica running the job.
    heartbeat_at: DateTime<Utc>,
}

/// The registry of jobs: those of this process in memory, everyone's in storage.
#[derive(Debug, Clone, Default)]
pub struct JobRegistry {
    jobs: Arc<Mutex<HashMap<String, JobInfo>>>,
    store: Option<Arc<dyn ObjectStore>>,
    /// The bodies running (or spawned and not yet run): a graceful shutdown waits for them.
    running: tokio_util::task::TaskTracker,
    /// Set when a job of this process failed (or was dropped unfinished): the index may lack
    /// what it was to apply, so the shutdown does not vouch for the index.
    failed: Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled when the process stops: the running jobs whose kind
    /// [stops at shutdown](JobKind::stops_at_shutdown) end as failed.
    stopping: tokio_util::sync::CancellationToken,
}

/// Marks the registry's jobs as failed when dropped armed: a job body that failed, or whose
/// task was dropped before it ended (a runtime shutting down).
struct UnfinishedJob(Option<Arc<std::sync::atomic::AtomicBool>>);

impl UnfinishedJob {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for UnfinishedJob {
    fn drop(&mut self) {
        if let Some(failed) = &self.0 {
            failed.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// A handle a running job reports through.
#[derive(Debug, Clone)]
pub struct JobHandle {
    id: String,
    kind: JobKind,
    registry: JobRegistry,
}

impl JobHandle {
    /// The job id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reports progress.
    pub fn progress(&self, done: u64, total: u64) {
        self.registry
            .update(&self.id, |job| job.progress = Progress { done, total });
    }
}

impl JobRegistry {
    /// An empty registry writing its jobs to `store` (`None`: kept in memory only).
    #[must_use]
    pub fn new(store: Option<Arc<dyn ObjectStore>>) -> Self {
        Self {
            jobs: Arc::default(),
            store,
            running: tokio_util::task::TaskTracker::new(),
            failed: Arc::default(),
            stopping: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Cuts short the running jobs that [stop at shutdown](JobKind::stops_at_shutdown), and
    /// those of that kind started later: each ends as failed ("stopped by the shutdown").
    pub fn stop_long_jobs(&self) {
        self.stopping.cancel();
    }

    /// Waits up to `limit` for every job body of this process to end; answers whether they
    /// all did. Jobs spawned later are waited for too.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        self.running.close();
        let ended = tokio::time::timeout(limit, self.running.wait())
            .await
            .is_ok();
        self.running.reopen();
        ended
    }

    /// Whether a job of this process failed or was dropped before it ended.
    #[must_use]
    pub fn any_failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Writes the job's current state to storage (nothing without a store). A failure is
    /// logged: the job itself goes on, and the next heartbeat tries again.
    async fn persist(&self, id: &str) {
        let Some(store) = &self.store else {
            return;
        };
        let Some(info) = self.get(id) else {
            return;
        };
        let record = JobRecord {
            creator: info.creator.clone(),
            info,
            heartbeat_at: Utc::now(),
        };
        let body = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            ..PutOptions::default()
        };
        if let Err(error) = store.put_bytes(&keys::job(id), body, options).await {
            tracing::warn!(job_id = %id, %error, "job record not written to storage");
        }
    }

    /// A job by id: this process's, else the record another replica wrote. A job still
    /// running whose heartbeat lapsed is reported as failed.
    pub async fn find(&self, id: &str) -> Option<JobInfo> {
        if let Some(job) = self.get(id) {
            return Some(job);
        }
        let store = self.store.as_ref()?;
        Uuid::parse_str(id).ok()?;
        let (bytes, _) = store.get_bytes(&keys::job(id)).await.ok()?;
        let record: JobRecord = serde_json::from_slice(&bytes).ok()?;
        let mut info = record.info;
        info.creator = record.creator;
        let running = matches!(info.status, JobStatus::Pending | JobStatus::Started);
        if running && Utc::now() - record.heartbeat_at > HEARTBEAT_LAPSE {
            info.status = JobStatus::Failure;
            info.error = Some("the replica running this job stopped before it finished".to_owned());
            info.finished_at = Some(record.heartbeat_at);
        }
        Some(info)
    }

    /// Deletes the stored records of jobs that ended (or last beat) before `before`.
    pub async fn purge_records(&self, before: DateTime<Utc>) -> crate::storage::Result<usize> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut purged = 0;
        for object in store.list_all(&keys::jobs_prefix()).await? {
            if object.last_modified < before {
                store.delete(&object.key).await?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut JobInfo)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(job) = jobs.get_mut(id)
        {
            change(job);
        }
    }

    /// Registers a pending job.
    pub fn create(&self, kind: JobKind, creator: &str) -> JobHandle {
        let id = Uuid::now_v7().to_string();
        let now = Utc::now();
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|_, job| job.finished_at.is_none_or(|at| now - at < KEEP_FINISHED));
            jobs.insert(
                id.clone(),
                JobInfo {
                    job_id: id.clone(),
                    status: JobStatus::Pending,
                    kind: kind.as_str().to_owned(),
                    created_at: now,
                    finished_at: None,
                    progress: Progress::default(),
                    error: None,
                    creator: creator.to_owned(),
                },
            );
        }
        JobHandle {
            id,
            kind,
            registry: self.clone(),
        }
    }

    /// Writes the job to storage, then runs `body` as the job in the background: when this
    /// returns, every replica can answer for the job.
    pub async fn start<F, Fut>(&self, handle: JobHandle, body: F)
    where
        F: FnOnce(JobHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.persist(&handle.id).await;
        self.spawn(handle, body);
    }

    /// Runs `body` as the job in the background, recording its outcome (in storage too:
    /// when it starts, every second while it runs, when it ends).
    pub fn spawn<F, Fut>(&self, handle: JobHandle, body: F)
    where
        F: FnOnce(JobHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let registry = self.clone();
        let unfinished = UnfinishedJob(Some(self.failed.clone()));
        self.running.spawn(async move {
            let unfinished = unfinished;
            registry.update(&handle.id, |job| job.status = JobStatus::Started);
            let id = handle.id.clone();
            let kind = registry.get(&id).map(|job| job.kind).unwrap_or_default();
            let stops = handle.kind.stops_at_shutdown();
            let mut body = Box::pin(body(handle));
            let mut heartbeat = tokio::time::interval(HEARTBEAT);
            // One task writes the record, so the final state is never overwritten by a
            // heartbeat written after it.
            let outcome = loop {
                tokio::select! {
                    outcome = &mut body => break outcome,
                    _ = heartbeat.tick() => registry.persist(&id).await,
                    () = registry.stopping.cancelled(), if stops => {
                        break Err(STOPPED_BY_SHUTDOWN.to_owned());
                    }
                }
            };
            // A body cut short is dropped before its outcome is recorded: nothing of it
            // runs on once the job reads as ended.
            drop(body);
            if let Err(error) = &outcome {
                if error == STOPPED_BY_SHUTDOWN {
                    tracing::warn!(job_id = %id, %kind, "job stopped by the shutdown");
                } else {
                    tracing::error!(job_id = %id, %kind, %error, "job failed");
                }
            } else {
                unfinished.disarm();
            }
            registry.update(&id, |job| {
                job.finished_at = Some(Utc::now());
                match outcome {
                    Ok(()) => job.status = JobStatus::Success,
                    Err(error) => {
                        job.status = JobStatus::Failure;
                        job.error = Some(error);
                    }
                }
            });
            registry.persist(&id).await;
        });
    }

    /// A job by id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.jobs.lock().ok()?.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{JobKind, JobRegistry, JobStatus, STOPPED_BY_SHUTDOWN};

    /// A stop cuts short the jobs that walk all of storage — those running and those started
    /// after it — counting them as failed, and waits for the others to end on their own.
    #[tokio::test]
    async fn a_stop_cuts_short_the_long_jobs_and_waits_for_the_others() {
        let registry = JobRegistry::new(None);
        let long = registry.create(JobKind::StartupReconcile, "system");
        let long_id = long.id().to_owned();
        registry.spawn(long, |_| std::future::pending());
        let short = registry.create(JobKind::IndexProject, "system");
        let short_id = short.id().to_owned();
        registry.spawn(short, |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        });
        // Before the stop, nothing ends the long job.
        assert!(!registry.wait_idle(Duration::from_millis(300)).await);
        assert_eq!(registry.get(&short_id).unwrap().status, JobStatus::Success);
        assert_eq!(registry.get(&long_id).unwrap().status, JobStatus::Started);
        assert!(!registry.any_failed());

        let waited = registry.create(JobKind::IndexVersion, "system");
        let waited_id = waited.id().to_owned();
        registry.spawn(waited, |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        });
        registry.stop_long_jobs();
        assert!(registry.wait_idle(Duration::from_secs(30)).await);
        let long = registry.get(&long_id).unwrap();
        assert_eq!(long.status, JobStatus::Failure);
        assert_eq!(long.error.as_deref(), Some(STOPPED_BY_SHUTDOWN));
        assert!(long.finished_at.is_some());
        assert_eq!(registry.get(&waited_id).unwrap().status, JobStatus::Success);
        assert!(registry.any_failed());

        let later = registry.create(JobKind::IndexBuild, "admin");
        let later_id = later.id().to_owned();
        registry.spawn(later, |_| std::future::pending());
        assert!(registry.wait_idle(Duration::from_secs(30)).await);
        assert_eq!(registry.get(&later_id).unwrap().status, JobStatus::Failure);
    }

    #[test]
    fn only_the_jobs_that_walk_all_of_storage_stop_at_shutdown() {
        let stopping: Vec<&str> = [
            JobKind::IndexProject,
            JobKind::IndexNamespace,
            JobKind::IndexVersion,
            JobKind::IndexBuild,
            JobKind::Sync,
            JobKind::Purge,
            JobKind::RevocationPurge,
            JobKind::StartupReconcile,
        ]
        .into_iter()
        .filter(|kind| kind.stops_at_shutdown())
        .map(JobKind::as_str)
        .collect();
        assert_eq!(stopping, ["index_build", "sync", "startup_reconcile"]);
    }
}
