//! The durable writer: appends events to storage under
//! `..meta/audit/<yyyy>/<mm>/<dd>/<ts-nanos>-<writer>-<seq>.json` (time-ordered listings),
//! each written with `PutCondition::IfAbsent` and chained to the previous event of the same
//! writer (`seq`, `prev_hash`, `hash`). One writer id (a UUID) per process, so replicas never
//! contend for a chain. The chain is anchored by signed checkpoints ([`super::checkpoint`]):
//! one before the writer's first event, then every [`CHECKPOINT_EVERY`] events and at each
//! [`AuditSink::checkpoint`] (flush and shutdown).

use std::sync::Arc;

use bytes::Bytes;
use chrono::Datelike as _;

use super::checkpoint::{CHECKPOINT_EVERY, Checkpoint, CheckpointKey};
use super::event::{AuditEvent, sha256_hex};
use crate::storage::{
    ObjectStore, ObjectStoreExt as _, PutCondition, PutOptions, StorageError, keys,
};

/// The tail of one writer's chain.
#[derive(Debug, Default)]
struct Chain {
    next_seq: u64,
    prev_hash: Option<String>,
    /// How many events the last stored checkpoint covers (none stored yet: `None`).
    checkpointed: Option<u64>,
}

/// Appends events durably, one chain per process.
#[derive(Debug)]
pub struct AuditSink {
    storage: Arc<dyn ObjectStore>,
    writer: String,
    chain: tokio::sync::Mutex<Chain>,
    checkpoint_key: CheckpointKey,
}

/// The storage key of an event.
#[must_use]
pub fn event_key(event: &AuditEvent) -> String {
    let nanos = event.ts.timestamp_nanos_opt().unwrap_or_default().max(0);
    format!(
        "{}{:04}/{:02}/{:02}/{nanos:019}-{}-{:012}.json",
        keys::audit_prefix(),
        event.ts.year(),
        event.ts.month(),
        event.ts.day(),
        event.writer,
        event.seq
    )
}

impl AuditSink {
    /// A sink with a fresh writer id, signing its checkpoints with `checkpoint_key`.
    #[must_use]
    pub fn new(storage: Arc<dyn ObjectStore>, checkpoint_key: CheckpointKey) -> Self {
        Self {
            storage,
            writer: uuid::Uuid::new_v4().simple().to_string(),
            chain: tokio::sync::Mutex::new(Chain::default()),
            checkpoint_key,
        }
    }

    /// Stores a signed checkpoint of the chain as it is now.
    async fn store_checkpoint(&self, chain: &mut Chain) -> crate::storage::Result<()> {
        let checkpoint = Checkpoint::sign(
            &self.checkpoint_key,
            &self.writer,
            chain.next_seq,
            chain.prev_hash.clone(),
            chrono::Utc::now(),
        );
        let bytes = serde_json::to_vec(&checkpoint)
            .map_err(|error| StorageError::Backend(error.to_string()))?;
        self.storage
            .put_bytes(
                &keys::audit_checkpoint(&self.writer),
                Bytes::from(bytes),
                PutOptions {
                    content_type: Some("application/json".to_owned()),
                    ..PutOptions::default()
                },
            )
            .await?;
        chain.checkpointed = Some(chain.next_seq);
        Ok(())
    }

    /// Stores a checkpoint when events were stored since the last one (at every flush and at
    /// shutdown).
    pub async fn checkpoint(&self) -> crate::storage::Result<()> {
        let mut chain = self.chain.lock().await;
        if chain.checkpointed == Some(chain.next_seq) || chain.next_seq == 0 {
            return Ok(());
        }
        self.store_checkpoint(&mut chain).await
    }

    /// This process's writer id.
    #[must_use]
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// Stores `events` in order, each only after the previous one is stored. Answers the
    /// stored events (with their chain fields) and, when a write fails, the error and the
    /// events not stored (the failed one first) — the chain does not advance past a failure.
    pub async fn append(
        &self,
        events: Vec<AuditEvent>,
    ) -> (Vec<AuditEvent>, Option<(StorageError, Vec<AuditEvent>)>) {
        let mut chain = self.chain.lock().await;
        // A writer's checkpoint exists before its first event: a chain with events and no
        // checkpoint is one whose checkpoint was deleted.
        if chain.checkpointed.is_none()
            && !events.is_empty()
            && let Err(error) = self.store_checkpoint(&mut chain).await
        {
            return (Vec::new(), Some((error, events)));
        }
        let mut stored = Vec::with_capacity(events.len());
        let mut remaining = events.into_iter();
        while let Some(mut event) = remaining.next() {
            event.writer.clone_from(&self.writer);
            event.seq = chain.next_seq;
            event.prev_hash.clone_from(&chain.prev_hash);
            event.hash = None;
            event.hash = Some(event.compute_hash());
            let bytes = match serde_json::to_vec(&event) {
                Ok(bytes) => bytes,
                Err(error) => {
                    let mut rest = vec![event];
                    rest.extend(remaining);
                    return (
                        stored,
                        Some((StorageError::Backend(error.to_string()), rest)),
                    );
                }
            };
            let digest = sha256_hex(&bytes);
            let key = event_key(&event);
            let result = self
                .storage
                .put_bytes(
                    &key,
                    Bytes::from(bytes),
                    PutOptions {
                        content_type: Some("application/json".to_owned()),
                        condition: PutCondition::IfAbsent,
                        ..PutOptions::default()
                    },
                )
                .await;
            if let Err(error) = result {
                let mut rest = vec![event];
                rest.extend(remaining);
                return (stored, Some((error, rest)));
            }
            chain.next_seq += 1;
            chain.prev_hash = Some(digest);
            stored.push(event);
        }
        if chain.next_seq - chain.checkpointed.unwrap_or_default() >= CHECKPOINT_EVERY
            && let Err(error) = self.store_checkpoint(&mut chain).await
        {
            // The events are stored; the next flush writes the checkpoint again.
            tracing::warn!(%error, "audit checkpoint could not be stored");
        }
        drop(chain);
        (stored, None)
    }
}

/// Every stored event (with its key), in key order; unreadable objects are answered as
/// errors by key, for the verifier.
pub async fn read_all(
    storage: &dyn ObjectStore,
) -> crate::storage::Result<Vec<super::verify::StoredObject>> {
    let listing = storage.list_all(&keys::audit_prefix()).await?;
    let mut events = Vec::with_capacity(listing.len());
    for object in listing {
        let parsed = match storage.get_bytes(&object.key).await {
            Ok((bytes, _)) => serde_json::from_slice::<AuditEvent>(&bytes)
                .map(|event| (bytes, event))
                .map_err(|error| format!("not an audit event: {error}")),
            Err(error) if error.is_not_found() => continue,
            Err(error) => return Err(error),
        };
        events.push((object.key, parsed));
    }
    Ok(events)
}
