//! Login rate limiting: a sliding window of attempts per key (one limiter per username, one
//! per client address), in memory. An attempt takes a slot before the password is checked
//! (so concurrent guesses count too) and a successful login gives its slot back, so only
//! failures accumulate and legitimate traffic is not throttled.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys tracked before stale ones are swept (bounds memory under a spray of usernames).
const SWEEP_THRESHOLD: usize = 10_000;

/// A sliding-window limiter: at most `limit` attempts per key within `window`.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    /// A limiter allowing `limit` attempts per `window`; `limit = 0` disables it.
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a slot for `key` at `now`, or answers how long to wait (whole seconds, at least
    /// one) before the oldest attempt leaves the window.
    pub fn acquire(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if attempts.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            attempts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            });
        }
        let times = attempts.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self
                .window
                .saturating_sub(now.saturating_duration_since(oldest));
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(seconds.max(1));
        }
        times.push_back(now);
        Ok(())
    }

    /// Gives back the most recent slot of `key` (after a successful login).
    pub fn release(&self, key: &str) {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(times) = attempts.get_mut(key) {
            times.pop_back();
            if times.is_empty() {
                attempts.remove(key);
            }
        }
    }
}

/// The two limiters a login goes through.
#[derive(Debug)]
pub struct LoginRateLimiter {
    per_user: SlidingWindow,
    per_address: SlidingWindow,
}

/// A slot taken for one login attempt; give it back with [`LoginRateLimiter::succeeded`].
#[derive(Debug)]
pub struct AttemptPermit {
    username: String,
    address: String,
}

impl LoginRateLimiter {
    /// Limiters allowing `per_user` attempts per username and `per_address` per client
    /// address within `window` (0 disables either).
    #[must_use]
    pub fn new(per_user: u32, per_address: u32, window: Duration) -> Self {
        Self {
            per_user: SlidingWindow::new(per_user, window),
            per_address: SlidingWindow::new(per_address, window),
        }
    }

    /// Takes a slot for an attempt on `username` from `address`, or answers the seconds to
    /// wait.
    pub fn attempt(&self, username: &str, address: &str) -> Result<AttemptPermit, u64> {
        self.attempt_at(username, address, Instant::now())
    }

    /// [`Self::attempt`] at a given instant (tests).
    pub fn attempt_at(
        &self,
        username: &str,
        address: &str,
        now: Instant,
    ) -> Result<AttemptPermit, u64> {
        let username = username.to_ascii_lowercase();
        self.per_address.acquire(address, now)?;
        if let Err(wait) = self.per_user.acquire(&username, now) {
            self.per_address.release(address);
            return Err(wait);
        }
        Ok(AttemptPermit {
            username,
            address: address.to_owned(),
        })
    }

    /// The attempt succeeded: its slots are given back.
    pub fn succeeded(&self, permit: AttemptPermit) {
        self.per_user.release(&permit.username);
        self.per_address.release(&permit.address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_fill_the_window_and_tell_how_long_to_wait() {
        let limiter = SlidingWindow::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for second in 0..3 {
            limiter
                .acquire("alice", start + Duration::from_secs(second))
                .unwrap();
        }
        let wait = limiter
            .acquire("alice", start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, 50);
        assert!(limiter.acquire("bob", start).is_ok());
        // The oldest attempt leaves the window at 60 s.
        assert!(
            limiter
                .acquire("alice", start + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn the_wait_is_at_least_one_second() {
        let limiter = SlidingWindow::new(1, Duration::from_secs(60));
        let start = Instant::now();
        limiter.acquire("k", start).unwrap();
        let wait = limiter
            .acquire("k", start + Duration::from_millis(59_999))
            .unwrap_err();
        assert_eq!(wait, 1);
    }

    #[test]
    fn successes_give_their_slot_back() {
        let limiter = LoginRateLimiter::new(2, 100, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..10 {
            let permit = limiter.attempt_at("alice", "10.0.0.1", now).unwrap();
            limiter.succeeded(permit);
        }
        limiter.attempt_at("alice", "10.0.0.1", now).unwrap();
        limiter.attempt_at("ALICE", "10.0.0.2", now).unwrap();
        assert!(limiter.attempt_at("alice", "10.0.0.3", now).is_err());
    }

    #[test]
    fn the_address_limit_spans_usernames() {
        let limiter = LoginRateLimiter::new(100, 3, Duration::from_secs(60));
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            limiter.attempt_at(name, "10.0.0.1", now).unwrap();
        }
        assert!(limiter.attempt_at("d", "10.0.0.1", now).is_err());
        assert!(limiter.attempt_at("d", "10.0.0.2", now).is_ok());
    }

    #[test]
    fn zero_disables_a_limit() {
        let limiter = LoginRateLimiter::new(0, 0, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..1000 {
            limiter.attempt_at("alice", "10.0.0.1", now).unwrap();
        }
    }
}
