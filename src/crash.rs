//! Test-only crash points (issue 14): named places where the process can be made to die
//! abruptly, so the crash-consistency tests can show what a `kill -9` at that moment leaves.
//!
//! A point does nothing unless the environment variable [`CRASH_AT_ENV`] names it; then the
//! process aborts on the spot (no destructor, no flush, no graceful shutdown — what `SIGKILL`
//! leaves). Only tests set the variable; it is not a setting and is never read from
//! `trove.toml`. The points:
//!
//! | point | where |
//! |---|---|
//! | `audit.begun` | an audited mutation's `pending` event is stored, the mutation has not run |
//! | `upload.staged` | a direct upload's bytes are in the staging area, not yet in the version |
//! | `upload.moved` | the uploaded file is in the version, its sidecar record not yet written |
//! | `reindex.start` | a profile (or state) change is stored, its re-index job has not run |
//! | `rebuild.progress` | an index build job has indexed its first project |
//! | `version.delete.partial` | a version deletion (or purge) removed its first object |
//! | `purge.deleted` | the purge deleted a late upload or an expired version (its event is completed), not yet re-indexed |
//! | `startup.rebuild.progress` | the start-up rebuild of a missing index has indexed its first project |
//! | `namespace.delete.marked` | a namespace deletion marked the record `deleting`, has not looked for its projects |
//! | `namespace.delete.profile_deleted` | a namespace deletion found no project and deleted the namespace's profile, not its claims and record |

/// The variable naming the crash point to die at.
pub const CRASH_AT_ENV: &str = "TROVE_TEST_CRASH_AT";

/// Aborts the process when [`CRASH_AT_ENV`] names `point`; does nothing otherwise.
pub fn point(point: &str) {
    if std::env::var_os(CRASH_AT_ENV).is_some_and(|value| value == point) {
        eprintln!("trove: test crash point {point} reached; aborting");
        std::process::abort();
    }
}

/// The variable naming the pause point to wait at (tests only, like [`CRASH_AT_ENV`]).
pub const PAUSE_AT_ENV: &str = "TROVE_TEST_PAUSE_AT";

/// How long a pause point waits, in milliseconds (default 3,000).
pub const PAUSE_MS_ENV: &str = "TROVE_TEST_PAUSE_MS";

/// Waits when [`PAUSE_AT_ENV`] names `point` — what a process stalled at that moment (paused,
/// swapped out, starved) does, so a test can change storage under an operation in flight;
/// does nothing otherwise. The points: `namespace.delete.checked` (a namespace deletion found
/// no project and has not re-read its record), `sync.index_read` (a sync check read the index
/// and has not read storage).
pub async fn pause(point: &str) {
    if std::env::var_os(PAUSE_AT_ENV).is_some_and(|value| value == point) {
        let millis = std::env::var(PAUSE_MS_ENV)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(3_000);
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    }
}
