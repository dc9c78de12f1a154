//! Scheduled jobs (tokio-cron-scheduler): the global sync check, repairing drift when
//! `auto_repair` is on and exporting the drift count as a metric; and the purge of uploads
//! not completed in time and of expired transient versions ([`run_purge`]); and the purge of
//! revoked-token records past their token's expiry ([`run_revocation_purge`]). Cron strings
//! come from the configuration (six fields, seconds first); an empty string disables the job.

use std::time::Instant;

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::AppState;
use crate::index::sync::{SyncReport, check_all};

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A cron string does not parse.
    #[error("invalid setting {setting}: {message}")]
    InvalidCron {
        /// The setting.
        setting: &'static str,
        /// Why.
        message: String,
    },
    /// The scheduler failed.
    #[error("scheduler error: {0}")]
    Scheduler(String),
}

/// Runs the global sync check once (the scheduled job's body), recording the result on the
/// app and in the `trove_sync_drift` metric.
pub async fn run_sync(app: &AppState, repair: bool) -> Result<SyncReport, String> {
    let started = Instant::now();
    let report = check_all(&app.indexer, &app.index, repair)
        .await
        .map_err(|error| error.to_string())?;
    app.metrics
        .sync_drift
        .set(i64::try_from(report.drift_count).unwrap_or(i64::MAX));
    tracing::info!(
        drift = report.drift_count,
        repaired = report.repaired,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "sync check finished"
    );
    if let Ok(mut last) = app.last_sync.lock() {
        *last = Some(report.clone());
    }
    Ok(report)
}

/// Re-indexes projects when a grant of theirs expires (the indexer notes the moments), so an
/// expired share leaves search within moments. Runs until the process ends.
pub fn spawn_expiry_reindexer(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let expiries = app.indexer.expiries().clone();
        loop {
            let wait = expiries
                .next()
                .map_or(std::time::Duration::from_secs(60), |at| {
                    (at - app.clock.now())
                        .to_std()
                        .unwrap_or_default()
                        .min(std::time::Duration::from_secs(60))
                });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = expiries.changed() => continue,
                // A test clock jumping past an expiry acts like the time passing.
                () = app.clock.advanced() => {}
            }
            let due: Vec<String> = expiries.take_due(app.clock.now()).into_iter().collect();
            if due.is_empty() {
                continue;
            }
            tracing::info!(projects = due.len(), "re-indexing after grant expiry");
            if let Err(error) = app.indexer.index_projects(Some(due), |_, _| {}).await {
                tracing::error!(%error, "re-index after grant expiry failed");
            }
        }
    })
}

/// Runs the purge once (the scheduled job's body): uploads not completed by their deadline
/// and expired transient versions are deleted and re-indexed.
pub async fn run_purge(app: &AppState) -> Result<crate::api::uploads::PurgeReport, String> {
    let report = crate::api::uploads::purge_expired(app, chrono::Utc::now()).await?;
    if !report.late_uploads.is_empty() || !report.expired_versions.is_empty() {
        tracing::info!(
            late_uploads = report.late_uploads.len(),
            expired_versions = report.expired_versions.len(),
            "purge finished"
        );
    }
    Ok(report)
}

/// Runs the purge of revoked-token records once (the scheduled job's body): records whose
/// token has expired anyway are deleted. Answers how many.
pub async fn run_revocation_purge(app: &AppState) -> Result<usize, String> {
    let purged = app
        .auth
        .purge_expired_revocations()
        .await
        .map_err(|error| error.to_string())?;
    if purged > 0 {
        tracing::info!(purged, "expired token revocations purged");
    }
    Ok(purged)
}

/// Starts the scheduled jobs of `app`; `None` when every cron string is empty.
pub async fn start(app: AppState) -> Result<Option<JobScheduler>, ScheduleError> {
    let sync_cron = app.settings.sync_cron.trim().to_owned();
    let purge_cron = app.settings.purge_cron.trim().to_owned();
    let revocation_cron = app.settings.revocation_purge_cron.trim().to_owned();
    if sync_cron.is_empty() && purge_cron.is_empty() && revocation_cron.is_empty() {
        return Ok(None);
    }
    let scheduler = JobScheduler::new()
        .await
        .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    if !sync_cron.is_empty() {
        let job_app = app.clone();
        let job = Job::new_async(sync_cron.as_str(), move |_, _| {
            let app = job_app.clone();
            Box::pin(async move {
                let repair = app.settings.auto_repair;
                let handle = app.jobs.create("sync", "system");
                let job_app = app.clone();
                app.jobs.spawn(handle, move |_| async move {
                    run_sync(&job_app, repair).await.map(|_| ())
                });
            })
        })
        .map_err(|error| ScheduleError::InvalidCron {
            setting: "TROVE_SYNC_CRON",
            message: format!("{sync_cron:?}: {error}"),
        })?;
        scheduler
            .add(job)
            .await
            .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    }
    if !purge_cron.is_empty() {
        let job_app = app.clone();
        let job = Job::new_async(purge_cron.as_str(), move |_, _| {
            let app = job_app.clone();
            Box::pin(async move {
                let handle = app.jobs.create("purge", "system");
                let job_app = app.clone();
                app.jobs.spawn(handle, move |_| async move {
                    run_purge(&job_app).await.map(|_| ())
                });
            })
        })
        .map_err(|error| ScheduleError::InvalidCron {
            setting: "TROVE_PURGE_CRON",
            message: format!("{purge_cron:?}: {error}"),
        })?;
        scheduler
            .add(job)
            .await
            .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    }
    if !revocation_cron.is_empty() {
        let job_app = app.clone();
        let job = Job::new_async(revocation_cron.as_str(), move |_, _| {
            let app = job_app.clone();
            Box::pin(async move {
                let handle = app.jobs.create("revocation_purge", "system");
                let job_app = app.clone();
                app.jobs.spawn(handle, move |_| async move {
                    run_revocation_purge(&job_app).await.map(|_| ())
                });
            })
        })
        .map_err(|error| ScheduleError::InvalidCron {
            setting: "TROVE_REVOCATION_PURGE_CRON",
            message: format!("{revocation_cron:?}: {error}"),
        })?;
        scheduler
            .add(job)
            .await
            .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    }
    scheduler
        .start()
        .await
        .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    Ok(Some(scheduler))
}
