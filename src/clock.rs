//! The clock that decides grant expiry (`expires` of profiles: shares and member grants).
//!
//! Every expiry decision — request-time evaluation, the expiry stored in index documents, the
//! re-check of search hits and counts, the sync check and the re-index at each expiry — asks
//! [`App::clock`](crate::app::App) instead of the system time, so that a test can move time
//! past an expiry without waiting. Production always runs [`Clock::system`], which is exactly
//! `Utc::now()`; [`Clock::manual`] (system time plus an offset that only grows) exists for
//! tests and is never selected by a setting. Credential lifetimes (JWTs, API keys, presigned
//! URLs, cursors) and upload deadlines stay on the system time.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of the current time for expiry decisions; cheap to clone (clones share one time).
#[derive(Debug, Clone)]
pub struct Clock(Arc<Source>);

#[derive(Debug)]
enum Source {
    /// `Utc::now()`.
    System,
    /// `Utc::now()` plus an offset in milliseconds that [`Clock::advance`] grows.
    Manual(tokio::sync::watch::Sender<i64>),
}

impl Clock {
    /// The system time (production).
    #[must_use]
    pub fn system() -> Self {
        Self(Arc::new(Source::System))
    }

    /// A clock that runs with the system time and can be moved forward (tests only).
    #[must_use]
    pub fn manual() -> Self {
        Self(Arc::new(Source::Manual(tokio::sync::watch::Sender::new(0))))
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Source::System => Utc::now(),
            Source::Manual(offset) => Utc::now() + chrono::Duration::milliseconds(*offset.borrow()),
        }
    }

    /// Moves a manual clock forward by `by` (a negative duration is ignored: time never goes
    /// back). Answers `false`, changing nothing, on the system clock.
    pub fn advance(&self, by: chrono::Duration) -> bool {
        match &*self.0 {
            Source::System => false,
            Source::Manual(offset) => {
                let by = by.num_milliseconds().max(0);
                offset.send_modify(|offset| *offset = offset.saturating_add(by));
                true
            }
        }
    }

    /// Resolves when the clock is moved forward; never on the system clock (whose time only
    /// flows). Lets a task sleeping until an expiry wake up when a test jumps past it.
    pub async fn advanced(&self) {
        match &*self.0 {
            Source::System => std::future::pending().await,
            Source::Manual(offset) => {
                let mut receiver = offset.subscribe();
                // The sender lives as long as `self`, so this only resolves on a change.
                let _ = receiver.changed().await;
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_cannot_be_moved() {
        let clock = Clock::system();
        assert!(!clock.advance(chrono::Duration::hours(1)));
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
    }

    #[test]
    fn a_manual_clock_moves_forward_only_and_clones_share_it() {
        let clock = Clock::manual();
        let shared = clock.clone();
        assert!(clock.advance(chrono::Duration::hours(2)));
        clock.advance(chrono::Duration::hours(-5));
        let ahead = shared.now() - Utc::now();
        assert!(ahead > chrono::Duration::minutes(119), "{ahead}");
        assert!(ahead <= chrono::Duration::hours(2), "{ahead}");
    }
}
