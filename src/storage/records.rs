//! Typed JSON records in object storage, written once for every kind of record (accounts,
//! groups, API keys, namespaces, projects, versions, links, the revision counter, file
//! sidecars): read with the ETag, create if absent, and read-modify-write with `If-Match`
//! retried when a concurrent writer won the race.
//!
//! Records are stored as pretty-printed JSON with `Content-Type: application/json` (the
//! layout of SPEC §2; every writer before this module did the same). Creation uses
//! [`PutCondition::IfAbsent`], so of many concurrent creators exactly one wins; an update
//! re-reads the record after a lost race and applies its change again, so a change is never
//! applied to a stale copy.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ObjectStore, ObjectStoreExt as _, PutCondition, PutOptions, StorageError};

/// What reading or writing a record can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Storage failed (an existing record on create is [`StorageError::AlreadyExists`]).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record in storage is not valid JSON of its kind (or a record could not be encoded).
    #[error("corrupt record {key}: {message}")]
    Corrupt {
        /// The storage key.
        key: String,
        /// The parse error.
        message: String,
    },
    /// An update kept losing the `If-Match` race.
    #[error("too many concurrent updates of {key}")]
    Contended {
        /// The storage key.
        key: String,
    },
}

/// A record with the ETag it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// The record.
    pub record: T,
    /// Its ETag.
    pub etag: String,
}

/// How often an update is tried and how long it pauses after a lost race.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// The pause after the `n`-th lost race (1-based).
    pub pause: fn(u32) -> Duration,
}

impl Retry {
    /// `attempts` tries with no pause between them.
    #[must_use]
    pub const fn immediate(attempts: u32) -> Self {
        Self {
            attempts,
            pause: |_| Duration::ZERO,
        }
    }

    /// `attempts` tries with the same `pause` after each lost race.
    #[must_use]
    pub const fn fixed(attempts: u32, pause: fn(u32) -> Duration) -> Self {
        Self { attempts, pause }
    }
}

/// What a change does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Write the changed record.
    Write,
    /// Nothing changed: write nothing.
    Keep,
}

impl From<bool> for Edit {
    fn from(changed: bool) -> Self {
        if changed { Self::Write } else { Self::Keep }
    }
}

/// Reads and parses the record at `key`; `None` when absent.
///
/// # Errors
/// Storage failures, and [`RecordError::Corrupt`] when the record does not parse.
pub async fn read<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> Result<Option<Versioned<T>>, RecordError> {
    match store.get_bytes(key).await {
        Ok((bytes, meta)) => serde_json::from_slice(&bytes)
            .map(|record| {
                Some(Versioned {
                    record,
                    etag: meta.etag,
                })
            })
            .map_err(|error| RecordError::Corrupt {
                key: key.to_owned(),
                message: error.to_string(),
            }),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Writes `record` at `key` subject to `condition`; answers the new ETag. An existing record
/// on `IfAbsent` is [`StorageError::AlreadyExists`], a stale ETag on `IfMatch`
/// [`StorageError::PreconditionFailed`].
///
/// # Errors
/// Storage failures, as above.
pub async fn write<T: Serialize + ?Sized>(
    store: &dyn ObjectStore,
    key: &str,
    record: &T,
    condition: PutCondition,
) -> Result<String, RecordError> {
    let body = serde_json::to_vec_pretty(record).map_err(|error| RecordError::Corrupt {
        key: key.to_owned(),
        message: error.to_string(),
    })?;
    let outcome = store
        .put_bytes(
            key,
            Bytes::from(body),
            PutOptions {
                content_type: Some("application/json".to_owned()),
                condition,
                ..PutOptions::default()
            },
        )
        .await?;
    Ok(outcome.meta.etag)
}

/// Creates `record` at `key` if no record is there; answers its ETag.
///
/// # Errors
/// [`StorageError::AlreadyExists`] when one is there; other storage failures.
pub async fn create<T: Serialize + ?Sized>(
    store: &dyn ObjectStore,
    key: &str,
    record: &T,
) -> Result<String, RecordError> {
    write(store, key, record, PutCondition::IfAbsent).await
}

/// Whether a write lost a race (a stale `If-Match`, or another creator first).
fn lost_race(error: &RecordError) -> bool {
    matches!(
        error,
        RecordError::Storage(
            StorageError::PreconditionFailed { .. } | StorageError::AlreadyExists { .. }
        )
    )
}

/// Applies `change` to the current record at `key` and writes it with `If-Match`, reading
/// and applying again after a lost race (as `retry` says). `change` answers whether to write
/// ([`Edit::Keep`] writes nothing) or an error, answered as is. `Ok(None)` when the record is
/// absent (also when it is deleted during the update).
///
/// # Errors
/// `change`'s errors, storage failures, a corrupt record, and [`RecordError::Contended`]
/// when every attempt lost its race.
pub async fn update<T, E>(
    store: &dyn ObjectStore,
    key: &str,
    retry: Retry,
    mut change: impl FnMut(&mut T) -> Result<Edit, E>,
) -> Result<Option<Versioned<T>>, E>
where
    T: Serialize + DeserializeOwned,
    E: From<RecordError>,
{
    for attempt in 1..=retry.attempts {
        let Some(Versioned { mut record, etag }) = read::<T>(store, key).await? else {
            return Ok(None);
        };
        if change(&mut record)? == Edit::Keep {
            return Ok(Some(Versioned { record, etag }));
        }
        match write(store, key, &record, PutCondition::IfMatch(etag)).await {
            Ok(etag) => return Ok(Some(Versioned { record, etag })),
            Err(RecordError::Storage(StorageError::NotFound { .. })) => return Ok(None),
            Err(error) if lost_race(&error) => pause(retry, attempt).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(RecordError::Contended {
        key: key.to_owned(),
    }
    .into())
}

/// Like [`update`], but an absent record starts as `T::default()` and is created with
/// `If-None-Match: *` (a concurrent creator is a lost race like any other).
///
/// # Errors
/// As [`update`].
pub async fn upsert<T, E>(
    store: &dyn ObjectStore,
    key: &str,
    retry: Retry,
    mut change: impl FnMut(&mut T) -> Result<(), E>,
) -> Result<Versioned<T>, E>
where
    T: Serialize + DeserializeOwned + Default,
    E: From<RecordError>,
{
    for attempt in 1..=retry.attempts {
        let (mut record, condition) = match read::<T>(store, key).await? {
            Some(Versioned { record, etag }) => (record, PutCondition::IfMatch(etag)),
            None => (T::default(), PutCondition::IfAbsent),
        };
        change(&mut record)?;
        match write(store, key, &record, condition).await {
            Ok(etag) => return Ok(Versioned { record, etag }),
            Err(error) if lost_race(&error) => pause(retry, attempt).await,
            Err(error) => return Err(error.into()),
        }
    }
    Err(RecordError::Contended {
        key: key.to_owned(),
    }
    .into())
}

async fn pause(retry: Retry, attempt: u32) {
    let pause = (retry.pause)(attempt);
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}
