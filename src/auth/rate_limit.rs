//! Login rate limiting: sliding windows of attempts per key, in memory. A login (or a password
//! change) goes through three: per (username, client address) — the tight one, so an attacker
//! guessing from one address locks out only themselves —, per username at a much higher
//! threshold (a distributed guess), and per client address (a spray of usernames). An attempt
//! takes a slot before the password is checked (so concurrent guesses count too) and a
//! successful one gives its slots back, so only failures accumulate.
//!
//! Memory is bounded: keys longer than [`MAX_KEY_BYTES`] are stored as their SHA-256, and each
//! window tracks at most `max_keys` keys — when full, keys whose attempts all left the window
//! are swept, then the least recently used eighth is evicted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Keys one window tracks by default before it sweeps and evicts.
pub const DEFAULT_MAX_KEYS: usize = 20_000;
/// Longest key stored as given; longer ones are stored as their SHA-256 (hex).
pub const MAX_KEY_BYTES: usize = 128;

/// A key of bounded size: itself when short, else its SHA-256 in hex.
fn bounded_key(key: &str) -> String {
    if key.len() <= MAX_KEY_BYTES {
        key.to_owned()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

/// A sliding-window limiter: at most `limit` attempts per key within `window`, over at most
/// `max_keys` keys.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    max_keys: usize,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SlidingWindow {
    /// A limiter allowing `limit` attempts per `window`; `limit = 0` disables it.
    #[must_use]
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::with_capacity(limit, window, DEFAULT_MAX_KEYS)
    }

    /// [`Self::new`] tracking at most `max_keys` keys (at least 8).
    #[must_use]
    pub fn with_capacity(limit: u32, window: Duration, max_keys: usize) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            window,
            max_keys: max_keys.max(8),
            attempts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys are tracked now.
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.lock().len()
    }

    /// Makes room for one more key: sweeps keys whose attempts all left the window, then
    /// evicts the least recently used eighth.
    fn make_room(&self, attempts: &mut HashMap<String, VecDeque<Instant>>, now: Instant) {
        let window = self.window;
        attempts.retain(|_, times| {
            times
                .back()
                .is_some_and(|last| now.saturating_duration_since(*last) < window)
        });
        if attempts.len() < self.max_keys {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = attempts
            .iter()
            .map(|(key, times)| (times.back().copied().unwrap_or(now), key.clone()))
            .collect();
        let evict = (self.max_keys / 8).max(1);
        by_age.select_nth_unstable_by_key(evict - 1, |(last, _)| *last);
        for (_, key) in by_age.into_iter().take(evict) {
            attempts.remove(&key);
        }
    }

    /// Takes a slot for `key` at `now`, or answers how long to wait (whole seconds, at least
    /// one) before the oldest attempt leaves the window.
    pub fn acquire(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let key = bounded_key(key);
        let mut attempts = self.lock();
        if !attempts.contains_key(&key) && attempts.len() >= self.max_keys {
            self.make_room(&mut attempts, now);
        }
        let times = attempts.entry(key).or_default();
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
        if self.limit == 0 {
            return;
        }
        let key = bounded_key(key);
        let mut attempts = self.lock();
        if let Some(times) = attempts.get_mut(&key) {
            times.pop_back();
            if times.is_empty() {
                attempts.remove(&key);
            }
        }
    }
}

/// The thresholds of a [`LoginRateLimiter`] (0 disables one).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Attempts per (username, client address) within the window.
    pub per_user_address: u32,
    /// Attempts per username within the window, from all addresses together.
    pub per_user: u32,
    /// Attempts per client address within the window, on all usernames together.
    pub per_address: u32,
    /// The window.
    pub window: Duration,
    /// Keys each window tracks at most.
    pub max_keys: usize,
}

/// The three limiters a login or a password change goes through.
#[derive(Debug)]
pub struct LoginRateLimiter {
    per_user_address: SlidingWindow,
    per_user: SlidingWindow,
    per_address: SlidingWindow,
}

/// A slot taken for one attempt; give it back with [`LoginRateLimiter::succeeded`].
#[derive(Debug)]
pub struct AttemptPermit {
    username: String,
    address: String,
    pair: String,
}

impl LoginRateLimiter {
    /// Limiters with the given thresholds.
    #[must_use]
    pub fn new(limits: LoginLimits) -> Self {
        let window =
            |limit: u32| SlidingWindow::with_capacity(limit, limits.window, limits.max_keys);
        Self {
            per_user_address: window(limits.per_user_address),
            per_user: window(limits.per_user),
            per_address: window(limits.per_address),
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
        let username = bounded_key(&username.to_ascii_lowercase());
        let address = bounded_key(address);
        // A separator no username or address contains.
        let pair = format!("{username}\u{1f}{address}");
        self.per_address.acquire(&address, now)?;
        if let Err(wait) = self.per_user_address.acquire(&pair, now) {
            self.per_address.release(&address);
            return Err(wait);
        }
        if let Err(wait) = self.per_user.acquire(&username, now) {
            self.per_user_address.release(&pair);
            self.per_address.release(&address);
            return Err(wait);
        }
        Ok(AttemptPermit {
            username,
            address,
            pair,
        })
    }

    /// The attempt succeeded: its slots are given back.
    pub fn succeeded(&self, permit: AttemptPermit) {
        self.per_user.release(&permit.username);
        self.per_user_address.release(&permit.pair);
        self.per_address.release(&permit.address);
    }

    /// Keys tracked by the three windows together (memory bound checks).
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.per_user_address.tracked_keys()
            + self.per_user.tracked_keys()
            + self.per_address.tracked_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_user_address: u32, per_user: u32, per_address: u32) -> LoginLimits {
        LoginLimits {
            per_user_address,
            per_user,
            per_address,
            window: Duration::from_secs(60),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

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
        let limiter = LoginRateLimiter::new(limits(10, 2, 100));
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
        let limiter = LoginRateLimiter::new(limits(100, 100, 3));
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            limiter.attempt_at(name, "10.0.0.1", now).unwrap();
        }
        assert!(limiter.attempt_at("d", "10.0.0.1", now).is_err());
        assert!(limiter.attempt_at("d", "10.0.0.2", now).is_ok());
    }

    #[test]
    fn zero_disables_a_limit() {
        let limiter = LoginRateLimiter::new(limits(0, 0, 0));
        let now = Instant::now();
        for _ in 0..1000 {
            limiter.attempt_at("alice", "10.0.0.1", now).unwrap();
        }
    }

    #[test]
    fn an_attacker_address_locks_out_only_itself() {
        let limiter = LoginRateLimiter::new(limits(10, 100, 50));
        let now = Instant::now();
        for _ in 0..10 {
            limiter.attempt_at("alice", "10.6.6.6", now).unwrap();
        }
        assert!(limiter.attempt_at("alice", "10.6.6.6", now).is_err());
        // The real user, elsewhere, still gets in.
        let permit = limiter.attempt_at("alice", "10.0.0.1", now).unwrap();
        limiter.succeeded(permit);
        // A distributed guess still meets the per-username threshold.
        for address in 0..9 {
            for _ in 0..10 {
                limiter
                    .attempt_at("alice", &format!("10.1.0.{address}"), now)
                    .unwrap();
            }
        }
        assert!(limiter.attempt_at("alice", "10.2.0.1", now).is_err());
    }

    #[test]
    fn memory_stays_bounded_under_a_spray_of_names() {
        let max_keys = 1000;
        let limiter = LoginRateLimiter::new(LoginLimits {
            max_keys,
            ..limits(10, 100, 0)
        });
        let now = Instant::now();
        let huge = "x".repeat(1 << 20);
        for i in 0..20_000 {
            let name = if i % 100 == 0 {
                format!("{huge}{i}")
            } else {
                format!("user{i}")
            };
            let _ = limiter.attempt_at(&name, "10.0.0.1", now);
        }
        // Two windows track names (the address window is disabled here).
        assert!(
            limiter.tracked_keys() <= 2 * max_keys,
            "{}",
            limiter.tracked_keys()
        );
        // Keys are bounded too: a megabyte name is kept as a digest.
        let window = SlidingWindow::with_capacity(1, Duration::from_secs(60), 10);
        window.acquire(&huge, now).unwrap();
        assert!(window.lock().keys().all(|key| key.len() <= MAX_KEY_BYTES));
        assert!(window.acquire(&huge, now).is_err());
    }

    #[test]
    fn a_full_window_evicts_the_least_recently_used_keys() {
        let window = SlidingWindow::with_capacity(5, Duration::from_secs(60), 16);
        let start = Instant::now();
        for i in 0..16_u64 {
            window
                .acquire(&format!("k{i}"), start + Duration::from_millis(i))
                .unwrap();
        }
        window
            .acquire("new", start + Duration::from_millis(100))
            .unwrap();
        assert!(window.tracked_keys() <= 16);
        let attempts = window.lock();
        assert!(!attempts.contains_key("k0"), "the oldest key is evicted");
        assert!(attempts.contains_key("k15") && attempts.contains_key("new"));
    }
}
