//! Scheduled jobs (tokio-cron-scheduler): the global sync check, repairing drift when
//! `auto_repair` is on and exporting the drift count as a metric; and the purge of uploads
//! not completed in time and of expired transient versions ([`run_purge`]); and the purge of
//! revoked-token records past their token's expiry ([`run_revocation_purge`]). Cron strings
//! come from the configuration (six fields, seconds first); an empty string disables the job.
//!
//! With several replicas on one bucket, each scheduled task runs on one replica per period:
//! when the schedule fires, every replica tries to take the task's lease
//! (`..meta/leases/task-<name>.json`) for 80 % of the period, and only the one that took it
//! runs the task. A holder that crashed loses nothing: its lease lapses before the next
//! period. The sync check publishes what it repaired to the change feed, so every replica
//! re-indexes it; the purge also compacts the feed and deletes old job records.

use std::time::{Duration, Instant};

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::AppState;
use crate::feed::Change;
use crate::index::sync::{SyncReport, check_all};
use crate::jobs::JobKind;
use crate::storage::lease::Lease;

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
    if report.repaired && !report.drift.is_empty() {
        let mut projects: Vec<String> = report
            .drift
            .iter()
            .map(|drift| drift.project_id.clone())
            .collect();
        projects.sort();
        projects.dedup();
        // What drifted here drifted for every replica following the feed (a mutation whose
        // replica died before publishing it): they re-index it too.
        if let Err(error) = app.feed.publish(Change::Projects { projects }).await {
            tracing::warn!(%error, "sync repair not published to the change feed");
        }
    }
    Ok(report)
}

/// The time between two firings of a cron schedule (`None` when it does not parse or never
/// fires twice).
#[must_use]
pub fn cron_period(cron: &str) -> Option<Duration> {
    let schedule = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(cron)
        .ok()?;
    let first = schedule
        .find_next_occurrence(&chrono::Utc::now(), false)
        .ok()?;
    let second = schedule.find_next_occurrence(&first, false).ok()?;
    (second - first).to_std().ok()
}

/// Whether this replica runs the task `name` this period: it took the task's lease, which it
/// keeps for 80 % of the period (until it lapses; it is never released early, so a replica
/// whose schedule fires a little later in the same period finds it held).
pub async fn take_turn(app: &AppState, name: &str, period: Duration) -> bool {
    let ttl = period.mul_f64(0.8).max(Duration::from_millis(500));
    match Lease::try_acquire(
        &app.storage,
        &format!("task-{name}"),
        app.feed.replica(),
        ttl,
    )
    .await
    {
        Ok(Some(_lease)) => true,
        Ok(None) => {
            tracing::debug!(task = name, "another replica runs this task this period");
            false
        }
        Err(error) => {
            tracing::warn!(task = name, %error, "task lease not taken; skipping this period");
            false
        }
    }
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
/// and expired transient versions are deleted and re-indexed, what presigned URLs wrote
/// into the staging area of uploads already over is removed, and the `deleting` marks of
/// namespace deletions that died are taken back.
pub async fn run_purge(app: &AppState) -> Result<crate::catalog::uploads::PurgeReport, String> {
    let now = chrono::Utc::now();
    let report = crate::catalog::uploads::purge_expired(app, now).await?;
    let retention = chrono::Duration::seconds(
        i64::try_from(app.settings.feed_retention_secs).unwrap_or(i64::MAX),
    );
    match app.feed.compact(now - retention).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "change feed compacted"),
        Err(error) => tracing::warn!(%error, "change feed not compacted"),
    }
    if let Err(error) = crate::catalog::namespaces::release_stale_deletion_marks(app, now).await {
        tracing::warn!(%error, "stale namespace deletion marks not looked for");
    }
    match app
        .jobs
        .purge_records(now - chrono::Duration::days(1))
        .await
    {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "old job records deleted"),
        Err(error) => tracing::warn!(%error, "old job records not deleted"),
    }
    if !report.late_uploads.is_empty()
        || !report.expired_versions.is_empty()
        || report.staged_orphans > 0
    {
        tracing::info!(
            late_uploads = report.late_uploads.len(),
            expired_versions = report.expired_versions.len(),
            staged_orphans = report.staged_orphans,
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

/// A scheduled job: its kind, the setting its cron string comes from, and that string
/// (trimmed; empty disables the job).
struct Scheduled {
    kind: JobKind,
    setting: &'static str,
    cron: String,
}

/// The schedule table: every scheduled job kind with its cron setting.
fn schedule_table(app: &AppState) -> [Scheduled; 3] {
    let settings = &app.settings;
    [
        Scheduled {
            kind: JobKind::Sync,
            setting: "TROVE_SYNC_CRON",
            cron: settings.sync_cron.trim().to_owned(),
        },
        Scheduled {
            kind: JobKind::Purge,
            setting: "TROVE_PURGE_CRON",
            cron: settings.purge_cron.trim().to_owned(),
        },
        Scheduled {
            kind: JobKind::RevocationPurge,
            setting: "TROVE_REVOCATION_PURGE_CRON",
            cron: settings.revocation_purge_cron.trim().to_owned(),
        },
    ]
}

/// Runs the body of a scheduled job of `kind` once: one function per kind ([`run_sync`],
/// [`run_purge`], [`run_revocation_purge`]).
///
/// # Errors
/// The job's failure; a kind that is not scheduled.
pub async fn run_scheduled(app: &AppState, kind: JobKind) -> Result<(), String> {
    match kind {
        JobKind::Sync => run_sync(app, app.settings.auto_repair).await.map(drop),
        JobKind::Purge => run_purge(app).await.map(drop),
        JobKind::RevocationPurge => run_revocation_purge(app).await.map(drop),
        JobKind::IndexProject
        | JobKind::IndexNamespace
        | JobKind::IndexVersion
        | JobKind::IndexBuild
        | JobKind::StartupReconcile => Err(format!("{} is not a scheduled job", kind.as_str())),
    }
}

/// Starts the scheduled jobs of `app` (the `schedule_table`); `None` when every cron string
/// is empty. Each fires on its cron string, takes its turn under the lease named after its
/// kind, and runs [`run_scheduled`] as a job of the registry.
pub async fn start(app: AppState) -> Result<Option<JobScheduler>, ScheduleError> {
    let table: Vec<Scheduled> = schedule_table(&app)
        .into_iter()
        .filter(|scheduled| !scheduled.cron.is_empty())
        .collect();
    if table.is_empty() {
        return Ok(None);
    }
    let scheduler = JobScheduler::new()
        .await
        .map_err(|error| ScheduleError::Scheduler(error.to_string()))?;
    for scheduled in table {
        let period = cron_period(&scheduled.cron).unwrap_or(Duration::from_secs(60));
        let kind = scheduled.kind;
        let job_app = app.clone();
        let job = Job::new_async(scheduled.cron.as_str(), move |_, _| {
            let app = job_app.clone();
            Box::pin(async move {
                if !take_turn(&app, kind.as_str(), period).await {
                    return;
                }
                let handle = app.jobs.create(kind, "system");
                let job_app = app.clone();
                app.jobs.spawn(handle, move |_| async move {
                    run_scheduled(&job_app, kind).await
                });
            })
        })
        .map_err(|error| ScheduleError::InvalidCron {
            setting: scheduled.setting,
            message: format!("{:?}: {error}", scheduled.cron),
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
