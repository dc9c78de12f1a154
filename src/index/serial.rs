//! Keeps concurrent re-indexing of one project from leaving a stale snapshot in the index.
//!
//! Every index update reads storage, builds documents, then replaces what the index holds for
//! a version or a whole project. Two updates of one project that overlap can apply in the
//! other order than they read: an upload's re-index reads the version with its new file and
//! applies, then a profile change's project re-index — which read the version before the
//! upload — applies its older snapshot over it, and the acknowledged file drops out of the
//! index until the next sync check (the soak found it: one file "not indexed" after a run).
//! The same order flip with a profile change would leave documents with the old access.
//!
//! Each project has an epoch, bumped whenever an update of it is applied. An update notes the
//! epoch before it reads; when it applies and the epoch has moved, another update applied in
//! between and one of the two snapshots may be stale, so it reads and applies again. Version
//! updates and repeated project updates run under a per-project lock (striped), so that loop
//! ends; whole-project batches (rebuilds, profile and namespace jobs) read unlocked and
//! re-run, locked, only the projects another update touched meanwhile.

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// Lock stripes (projects hashing to one stripe share its lock).
const STRIPES: usize = 64;

/// Per-project epochs and locks; one per index ([`super::SearchIndex::serial`]), so every indexer
/// writing into it takes part.
#[derive(Debug)]
pub struct ProjectSerializer {
    stripes: Vec<AsyncMutex<()>>,
    epochs: Mutex<HashMap<String, u64>>,
}

impl Default for ProjectSerializer {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AsyncMutex::new(())).collect(),
            epochs: Mutex::new(HashMap::new()),
        }
    }
}

impl ProjectSerializer {
    /// Waits for the lock of `project`'s stripe.
    pub async fn lock(&self, project: &str) -> MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        project.hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0);
        self.stripes[stripe].lock().await
    }

    /// The epoch of `project`, to note before reading it.
    pub fn ticket(&self, project: &str) -> u64 {
        self.epochs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(project)
            .copied()
            .unwrap_or(0)
    }

    /// Records that an update of `project` which read it at epoch `ticket` has applied;
    /// answers whether no other update applied in between (else it must read again).
    pub fn applied(&self, project: &str, ticket: u64) -> bool {
        let mut epochs = self.epochs.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = epochs.entry(project.to_owned()).or_insert(0);
        let alone = *epoch == ticket;
        *epoch += 1;
        alone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_alone_applies_once_and_an_overlapped_one_reads_again() {
        let serial = ProjectSerializer::default();
        let first = serial.ticket("p");
        assert!(serial.applied("p", first));
        // Two overlapping updates: whichever applies second sees the other's.
        let (a, b) = (serial.ticket("p"), serial.ticket("p"));
        assert!(serial.applied("p", a));
        assert!(!serial.applied("p", b));
        // Other projects are independent.
        let other = serial.ticket("q");
        assert!(serial.applied("q", other));
    }

    #[tokio::test]
    async fn one_project_is_locked_at_a_time() {
        let serial = ProjectSerializer::default();
        let guard = serial.lock("p").await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), serial.lock("p"))
                .await
                .is_err()
        );
        drop(guard);
        let _again = serial.lock("p").await;
    }
}
