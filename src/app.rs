//! `App`: the services every request handler shares, built once from the settings.
//!
//! Handlers reach them through [`AppState`] (an `Arc<App>`); nothing lives in globals.
//! Data directory layout: `objects/` (local storage), `tmp/` (temp files of local writes),
//! `index/` (the tantivy index), `audit-index/` (the audit query index), `secrets/`
//! (generated secrets, mode 0600), `feed-position` (the change feed's last entry applied),
//! `index-closed-cleanly` (written by a graceful shutdown that left the index holding
//! everything this process acknowledged; consumed when the next process starts).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rand::RngCore as _;

use crate::audit::Audit;
use crate::auth::AuthService;
use crate::auth::oidc::OidcVerifier;
use crate::clock::Clock;
use crate::config::Settings;
use crate::feed::Feed;
use crate::index::cursor::CursorCodec;
use crate::index::indexer::Indexer;
use crate::index::{IndexSchema, SearchIndex};
use crate::jobs::JobRegistry;
use crate::permissions::ProfileLoader;
use crate::storage::instrumented::InstrumentedStore;
use crate::storage::local::LocalStore;
use crate::storage::presign::LocalPresigner;
use crate::storage::s3::{S3Settings, S3Store};
use crate::storage::{ObjectStore, StorageKind};
use crate::telemetry::Metrics;

/// The shared services.
#[derive(Debug)]
pub struct App {
    /// The effective settings.
    pub settings: Settings,
    /// Object storage, instrumented (timeouts and metrics).
    pub storage: Arc<dyn ObjectStore>,
    /// Verifies presigned URLs of the local backend (`None` on S3, which presigns itself).
    pub presigner: Option<LocalPresigner>,
    /// The search index.
    pub index: Arc<SearchIndex>,
    /// Permission profiles from storage, cached briefly.
    pub profiles: Arc<ProfileLoader>,
    /// Reads storage into the index.
    pub indexer: Indexer,
    /// Sidecar records of files, validated by the ETag a version listing returns.
    pub file_records: crate::storage::etag_cache::EtagCache<crate::model::records::FileRecord>,
    /// Versions' file listings as rendered, kept with the storage listing they came from.
    pub listed_files: crate::catalog::file_listing::ListedFilesCache,
    /// Background jobs (kept in storage, so every replica answers `GET /jobs/{id}`).
    pub jobs: JobRegistry,
    /// The change feed every replica's index follows.
    pub feed: Arc<Feed>,
    /// Signs scroll cursors (key: [`cursor_key`]).
    pub cursors: CursorCodec,
    /// The result of the last global sync check.
    pub last_sync: std::sync::Mutex<Option<crate::index::sync::SyncReport>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Accounts, tokens, groups and API keys.
    pub auth: Arc<AuthService>,
    /// The audit log.
    pub audit: Arc<Audit>,
    /// The time grant expiry is decided against ([`Clock::system`] outside tests).
    pub clock: Clock,
    /// When this process started.
    pub started_at: DateTime<Utc>,
    /// `false` while the start-up reconciliation runs: until the index equals storage again,
    /// reads that answer from the index wait (a profile narrowed just before a crash must not
    /// be served from the stale index). `true` when no reconciliation was started.
    pub reconciled: tokio::sync::watch::Sender<bool>,
    /// How and when the start-up reconciliation let reads through (`/status`).
    pub reads_opened: std::sync::OnceLock<ReadsOpened>,
    /// Whether the previous process on this data directory shut down cleanly (see
    /// [`App::close`]): read and removed when this one started.
    pub closed_cleanly_before: bool,
    /// Mutating requests, run to completion even when their client goes away (see
    /// `api::run_to_completion`): a graceful shutdown waits for them.
    pub mutations: tokio_util::task::TaskTracker,
}

/// How the start-up reconciliation let reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReadsOpened {
    /// What had to happen first.
    pub after: ReadsOpenedAfter,
    /// Milliseconds from the start of the reconciliation.
    pub after_ms: u64,
}

/// What the start-up reconciliation did before it let reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadsOpenedAfter {
    /// Replaying the change feed since a clean shutdown; the sync check of all of storage
    /// runs after, reads meanwhile served.
    FeedReplay,
    /// The sync check of all of storage (no clean shutdown recorded, the feed no longer
    /// reaching this replica's position, or following off).
    SyncCheck,
    /// Rebuilding the index (missing or of an older schema), then the sync check.
    Rebuild,
}

/// Written by [`App::close`] when the index held everything this process acknowledged.
const CLEAN_CLOSE_MARKER: &str = "index-closed-cleanly";

/// How long [`App::close`] waits for mutating requests, then for jobs, to end.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// Sidecar records kept in memory (a few hundred bytes each): a hundred 1,000-file versions.
const FILE_RECORD_CACHE_ENTRIES: usize = 100_000;

/// What handlers extract: a cheap clone of the shared [`App`].
pub type AppState = Arc<App>;

impl App {
    /// Builds every service from the settings: storage backend, index, metrics.
    pub async fn build(settings: Settings) -> anyhow::Result<AppState> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`App::build`] with grant expiry decided against `clock` (tests move a
    /// [`Clock::manual`] past expiries).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<AppState> {
        let data_dir = settings.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let metrics = Arc::new(Metrics::new());

        let (storage, presigner) = build_storage(&settings, metrics.clone()).await?;

        let schema = IndexSchema::builtin().context("invalid built-in index schema")?;
        let index_dir = data_dir.join("index");
        let index = tokio::task::spawn_blocking(move || SearchIndex::open(&index_dir, schema))
            .await
            .context("index opening panicked")?
            .context("cannot open the search index")?;

        let index = Arc::new(index);
        let profiles = Arc::new(ProfileLoader::new(storage.clone()));
        let indexer = Indexer::new(storage.clone(), profiles.clone(), index.clone())
            .with_max_document_bytes(settings.max_json_bytes as u64)
            .with_clock(clock.clone());
        let cursors = CursorCodec::new(cursor_key(&settings)?);
        let auth = Arc::new(build_auth(&settings, storage.clone()).await?);
        let audit = Audit::open(
            storage.clone(),
            &data_dir.join("audit-index"),
            &metrics,
            audit_checkpoint_key(&settings, true)?,
        )
        .await
        .context("cannot open the audit log")?;
        auth.set_audit_hook(audit.clone());
        let replica = uuid::Uuid::now_v7().to_string();
        let feed = Arc::new(Feed::new(storage.clone(), replica));
        auth.set_feed(feed.clone());
        let jobs = JobRegistry::new(Some(storage.clone()));
        // Read and removed before this process writes anything: should it crash, the next
        // start must not take its index for complete.
        let closed_cleanly_before = take_clean_close_marker(&data_dir).with_context(|| {
            format!(
                "cannot remove {CLEAN_CLOSE_MARKER} in {}",
                data_dir.display()
            )
        })?;

        Ok(Arc::new(Self {
            settings,
            storage,
            presigner,
            index,
            profiles,
            indexer,
            file_records: crate::storage::etag_cache::EtagCache::new(FILE_RECORD_CACHE_ENTRIES),
            listed_files: crate::catalog::file_listing::ListedFilesCache::default(),
            jobs,
            feed,
            cursors,
            last_sync: std::sync::Mutex::new(None),
            metrics,
            auth,
            audit,
            clock,
            started_at: Utc::now(),
            reconciled: tokio::sync::watch::Sender::new(true),
            reads_opened: std::sync::OnceLock::new(),
            closed_cleanly_before,
            mutations: tokio_util::task::TaskTracker::new(),
        }))
    }

    /// The graceful end of a process whose HTTP server has drained and whose background loops
    /// (follower, scheduler, expiry re-indexer) were stopped and awaited: waits for mutating
    /// requests and jobs to end, stores buffered audit events, closes the index, and — when
    /// nothing was left unfinished and no re-index of this process failed or was dropped
    /// without a later success covering it — records that the index holds everything this
    /// process acknowledged, so the next start may open reads after replaying the change feed
    /// instead of the sync check of all of storage. Answers why it did not record that.
    pub async fn close(&self) -> Result<(), &'static str> {
        // A rebuild, sync check or start-up reconciliation could outlast any grace period:
        // cut short, it leaves the index for the next start to check, like a crash would.
        self.jobs.stop_long_jobs();
        self.mutations.close();
        let mutations_ended = tokio::time::timeout(CLOSE_WAIT, self.mutations.wait())
            .await
            .is_ok();
        let jobs_ended = self.jobs.wait_idle(CLOSE_WAIT).await;
        if let Err(error) = self.audit.close().await {
            tracing::error!(%error, "audit events could not all be stored at shutdown");
        }
        let index = self.index.clone();
        let closed = tokio::task::spawn_blocking(move || index.close())
            .await
            .is_ok();
        let incomplete = [
            (!mutations_ended, "mutating requests still running"),
            (!jobs_ended, "jobs still running"),
            (!closed, "the index did not close"),
            (self.jobs.any_failed(), "a job failed or was stopped"),
            (
                self.indexer.may_lack_changes(),
                "a re-index failed or was dropped",
            ),
        ]
        .into_iter()
        .find_map(|(failed, why)| failed.then_some(why));
        if let Some(why) = incomplete {
            tracing::warn!(
                why,
                "the index may lack changes: the next start checks all of storage before reads"
            );
            return Err(why);
        }
        write_clean_close_marker(&self.settings.data_dir).map_err(|error| {
            tracing::warn!(%error, "clean shutdown not recorded");
            "the record was not written"
        })
    }

    /// Checks storage within the storage timeout, updating the `storage_up` metric.
    pub async fn check_storage(&self) -> crate::storage::Result<()> {
        let result = self.storage.check().await;
        self.metrics.storage_up.set(i64::from(result.is_ok()));
        result
    }

    /// Start-up reconciliation: rebuild a missing or outdated index from storage, then let
    /// the sync check repair the rest. Runs as a job in the background. Reads that touch the
    /// index wait until it has *succeeded*: a failed attempt (storage unreachable, an index
    /// error) is logged and retried after a growing pause while reads keep waiting (`503
    /// index_unavailable` after the storage timeout), because until it succeeds the index
    /// may still admit callers that a stored profile no longer does.
    pub fn reconcile_in_background(self: &Arc<Self>) -> String {
        let job = self
            .jobs
            .create(crate::jobs::JobKind::StartupReconcile, "system");
        let id = job.id().to_owned();
        let app = self.clone();
        self.reconciled.send_replace(false);
        self.jobs.spawn(job, move |job| async move {
            let mut pause = RECONCILE_RETRY_FIRST;
            while let Err(error) = app.reconcile_once(&job).await {
                tracing::warn!(
                    %error,
                    retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                    "start-up reconciliation failed; reads wait for it, retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RECONCILE_RETRY_MAX);
            }
            app.reconciled.send_replace(true);
            Ok(())
        });
        id
    }

    /// One attempt of the start-up reconciliation.
    async fn reconcile_once(self: &Arc<Self>, job: &crate::jobs::JobHandle) -> Result<(), String> {
        let started = std::time::Instant::now();
        let opened = |after| {
            let after_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let _ = self.reads_opened.set(ReadsOpened { after, after_ms });
            self.reconciled.send_replace(true);
            tracing::info!(?after, after_ms, "reads open");
        };
        let rebuild = self.index.needs_rebuild();
        // After a clean shutdown the index held everything this replica acknowledged; what
        // others changed since is in the feed. Replay that, open reads, then check all of
        // storage as usual (for changes made behind the API's back).
        if !rebuild
            && self.closed_cleanly_before
            && let Some(work) = crate::jobs::follow::catch_up_work(self)
                .await
                .map_err(|error| error.to_string())?
        {
            crate::jobs::follow::apply(self, work).await?;
            opened(ReadsOpenedAfter::FeedReplay);
        }
        if rebuild {
            let report = self
                .indexer
                .index_projects(None, |done, total| {
                    job.progress(done as u64, total as u64);
                    if done > 0 {
                        crate::crash::point("startup.rebuild.progress");
                    }
                })
                .await
                .map_err(|error| error.to_string())?;
            tracing::info!(
                projects = report.projects,
                documents = report.documents,
                "index rebuilt from storage"
            );
        }
        let report = crate::jobs::schedule::run_sync(self, true).await?;
        if report.drift_count > 0 {
            tracing::warn!(
                drift = report.drift_count,
                "start-up sync check repaired drift"
            );
        }
        opened(if rebuild {
            ReadsOpenedAfter::Rebuild
        } else {
            ReadsOpenedAfter::SyncCheck
        });
        Ok(())
    }

    /// How long the process has been up.
    #[must_use]
    pub fn uptime(&self) -> Duration {
        (Utc::now() - self.started_at).to_std().unwrap_or_default()
    }
}

/// Removes the clean-close marker of `data_dir`; answers whether it was there. The removal
/// is made durable (the directory synced) before anything else is written.
fn take_clean_close_marker(data_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(data_dir.join(CLEAN_CLOSE_MARKER)) {
        Ok(()) => {
            crate::storage::local::sync_dir(data_dir)?;
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes the clean-close marker of `data_dir` durably.
fn write_clean_close_marker(data_dir: &Path) -> std::io::Result<()> {
    let path = data_dir.join(CLEAN_CLOSE_MARKER);
    let mut file = std::fs::File::create(&path)?;
    std::io::Write::write_all(&mut file, Utc::now().to_rfc3339().as_bytes())?;
    file.sync_all()?;
    crate::storage::local::sync_dir(data_dir)
}

/// The first pause before the start-up reconciliation is tried again after a failure; it
/// doubles up to [`RECONCILE_RETRY_MAX`].
const RECONCILE_RETRY_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between two attempts of the start-up reconciliation.
const RECONCILE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Builds the configured storage backend, instrumented (timeouts and metrics), and the local
/// presigner (`None` on S3). Used by `App::build` and by the CLI commands that work on storage
/// directly (`trove user ...`).
pub async fn build_storage(
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(Arc<dyn ObjectStore>, Option<LocalPresigner>)> {
    let data_dir = &settings.data_dir;
    let (backend, presigner): (Arc<dyn ObjectStore>, Option<LocalPresigner>) =
        match settings.storage {
            StorageKind::Local => {
                let secret = match &settings.presign_secret {
                    Some(secret) => secret.expose().as_bytes().to_vec(),
                    None => load_or_create_secret(&data_dir.join("secrets/presign.key"))?,
                };
                let base_url = url::Url::parse(&settings.public_url())
                    .context("invalid setting TROVE_PUBLIC_URL")?;
                let presigner = LocalPresigner::new(base_url, secret);
                let store = LocalStore::open(
                    data_dir.join("objects"),
                    data_dir.join("tmp"),
                    presigner.clone(),
                )
                .context("cannot open local storage")?;
                (Arc::new(store), Some(presigner))
            }
            StorageKind::S3 => {
                let s3 = &settings.s3;
                let store = S3Store::connect(S3Settings {
                    bucket: s3.bucket.clone().unwrap_or_default(),
                    endpoint: s3.endpoint.clone(),
                    public_endpoint: s3.public_endpoint.clone(),
                    region: s3.region.clone(),
                    prefix: s3.prefix.clone(),
                    path_style: s3.path_style,
                    timeout: settings.storage_timeout(),
                    credentials: s3.access_key_id.clone().zip(
                        s3.secret_access_key
                            .as_ref()
                            .map(|secret| secret.expose().to_owned()),
                    ),
                })
                .await
                .context("cannot configure the S3 storage backend")?;
                (Arc::new(store), None)
            }
        };
    let storage: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::new(
        backend,
        metrics.clone(),
        settings.storage_timeout(),
    ));
    Ok((storage, presigner))
}

/// Builds the authentication service: the token secret (configured, or generated and kept in
/// `secrets/jwt.key`), the external identity provider, and `TROVE_BOOTSTRAP_ADMIN`.
pub async fn build_auth(
    settings: &Settings,
    storage: Arc<dyn ObjectStore>,
) -> anyhow::Result<AuthService> {
    let secret = match &settings.auth.jwt_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => load_or_create_secret(&settings.data_dir.join("secrets/jwt.key"))?,
    };
    let oidc = OidcVerifier::load(&settings.oidc)
        .await
        .context("cannot set up the external identity provider (TROVE_OIDC_*)")?;
    let auth = AuthService::new(settings, storage, &secret, oidc)
        .context("invalid setting TROVE_OIDC_GROUP_PATTERN")?;
    if let Some(bootstrap) = &settings.auth.bootstrap_admin {
        let (username, password) = bootstrap
            .expose()
            .split_once(':')
            .context("invalid setting TROVE_BOOTSTRAP_ADMIN: expected <name>:<password>")?;
        match auth.ensure_bootstrap_admin(username, password).await {
            Ok(true) => tracing::info!(%username, "bootstrap admin created"),
            Ok(false) => tracing::debug!("an admin exists, TROVE_BOOTSTRAP_ADMIN ignored"),
            Err(error) => {
                return Err(anyhow::anyhow!("TROVE_BOOTSTRAP_ADMIN: {error}"));
            }
        }
    }
    Ok(auth)
}

/// The key signing audit checkpoints: `TROVE_AUDIT_CHECKPOINT_SECRET[_FILE]`, else
/// `secrets/audit-checkpoint.key` of the data directory — generated when `create` (the
/// server), only read otherwise (`trove audit verify` must not invent a key).
pub fn audit_checkpoint_key(
    settings: &Settings,
    create: bool,
) -> anyhow::Result<crate::audit::checkpoint::CheckpointKey> {
    let bytes = match &settings.audit_checkpoint_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => {
            let path = settings.data_dir.join("secrets/audit-checkpoint.key");
            if create {
                load_or_create_secret(&path)?
            } else {
                std::fs::read(&path).with_context(|| {
                    format!(
                        "cannot read the audit checkpoint key {} (set TROVE_AUDIT_CHECKPOINT_SECRET[_FILE] to the servers' key)",
                        path.display()
                    )
                })?
            }
        }
    };
    Ok(crate::audit::checkpoint::CheckpointKey::new(bytes))
}

/// The key signing scroll cursors: `TROVE_CURSOR_SECRET[_FILE]` (shared by replicas, so a
/// cursor made by one is served by any other), else `secrets/cursor.key` of the data
/// directory, generated at first start (one process).
pub fn cursor_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    match &settings.cursor_secret {
        Some(secret) => Ok(secret.expose().as_bytes().to_vec()),
        None => load_or_create_secret(&settings.data_dir.join("secrets/cursor.key")),
    }
}

/// Label of the web interface's CSRF key when it is derived from the token key.
const UI_CSRF_KEY_LABEL: &[u8] = b"trove/ui-csrf-key/v1";

/// The key of the web interface's CSRF tokens: `TROVE_UI_SECRET[_FILE]`; else, when
/// `TROVE_JWT_SECRET` is configured, HMAC-SHA256 of a fixed label under it (domain
/// separation: replicas that share the token key, as they must for sessions to work on all of
/// them, share this key without a further setting, and the token key itself is never used for
/// anything but tokens); else `secrets/ui-csrf.key` of the data directory, generated at first
/// start (one process).
pub fn ui_csrf_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    use hmac::Mac as _;
    if let Some(secret) = &settings.ui_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    if let Some(jwt_secret) = &settings.auth.jwt_secret {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(jwt_secret.expose().as_bytes())
            .context("hmac takes any key length")?;
        mac.update(UI_CSRF_KEY_LABEL);
        return Ok(mac.finalize().into_bytes().to_vec());
    }
    load_or_create_secret(&settings.data_dir.join("secrets/ui-csrf.key"))
}

/// Reads a secret kept in the data directory, or generates 32 random bytes, stores them with
/// mode 0600 (exclusive create, so concurrent first starts agree) and returns them.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(existing) = std::fs::read(path) {
        anyhow::ensure!(
            existing.len() >= 32,
            "secret file {} is shorter than 32 bytes",
            path.display()
        );
        return Ok(existing);
    }
    let parent: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let mut secret = vec![0_u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let encoded = hex::encode(&secret).into_bytes();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            use std::io::Write as _;
            file.write_all(&encoded)
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(encoded)
        }
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn settings_with(jwt: Option<&str>, ui: Option<&str>, cursor: Option<&str>) -> Settings {
        let mut settings = Settings::default();
        settings.auth.jwt_secret = jwt.map(Secret::new);
        settings.ui_secret = ui.map(Secret::new);
        settings.cursor_secret = cursor.map(Secret::new);
        settings
    }

    #[test]
    fn the_ui_csrf_key_is_configured_or_derived_from_the_token_key() {
        let jwt = "jwt-secret-0123456789-abcdefghijkl";
        let derived = ui_csrf_key(&settings_with(Some(jwt), None, None)).unwrap();
        assert_eq!(derived.len(), 32);
        assert_ne!(derived, jwt.as_bytes(), "never the token key itself");
        assert_eq!(
            derived,
            ui_csrf_key(&settings_with(Some(jwt), None, None)).unwrap(),
            "replicas sharing the token key derive the same key"
        );
        assert_ne!(
            derived,
            ui_csrf_key(&settings_with(
                Some("another-jwt-secret-0123456789-abc"),
                None,
                None
            ))
            .unwrap()
        );
        let ui = "ui-secret-0123456789-abcdefghijklm";
        assert_eq!(
            ui_csrf_key(&settings_with(Some(jwt), Some(ui), None)).unwrap(),
            ui.as_bytes(),
            "TROVE_UI_SECRET wins"
        );
    }

    #[test]
    fn the_cursor_key_is_the_configured_secret() {
        let cursor = "cursor-secret-0123456789-abcdefgh";
        assert_eq!(
            cursor_key(&settings_with(None, None, Some(cursor))).unwrap(),
            cursor.as_bytes()
        );
    }
}
