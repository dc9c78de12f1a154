//! Background jobs: the registry that `GET /jobs/{id}` reads, and the bodies of the jobs
//! (indexing, sync). Each job's body is separate from what starts it — a route, the start-up
//! reconciliation, or the scheduler ([`schedule`]).
//!
//! The registry lives in the process: a job is answered by the replica that runs it (clients
//! follow the `job_url` they were given). Finished jobs are kept for an hour.

pub mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use uuid::Uuid;

/// How long finished jobs stay queryable.
const KEEP_FINISHED: Duration = Duration::hours(1);

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    /// Units done.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
}

/// What `GET /jobs/{id}` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

/// The registry of jobs of this process.
#[derive(Debug, Clone, Default)]
pub struct JobRegistry {
    jobs: Arc<Mutex<HashMap<String, JobInfo>>>,
}

/// A handle a running job reports through.
#[derive(Debug, Clone)]
pub struct JobHandle {
    id: String,
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
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut JobInfo)) {
        if let Ok(mut jobs) = self.jobs.lock()
            && let Some(job) = jobs.get_mut(id)
        {
            change(job);
        }
    }

    /// Registers a pending job.
    pub fn create(&self, kind: &str, creator: &str) -> JobHandle {
        let id = Uuid::now_v7().to_string();
        let now = Utc::now();
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.retain(|_, job| job.finished_at.is_none_or(|at| now - at < KEEP_FINISHED));
            jobs.insert(
                id.clone(),
                JobInfo {
                    job_id: id.clone(),
                    status: JobStatus::Pending,
                    kind: kind.to_owned(),
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
            registry: self.clone(),
        }
    }

    /// Runs `body` as the job in the background, recording its outcome.
    pub fn spawn<F, Fut>(&self, handle: JobHandle, body: F)
    where
        F: FnOnce(JobHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let registry = self.clone();
        tokio::spawn(async move {
            registry.update(&handle.id, |job| job.status = JobStatus::Started);
            let id = handle.id.clone();
            let kind = registry.get(&id).map(|job| job.kind).unwrap_or_default();
            let outcome = body(handle).await;
            if let Err(error) = &outcome {
                tracing::error!(job_id = %id, %kind, %error, "job failed");
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
        });
    }

    /// A job by id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<JobInfo> {
        self.jobs.lock().ok()?.get(id).cloned()
    }
}
