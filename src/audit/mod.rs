//! The audit log (SPEC §9): every mutation, login, denial and download becomes an
//! [`AuditEvent`] `{id, ts, actor, actor_kind, ip, action, resource, outcome, status, details}`
//! stored durably under `..meta/audit/` ([`sink`]), chained per writer for tamper evidence
//! ([`verify`], `trove audit verify`), and queryable through a small index ([`index`]).
//!
//! # The API routes call
//!
//! **Mutations** are two-phase, so that a mutation is never acknowledged — nor even started —
//! without its event in storage: [`Audit::begin`] stores the event with outcome `pending`
//! before the mutation (if storage fails, the route answers `503` and does nothing), and
//! [`Audit::finish`] stores the completion (ok / denied / error and the status). A process
//! that dies in between leaves the event `pending` (`completed: false` in queries). The usual
//! form is one call per action with [`Audit::mutation`]:
//!
//! ```ignore
//! use trove::audit::AuditEvent;
//!
//! let record = state
//!     .audit
//!     .mutation(
//!         AuditEvent::new("project.create")
//!             .by(&principal)
//!             .resource(format!("project:{project_id}"))
//!             .project(&project_id)
//!             .detail("type", "MODEL"),
//!         201, // the status answered on success
//!         async { create_project(&state, &principal, &body).await },
//!     )
//!     .await?;
//! ```
//!
//! **Reads and denials** (downloads, `access.denied`, logins) use [`Audit::record`]: it does
//! not wait for storage; events are buffered, flushed every second, before every audit query
//! and at graceful shutdown ([`Audit::close`]).
//!
//! ```ignore
//! state.audit.record(
//!     AuditEvent::new("file.download")
//!         .by(&principal)
//!         .resource(format!("file:{id}"))
//!         .project(&project)
//!         .outcome(Outcome::Ok, 200),
//! );
//! ```
//!
//! Denials of the permission engine are recorded by `api::access` (one call site), and admin
//! refusals by the `RequireAdmin` extractor; routes don't record them again. Secrets never go
//! into events: details keys that look secret (`password`, `token`, `secret`, ...) are
//! redacted before storing. The client address comes from the request context the API sets
//! ([`scope`]). Set [`AuditEvent::project`] on every event about a project (or something in
//! it): that is what puts it on the project's timeline (`GET /projects/{p}/audit`).

pub mod checkpoint;
pub mod event;
pub mod follow;
pub mod index;
pub mod sink;
pub mod verify;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;

pub use event::{ActorKind, AuditEvent, Outcome};
pub use index::{AuditPage, AuditQuery, Cursor};

use crate::auth::audit::{AuditHook, AuthEvent, AuthEventKind, TracingAuditHook};
use crate::error::Coded;
use crate::storage::{ObjectStore, StorageError};
use crate::telemetry::Metrics;

/// How often buffered events are stored.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A buffer this long is flushed at once.
const FLUSH_THRESHOLD: usize = 256;
/// Beyond this, buffered events are dropped (storage down for long): memory stays bounded.
const BUFFER_LIMIT: usize = 100_000;

/// Audit failures.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Storage refused or could not be reached.
    #[error("cannot store the audit event: {0}")]
    Storage(#[from] StorageError),
    /// The query index failed.
    #[error(transparent)]
    Index(#[from] index::IndexError),
}

/// Result alias of the audit module.
pub type Result<T> = std::result::Result<T, AuditError>;

/// The completion of a mutation from its result: `Ok` → `ok` with `ok_status`; an error → its
/// status, `denied` for `401`/`403`, else `error`, with its code in the details.
fn summarise<T, E: Coded>(
    result: &std::result::Result<T, E>,
    ok_status: u16,
) -> (Outcome, u16, Value) {
    match result {
        Ok(_) => (Outcome::Ok, ok_status, Value::Null),
        Err(error) => {
            let status = error.status().as_u16();
            let details = serde_json::json!({"code": error.error_code().as_str()});
            (Outcome::from_status(status), status, details)
        }
    }
}

/// What the API knows about the request an event is recorded in.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The client address (TCP peer).
    pub ip: Option<String>,
}

tokio::task_local! {
    // Request-scoped (not global) state: the API sets it per request with `scope`.
    static CONTEXT: RequestContext;
}

/// Runs `future` (a request) with `context`: events recorded inside take their `ip` from it.
pub async fn scope<F: Future>(context: RequestContext, future: F) -> F::Output {
    CONTEXT.scope(context, future).await
}

/// Labels of the audit events counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuditLabels {
    /// Action.
    pub action: String,
    /// Final outcome.
    pub outcome: String,
}

/// A mutation's event, stored as `pending`; give it to [`Audit::finish`].
#[derive(Debug)]
#[must_use = "a pending audit event must be finished, or it stays pending"]
pub struct Pending {
    event: AuditEvent,
}

impl Pending {
    /// The stored pending event.
    #[must_use]
    pub fn event(&self) -> &AuditEvent {
        &self.event
    }
}

/// The audit service (`app.audit`).
#[derive(Debug)]
pub struct Audit {
    sink: sink::AuditSink,
    index: Arc<index::AuditIndex>,
    buffer: std::sync::Mutex<Vec<AuditEvent>>,
    flushing: tokio::sync::Mutex<()>,
    wake: Arc<tokio::sync::Notify>,
    events_total: Family<AuditLabels, Counter>,
    /// Where the events are stored (read by [`Audit::follow_others`]).
    storage: Arc<dyn ObjectStore>,
    /// The follower of other replicas' events.
    follow: tokio::sync::Mutex<follow::FollowState>,
}

impl Audit {
    /// Opens the service: the sink on `storage`, the query index in `index_dir` (rebuilt from
    /// storage when missing or not closed cleanly), the counter in `metrics`; starts the
    /// flush timer.
    pub async fn open(
        storage: Arc<dyn ObjectStore>,
        index_dir: &Path,
        metrics: &Metrics,
        checkpoint_key: checkpoint::CheckpointKey,
    ) -> anyhow::Result<Arc<Self>> {
        let directory = index_dir.to_path_buf();
        let (index, rebuild) =
            tokio::task::spawn_blocking(move || index::AuditIndex::open(&directory)).await??;
        let index = Arc::new(index);
        if rebuild && let Err(error) = rebuild_index(storage.as_ref(), &index).await {
            // Storage may be down at start-up: serve anyway and retry in the background.
            tracing::warn!(%error, "audit index rebuild failed; retrying in the background");
            index.set_complete(false);
            let storage = storage.clone();
            let weak = Arc::downgrade(&index);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let Some(index) = weak.upgrade() else {
                        return;
                    };
                    match rebuild_index(storage.as_ref(), &index).await {
                        Ok(()) => {
                            index.set_complete(true);
                            return;
                        }
                        Err(error) => tracing::warn!(%error, "audit index rebuild failed"),
                    }
                }
            });
        }
        let events_total = Family::<AuditLabels, Counter>::default();
        metrics.register(
            "audit_events",
            "Audit events by action and outcome",
            events_total.clone(),
        );
        let audit = Arc::new(Self {
            sink: sink::AuditSink::new(storage.clone(), checkpoint_key),
            storage,
            follow: tokio::sync::Mutex::new(follow::FollowState::default()),
            index,
            buffer: std::sync::Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
            wake: Arc::new(tokio::sync::Notify::new()),
            events_total,
        });
        spawn_flusher(Arc::downgrade(&audit), audit.wake.clone());
        Ok(audit)
    }

    /// This process's writer id (its chain in storage).
    #[must_use]
    pub fn writer(&self) -> &str {
        self.sink.writer()
    }

    fn prepare(event: &mut AuditEvent) {
        if event.ip.is_none() {
            event.ip = CONTEXT
                .try_with(|context| context.ip.clone())
                .ok()
                .flatten();
        }
        event::redact(&mut event.details);
    }

    fn count(&self, action: &str, outcome: Outcome) {
        self.events_total
            .get_or_create(&AuditLabels {
                action: action.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Records a read or a denial: buffered, stored within a second (or at the next query or
    /// shutdown). Never blocks on storage.
    pub fn record(&self, mut event: AuditEvent) {
        Self::prepare(&mut event);
        self.count(&event.action, event.outcome);
        let length = {
            let mut buffer = match self.buffer.lock() {
                Ok(buffer) => buffer,
                Err(poisoned) => poisoned.into_inner(),
            };
            if buffer.len() >= BUFFER_LIMIT {
                tracing::error!(action = %event.action, "audit buffer full, event dropped");
                return;
            }
            buffer.push(event);
            buffer.len()
        };
        if length >= FLUSH_THRESHOLD {
            self.wake.notify_one();
        }
    }

    /// Stores a mutation's event as `pending` before the mutation runs. When this fails the
    /// mutation must not happen: answer the error (`503 storage_unavailable`).
    pub async fn begin(&self, mut event: AuditEvent) -> Result<Pending> {
        Self::prepare(&mut event);
        event.outcome = Outcome::Pending;
        event.status = None;
        let (mut stored, failed) = self.sink.append(vec![event]).await;
        if let Some((error, _)) = failed {
            tracing::error!(%error, "audit event could not be stored; refusing the mutation");
            return Err(error.into());
        }
        let event = stored.pop().ok_or_else(|| {
            AuditError::Storage(StorageError::Backend("audit event lost".to_owned()))
        })?;
        if let Err(error) = self.index.upsert(&[event::view(&event, None)]) {
            tracing::warn!(%error, "audit index update failed");
        }
        Ok(Pending { event })
    }

    /// Stores the completion of a mutation begun with [`Self::begin`]. A failure is logged,
    /// not answered: the mutation happened, and its event stays visibly `pending`.
    pub async fn finish(
        &self,
        pending: Pending,
        outcome: Outcome,
        status: u16,
        mut details: Value,
    ) {
        let original = pending.event;
        if !details.is_object() {
            details = Value::Object(serde_json::Map::new());
        }
        let mut completion = AuditEvent::new(original.action.clone())
            .actor(original.actor.clone(), original.actor_kind)
            .resource(original.resource.clone())
            .outcome(outcome, status);
        completion.project.clone_from(&original.project);
        completion.ip.clone_from(&original.ip);
        completion.details = details;
        completion.completes = Some(original.id.clone());
        event::redact(&mut completion.details);
        self.count(&original.action, outcome);
        let (stored, failed) = self.sink.append(vec![completion]).await;
        if let Some((error, _)) = failed {
            tracing::error!(%error, action = %original.action, id = %original.id, "audit completion could not be stored; the event stays pending");
            return;
        }
        if let Some(completion) = stored.first()
            && let Err(error) = self
                .index
                .upsert(&[event::view(&original, Some(completion))])
        {
            tracing::warn!(%error, "audit index update failed");
        }
    }

    /// [`Self::finish`] from a route's result: `Ok` → `ok` with `ok_status`; an error → its
    /// status, `denied` for `401`/`403`, else `error`, with its code in the details.
    pub async fn finish_result<T, E: Coded>(
        &self,
        pending: Pending,
        result: &std::result::Result<T, E>,
        ok_status: u16,
    ) {
        let (outcome, status, details) = summarise(result, ok_status);
        self.finish(pending, outcome, status, details).await;
    }

    /// One audited mutation: [`Self::begin`], then `work`, then [`Self::finish_result`]. The
    /// work never runs when the event can't be stored. The outcome is recorded from the
    /// error's [`Coded`] code, whatever the error type (catalog or API).
    pub async fn mutation<T, E: Coded + From<AuditError>>(
        &self,
        event: AuditEvent,
        ok_status: u16,
        work: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        let pending = self.begin(event).await?;
        crate::crash::point("audit.begun");
        let result = work.await;
        // Summarised before the next await, so the future does not hold `&T` across it
        // (axum's `Response` is `Send` but not `Sync`).
        let (outcome, status, details) = summarise(&result, ok_status);
        self.finish(pending, outcome, status, details).await;
        result
    }

    /// Stores every buffered event (in order), then a checkpoint of the chain when it moved
    /// (also for mutations stored meanwhile). On a storage failure the unstored events go back
    /// to the front of the buffer and the error is answered.
    pub async fn flush(&self) -> Result<()> {
        let _flushing = self.flushing.lock().await;
        let events = {
            let mut buffer = match self.buffer.lock() {
                Ok(buffer) => buffer,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::take(&mut *buffer)
        };
        if events.is_empty() {
            // Mutations store their events directly: anchor them too.
            return Ok(self.sink.checkpoint().await?);
        }
        let (stored, failed) = self.sink.append(events).await;
        let views: Vec<Value> = stored
            .iter()
            .map(|event| event::view(event, None))
            .collect();
        if let Err(error) = self.index.upsert(&views) {
            tracing::warn!(%error, "audit index update failed");
        }
        if let Some((error, rest)) = failed {
            let mut buffer = match self.buffer.lock() {
                Ok(buffer) => buffer,
                Err(poisoned) => poisoned.into_inner(),
            };
            let newer = std::mem::replace(&mut *buffer, rest);
            buffer.extend(newer);
            return Err(error.into());
        }
        Ok(self.sink.checkpoint().await?)
    }

    /// Flushes and commits the index, then answers one page of `query`.
    pub async fn query(&self, query: AuditQuery) -> Result<AuditPage> {
        if let Err(error) = self.flush().await {
            // Answer what is stored; the buffered events follow when storage is back.
            tracing::warn!(%error, "audit flush before a query failed");
        }
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || {
            index.commit()?;
            index.search(&query)
        })
        .await
        .map_err(|error| AuditError::Index(index::IndexError::from(std::io::Error::other(error))))?
        .map_err(AuditError::from)
    }

    /// Graceful shutdown: stores the buffered events and closes the index cleanly.
    pub async fn close(&self) -> Result<()> {
        let flushed = self.flush().await;
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.close())
            .await
            .map_err(|error| {
                AuditError::Index(index::IndexError::from(std::io::Error::other(error)))
            })??;
        flushed
    }
}

/// Indexes every event stored (completions merged into their pending events).
async fn rebuild_index(storage: &dyn ObjectStore, index: &Arc<index::AuditIndex>) -> Result<()> {
    let objects = sink::read_all(storage).await?;
    let views = views_of(
        objects
            .into_iter()
            .filter_map(|(_, parsed)| parsed.ok())
            .map(|(_, event)| event),
    );
    let count = views.len();
    let index = index.clone();
    tokio::task::spawn_blocking(move || {
        index.upsert(&views)?;
        index.commit()
    })
    .await
    .map_err(|error| AuditError::Index(index::IndexError::from(std::io::Error::other(error))))??;
    if count > 0 {
        tracing::info!(events = count, "audit index rebuilt from storage");
    }
    Ok(())
}

/// The query views of stored events: completions merged into their pending events.
fn views_of(events: impl Iterator<Item = AuditEvent>) -> Vec<Value> {
    let mut originals: Vec<AuditEvent> = Vec::new();
    let mut completions: std::collections::HashMap<String, AuditEvent> =
        std::collections::HashMap::new();
    for event in events {
        match &event.completes {
            Some(id) => {
                completions.insert(id.clone(), event);
            }
            None => originals.push(event),
        }
    }
    originals
        .iter()
        .map(|event| event::view(event, completions.get(&event.id)))
        .collect()
}

/// Flushes buffered events every second (or sooner when many wait) while the service lives.
fn spawn_flusher(audit: Weak<Audit>, wake: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        loop {
            // Hold no strong reference while waiting, so a dropped service is freed (and its
            // index writer released) at once.
            tokio::select! {
                () = wake.notified() => {},
                () = tokio::time::sleep(FLUSH_INTERVAL) => {},
            }
            let Some(strong) = audit.upgrade() else {
                return;
            };
            if let Err(error) = strong.flush().await {
                tracing::warn!(%error, "audit flush failed; retrying");
            }
            let index = strong.index.clone();
            drop(strong);
            let _ = tokio::task::spawn_blocking(move || index.commit()).await;
        }
    });
}

impl AuditHook for Audit {
    fn record(&self, event: AuthEvent) {
        // Keep the log line the default hook writes (operators grep for it).
        TracingAuditHook.record(event.clone());
        let base = match event.kind {
            AuthEventKind::LoginSucceeded => {
                AuditEvent::new("auth.login").outcome(Outcome::Ok, 200)
            }
            AuthEventKind::LoginFailed => {
                AuditEvent::new("auth.login_failed").outcome(Outcome::Denied, 401)
            }
            AuthEventKind::LoginRateLimited => {
                AuditEvent::new("auth.login_failed").outcome(Outcome::Denied, 429)
            }
            // Registration, logout and password changes are mutations: their routes record
            // them through `begin`/`finish`, durably and exactly once.
            AuthEventKind::Registered
            | AuthEventKind::LoggedOut
            | AuthEventKind::PasswordChanged => {
                return;
            }
        };
        let mut audit_event = base.actor(event.username.clone(), ActorKind::User);
        audit_event.resource = format!("user:{}", audit_event.actor);
        audit_event.ts = event.at;
        if let Some(address) = event.address {
            audit_event = audit_event.ip(address);
        }
        if let Some(reason) = event.reason {
            audit_event = audit_event.detail("reason", reason);
        }
        Self::record(self, audit_event);
    }
}
