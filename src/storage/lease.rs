//! Leases: at most one holder at a time across every process on one bucket, through
//! conditional writes on one object (`..meta/leases/<name>.json`).
//!
//! A lease is taken by creating its object (`If-None-Match: *`) or, when the object holds an
//! expired or released lease, by replacing exactly the version that was read (`If-Match`): of
//! many processes racing for it, one wins. A holder that crashed keeps its lease until it
//! expires; the next taker replaces it. Expiry compares wall clocks, so replicas must keep
//! their clocks in step (NTP) by much less than the lease's time to live.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ObjectStore, ObjectStoreExt as _, PutCondition, PutOptions, Result, StorageError};
use crate::storage::keys;

/// What a lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    /// Who holds it (a replica id, or a unique id per acquisition).
    holder: String,
    /// When it was taken.
    acquired_at: DateTime<Utc>,
    /// When it lapses; a released lease has this in the past.
    expires_at: DateTime<Utc>,
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    key: String,
    holder: String,
    acquired_at: DateTime<Utc>,
    etag: String,
}

impl Lease {
    /// Takes the lease `name` for `ttl` unless another holder's unexpired lease is in place;
    /// `None` when someone else holds it (or won the race for it).
    pub async fn try_acquire(
        store: &Arc<dyn ObjectStore>,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Self>> {
        let key = keys::lease(name);
        let now = Utc::now();
        let record = LeaseRecord {
            holder: holder.to_owned(),
            acquired_at: now,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
        };
        let body = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let condition = match store.get_bytes(&key).await {
            Ok((current, meta)) => {
                let lapsed = serde_json::from_slice::<LeaseRecord>(&current)
                    .map_or(true, |current| current.expires_at <= now);
                if !lapsed {
                    return Ok(None);
                }
                PutCondition::IfMatch(meta.etag)
            }
            Err(error) if error.is_not_found() => PutCondition::IfAbsent,
            Err(error) => return Err(error),
        };
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            condition,
            ..PutOptions::default()
        };
        match store.put_bytes(&key, body, options).await {
            Ok(outcome) => Ok(Some(Self {
                store: store.clone(),
                key,
                holder: holder.to_owned(),
                acquired_at: now,
                etag: outcome.meta.etag,
            })),
            Err(StorageError::AlreadyExists { .. } | StorageError::PreconditionFailed { .. }) => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Takes the lease, waiting up to `wait` for its holder to release it or for it to
    /// lapse; `None` when it could not be taken in that time.
    pub async fn acquire_within(
        store: &Arc<dyn ObjectStore>,
        name: &str,
        holder: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Self>> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(lease) = Self::try_acquire(store, name, holder, ttl).await? {
                return Ok(Some(lease));
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Who holds it.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Gives the lease up at once (it stays held until it lapses when this fails, e.g. on a
    /// storage outage). Only the version this holder wrote is replaced: a lease that lapsed
    /// and was taken by another holder meanwhile is left alone.
    pub async fn release(self) {
        let record = LeaseRecord {
            holder: self.holder.clone(),
            acquired_at: self.acquired_at,
            expires_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let body = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            condition: PutCondition::IfMatch(self.etag.clone()),
            ..PutOptions::default()
        };
        if let Err(error) = self.store.put_bytes(&self.key, body, options).await {
            tracing::debug!(key = %self.key, %error, "lease not released; it lapses on its own");
        }
    }
}
