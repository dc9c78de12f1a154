//! The change feed: how every replica's index follows the mutations made on any replica.
//!
//! Every mutation that changes what the index holds appends one [`Change`] under
//! `..meta/feed/<sequence>` before it is acknowledged. Sequence numbers are dense: a writer
//! creates the next number with `If-None-Match: *`, and when another writer took it, looks up
//! the head with one listing and tries the number after it. Nobody can create `n + 1` before
//! `n` exists, so a reader that lists after its last position never skips an entry that appears
//! later. Each replica follows the feed ([`crate::jobs::follow`]) and re-indexes what an entry
//! names from storage: applying is idempotent, and entries are applied in sequence order.
//!
//! Old entries are deleted after the retention ([`Feed::compact`], by one replica per period);
//! the newest entry always stays, so the numbering never restarts. A replica whose position
//! is older than the oldest entry left rebuilds its index instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::storage::{
    ListRequest, ObjectStore, ObjectStoreExt as _, PutCondition, PutOptions, StorageError, keys,
};

/// How many times a writer retries when other writers keep taking the next number.
const PUBLISH_ATTEMPTS: usize = 64;

/// What changed, as far as the index is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// One version's files, record or profile.
    Version {
        /// Project id.
        project: String,
        /// Version.
        version: String,
    },
    /// Whole projects: records, profiles, states, stable marks, grants, deletions. None: a
    /// namespace without projects changed — nothing to re-index, cached profiles are stale.
    Projects {
        /// Project ids.
        projects: Vec<String>,
    },
    /// Everything (the global profile, or a change reaching every project).
    All,
    /// Accounts, groups, API keys or token revocations: cached copies are stale.
    Accounts,
}

/// One entry of the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The replica that wrote it.
    pub replica: String,
    /// When it was written (by the writer's clock).
    pub at: DateTime<Utc>,
    /// What changed.
    pub change: Change,
}

/// Errors of the feed.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Entries after the reader's position were compacted away: it must rebuild.
    #[error("the change feed no longer reaches back to position {0}")]
    Gap(u64),
    /// Other writers kept taking every next number.
    #[error("the change feed is contended, retry")]
    Contended,
}

/// The feed of one bucket, as seen by one replica.
#[derive(Debug)]
pub struct Feed {
    store: Arc<dyn ObjectStore>,
    replica: String,
    /// The highest sequence number known to exist (written or read here).
    known: AtomicU64,
}

impl Feed {
    /// The feed in `store`, written as replica `replica`.
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>, replica: String) -> Self {
        Self {
            store,
            replica,
            known: AtomicU64::new(0),
        }
    }

    /// This replica's id.
    #[must_use]
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Appends `change` durably; answers its sequence number.
    pub async fn publish(&self, change: Change) -> Result<u64, FeedError> {
        let entry = Entry {
            replica: self.replica.clone(),
            at: Utc::now(),
            change,
        };
        let body = Bytes::from(serde_json::to_vec(&entry).unwrap_or_default());
        let mut next = self.known.load(Ordering::Acquire) + 1;
        for _ in 0..PUBLISH_ATTEMPTS {
            let options = PutOptions {
                content_type: Some("application/json".to_owned()),
                condition: PutCondition::IfAbsent,
                ..PutOptions::default()
            };
            match self
                .store
                .put_bytes(&keys::feed_entry(next), body.clone(), options)
                .await
            {
                Ok(_) => {
                    self.known.fetch_max(next, Ordering::AcqRel);
                    return Ok(next);
                }
                Err(
                    StorageError::AlreadyExists { .. } | StorageError::PreconditionFailed { .. },
                ) => {
                    next = self.head_from(next).await? + 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(FeedError::Contended)
    }

    /// The highest sequence number in the feed (0 when it is empty).
    pub async fn head(&self) -> Result<u64, FeedError> {
        self.head_from(self.known.load(Ordering::Acquire)).await
    }

    /// The highest sequence number at or after `from` (which is known to exist, or 0).
    async fn head_from(&self, from: u64) -> Result<u64, FeedError> {
        let mut request = ListRequest {
            prefix: keys::feed_prefix(),
            start_after: (from > 0).then(|| keys::feed_entry(from - 1)),
            max_keys: 1000,
            ..ListRequest::default()
        };
        let mut head = from;
        loop {
            let page = self.store.list(&request).await?;
            if let Some(last) = page
                .objects
                .iter()
                .filter_map(|object| keys::parse_feed_entry(&object.key))
                .max()
            {
                head = head.max(last);
            }
            match page.next {
                Some(next) => request.continuation = Some(next),
                None => break,
            }
        }
        self.known.fetch_max(head, Ordering::AcqRel);
        Ok(head)
    }

    /// The oldest sequence number still in the feed (`None` when it is empty).
    pub async fn oldest(&self) -> Result<Option<u64>, FeedError> {
        let page = self
            .store
            .list(&ListRequest {
                prefix: keys::feed_prefix(),
                max_keys: 1,
                ..ListRequest::default()
            })
            .await?;
        Ok(page
            .objects
            .first()
            .and_then(|object| keys::parse_feed_entry(&object.key)))
    }

    /// Up to `limit` entries after position `after`, in sequence order. [`FeedError::Gap`]
    /// when entries right after `after` were compacted away.
    pub async fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Entry)>, FeedError> {
        let page = self
            .store
            .list(&ListRequest {
                prefix: keys::feed_prefix(),
                start_after: Some(keys::feed_entry(after)),
                max_keys: limit,
                ..ListRequest::default()
            })
            .await?;
        let sequences: Vec<u64> = page
            .objects
            .iter()
            .filter_map(|object| keys::parse_feed_entry(&object.key))
            .collect();
        if let Some(&first) = sequences.first()
            && first != after + 1
        {
            return Err(FeedError::Gap(after));
        }
        let store = self.store.clone();
        let bodies: Vec<_> = futures::stream::iter(sequences.iter().copied())
            .map(|sequence| {
                let store = store.clone();
                async move { (sequence, store.get_bytes(&keys::feed_entry(sequence)).await) }
            })
            .buffered(16)
            .collect()
            .await;
        let mut entries = Vec::with_capacity(bodies.len());
        for (sequence, body) in bodies {
            match body {
                Ok((bytes, _)) => match serde_json::from_slice::<Entry>(&bytes) {
                    Ok(entry) => entries.push((sequence, entry)),
                    // An entry this version cannot read (written by a newer one): re-index
                    // everything rather than miss what it said.
                    Err(error) => {
                        tracing::warn!(sequence, %error, "unreadable change feed entry");
                        entries.push((
                            sequence,
                            Entry {
                                replica: String::new(),
                                at: Utc::now(),
                                change: Change::All,
                            },
                        ));
                    }
                },
                // Compacted between the listing and the read: this reader is that far behind.
                Err(error) if error.is_not_found() => return Err(FeedError::Gap(after)),
                Err(error) => return Err(error.into()),
            }
        }
        if let Some((last, _)) = entries.last() {
            self.known.fetch_max(*last, Ordering::AcqRel);
        }
        Ok(entries)
    }

    /// Deletes the entries written before `before`, oldest first and stopping at the first
    /// younger one (what is left stays contiguous), never the newest entry of the feed.
    /// Answers how many were deleted.
    pub async fn compact(&self, before: DateTime<Utc>) -> Result<usize, FeedError> {
        let objects = self.store.list_all(&keys::feed_prefix()).await?;
        let newest = objects
            .iter()
            .filter_map(|object| keys::parse_feed_entry(&object.key))
            .max();
        let mut deleted = 0;
        for object in &objects {
            let Some(sequence) = keys::parse_feed_entry(&object.key) else {
                continue;
            };
            if Some(sequence) == newest || object.last_modified >= before {
                break;
            }
            self.store.delete(&object.key).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}
