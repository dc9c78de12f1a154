//! Password hashing: argon2id (m=19456 KiB, t=2, p=1, `Argon2::default()`), run on a fixed set
//! of threads of its own at the lowest CPU priority, behind a semaphore sized to the cores, so a burst of
//! logins can neither starve the runtime, queue unbounded CPU work, nor slow searches: the
//! scheduler gives hashing the cores that requests leave idle (issue 18: search p99 during a
//! login storm). Unknown users verify a precomputed dummy hash, so a login costs the same
//! whether or not the account exists (no timing oracle). Each hashing thread keeps its argon2
//! memory between computations instead of asking the allocator for 19 MiB of zeroed memory
//! each time (jemalloc answers that with fresh pages from the kernel: a third slower).

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes (bounds the hashing work a request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Result alias of this module.
pub type Result<T, E = PasswordError> = std::result::Result<T, E>;

/// What hashing or checking a password can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than [`MIN_PASSWORD_CHARS`].
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// Longer than [`MAX_PASSWORD_BYTES`].
    #[error("the password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// argon2 itself failed (never expected with valid parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
}

/// Checks the length rules of a new password.
pub fn check_new_password(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// One computation for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords off the async runtime, a bounded number at a time.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// The queue of the hashing threads, started on first use (`None`: none could start).
    workers: Arc<OnceLock<Option<Mutex<Sender<Job>>>>>,
    dummy_hash: Arc<OnceCell<String>>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new(
            std::thread::available_parallelism()
                .map(std::num::NonZero::get)
                .unwrap_or(1),
        )
    }
}

impl PasswordHasher {
    /// A hasher running at most `concurrency` (at least 1) argon2 computations at once.
    #[must_use]
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            workers: Arc::new(OnceLock::new()),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// Runs `work` on one of the hashing threads (at the lowest CPU priority) once a permit
    /// is free. The threads live as long as the hasher: unlike the blocking pool's threads
    /// (which also run index searches) their priority never has to be raised back, which an
    /// unprivileged process cannot do. They are not started per computation: no thread is
    /// created per login, and argon2's 19 MiB buffers stay with these few threads.
    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        let workers = self
            .workers
            .get_or_init(|| start_workers(self.concurrency).map(Mutex::new))
            .as_ref()
            .ok_or(PasswordError::Task)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = sender.send(work());
        });
        workers
            .lock()
            .map_err(|_| PasswordError::Task)?
            .send(job)
            .map_err(|_| PasswordError::Task)?;
        receiver.await.map_err(|_| PasswordError::Task)
    }

    /// Hashes a password into an argon2id PHC string (random salt). Does not check the length
    /// rules beyond [`MAX_PASSWORD_BYTES`]; call [`check_new_password`] for new passwords.
    pub async fn hash(&self, password: &str) -> Result<String> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        let password = password.as_bytes().to_vec();
        self.run_blocking(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `phc`. With `phc = None` (unknown user, or an account
    /// without a password) a dummy hash is verified instead and the answer is `false`, so
    /// the time taken doesn't tell whether the account exists. A stored hash that doesn't
    /// parse counts as a mismatch.
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        let known = phc.is_some();
        let phc = match phc {
            Some(phc) => phc.to_owned(),
            None => self.dummy_hash().await?,
        };
        // Oversized input never reaches argon2, but still costs a verification.
        let oversized = password.len() > MAX_PASSWORD_BYTES;
        let password = if oversized {
            Vec::new()
        } else {
            password.as_bytes().to_vec()
        };
        let matches = self
            .run_blocking(move || verify_blocking(&password, &phc))
            .await?;
        Ok(known && !oversized && matches)
    }

    /// The dummy hash, computed once on first use.
    async fn dummy_hash(&self) -> Result<String> {
        self.dummy_hash
            .get_or_try_init(|| async {
                self.run_blocking(|| hash_blocking(b"trove-dummy-password-for-unknown-users"))
                    .await?
            })
            .await
            .cloned()
    }
}

/// Starts `count` hashing threads sharing one queue; they end when the queue's sender is
/// dropped (with the last clone of the hasher). `None` when not one could start.
fn start_workers(count: usize) -> Option<Sender<Job>> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    let started = (0..count)
        .filter(|_| {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name("trove-argon2".to_owned())
                .spawn(move || hashing_thread(&receiver))
                .is_ok()
        })
        .count();
    (started > 0).then_some(sender)
}

/// A hashing thread: lowers its priority, then runs jobs until the queue closes. A job that
/// panics drops its answer channel (the caller gets [`PasswordError::Task`]); the thread
/// goes on.
fn hashing_thread(jobs: &Mutex<Receiver<Job>>) {
    lower_this_threads_priority();
    loop {
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// The calling thread's niceness while it hashes: the least priority.
const HASHING_NICE: i32 = 19;

/// Puts the calling thread under `SCHED_IDLE`, then at niceness [`HASHING_NICE`]. Nice 19
/// alone still lets a hashing thread hold a core for a scheduler slice after a request's
/// thread wakes (search p99 ×2.07 during a login storm, 2026-12-04); a `SCHED_IDLE` thread
/// is preempted as soon as any normal thread wants the core, and still runs whenever a core
/// is free. Both apply to this one thread on Linux and need no privilege. Best effort: a
/// failure leaves the default priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        let _ = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        );
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE);
    }
}

thread_local! {
    /// A hashing thread's argon2 memory, kept from one computation to the next (argon2
    /// writes every block of it before reading it, so what a previous one left is harmless).
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Computes the raw argon2 output of `password` with `argon2`'s algorithm, version and
/// parameters into `out`, in the calling thread's kept memory. A stored hash asking for more
/// memory than the default cost gets a buffer of its own for that computation, so what a
/// thread keeps stays at the default's 19 MiB.
fn compute(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let count = argon2.params().block_count();
    if count > Params::DEFAULT.block_count() {
        let mut blocks = vec![Block::default(); count];
        return argon2
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..])
            .is_ok();
    }
    BLOCKS.with_borrow_mut(|blocks| {
        if blocks.len() < count {
            blocks.resize(count, Block::default());
        }
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..count])
            .is_ok()
    })
}

/// The argon2id PHC string of `password` under a random salt, at the default cost.
fn hash_blocking(password: &[u8]) -> Result<String> {
    let failed = |error: &dyn std::fmt::Display| PasswordError::Hash(error.to_string());
    let argon2 = Argon2::default();
    let salt = argon2::password_hash::generate_salt();
    let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    if !compute(&argon2, password, &salt, &mut out) {
        return Err(PasswordError::Hash("argon2 refused its input".to_owned()));
    }
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` gives the output `phc` records, computed with the algorithm, version,
/// parameters and salt it names; the outputs are compared in constant time (`Output`'s
/// equality). A string that doesn't parse, or names what argon2 refuses, is a mismatch.
fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0_u8; expected.len()];
    compute(&argon2, password, salt.as_ref(), &mut out)
        && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_have_a_minimum_and_maximum_length() {
        assert!(matches!(
            check_new_password("short"),
            Err(PasswordError::TooShort)
        ));
        assert!(matches!(
            check_new_password("ééééééé"),
            Err(PasswordError::TooShort)
        ));
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password("éééééééé").is_ok());
        assert!(matches!(
            check_new_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        ));
    }

    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn hashing_runs_at_the_lowest_priority_on_a_thread_of_its_own() {
        let hasher = PasswordHasher::new(1);
        let own = || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = own();
        let (name, nice, policy) = hasher
            .run_blocking(|| {
                (
                    std::thread::current().name().map(str::to_owned),
                    rustix::process::getpriority_process(Some(rustix::thread::gettid())),
                    thread_priority::unix::thread_schedule_policy(),
                )
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("trove-argon2"));
        assert_eq!(nice.unwrap(), HASHING_NICE);
        assert_eq!(
            policy.unwrap(),
            thread_priority::unix::ThreadSchedulePolicy::Normal(
                thread_priority::unix::NormalThreadSchedulePolicy::Idle
            )
        );
        assert_eq!(
            thread_priority::unix::thread_schedule_policy().unwrap(),
            thread_priority::unix::ThreadSchedulePolicy::Normal(
                thread_priority::unix::NormalThreadSchedulePolicy::Other
            ),
            "the caller's own thread keeps the normal policy"
        );
        // The caller's own thread keeps its priority.
        assert_eq!(own(), before);
    }

    #[test]
    fn hashes_are_phc_strings_the_reference_verifier_accepts_and_the_reverse() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let ours = hash_blocking(b"correct horse").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        let reference = Argon2::default();
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(
            reference
                .verify_password(b"correct horsf", &parsed)
                .is_err()
        );
        assert!(verify_blocking(b"correct horse", &ours));
        assert!(!verify_blocking(b"correct horsf", &ours));
        assert_ne!(
            ours,
            hash_blocking(b"correct horse").unwrap(),
            "a salt of its own"
        );

        // Hashes the crate makes, at the default cost and at others (argon2i, fewer passes,
        // more memory than a thread keeps): the parameters come from the string.
        let others = [
            Argon2::default(),
            Argon2::new(
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(64, 1, 1, Some(24)).unwrap(),
            ),
            Argon2::new(
                Algorithm::Argon2id,
                Version::V0x10,
                Params::new(Params::DEFAULT_M_COST + 1024, 1, 1, None).unwrap(),
            ),
        ];
        for argon2 in others {
            let phc = argon2.hash_password(b"pass phrase").unwrap().to_string();
            assert!(verify_blocking(b"pass phrase", &phc), "{phc}");
            assert!(!verify_blocking(b"pass phrasf", &phc), "{phc}");
        }
        for broken in [
            "",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "plain text",
        ] {
            assert!(!verify_blocking(b"pass phrase", broken));
        }
    }

    #[test]
    fn a_thread_keeps_its_argon2_memory_at_the_default_cost() {
        std::thread::spawn(|| {
            let kept = || BLOCKS.with_borrow(|blocks| (blocks.len(), blocks.as_ptr()));
            assert_eq!(kept().0, 0);
            let phc = hash_blocking(b"pass phrase").unwrap();
            let (count, address) = kept();
            assert_eq!(count, Params::DEFAULT.block_count());
            assert!(verify_blocking(b"pass phrase", &phc));
            assert_eq!(kept(), (count, address), "the same memory, not a new one");
            // A costlier stored hash gets memory of its own for the computation.
            let costly = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(Params::DEFAULT_M_COST * 2, 1, 1, None).unwrap(),
            );
            let phc = argon2::password_hash::PasswordHasher::hash_password(&costly, b"x")
                .unwrap()
                .to_string();
            assert!(verify_blocking(b"x", &phc));
            assert_eq!(kept(), (count, address));
        })
        .join()
        .unwrap();
    }

    #[tokio::test]
    async fn computations_reuse_a_fixed_set_of_threads() {
        let hasher = PasswordHasher::new(2);
        let mut threads = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let id = hasher
                .run_blocking(|| format!("{:?}", std::thread::current().id()))
                .await
                .unwrap();
            threads.insert(id);
        }
        assert!(threads.len() <= 2, "{threads:?}");
        // A computation that panics fails alone; the threads keep serving.
        assert!(matches!(
            hasher.run_blocking(|| -> u8 { panic!("boom") }).await,
            Err(PasswordError::Task)
        ));
        for _ in 0..4 {
            assert_eq!(hasher.run_blocking(|| 7).await.unwrap(), 7);
        }
    }

    #[test]
    fn hashes_are_argon2id_with_the_owasp_parameters() {
        let phc = hash_blocking(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking(b"correct horse", &phc));
        assert!(!verify_blocking(b"wrong horse", &phc));
        assert!(!verify_blocking(b"correct horse", "not a phc string"));
    }

    #[tokio::test]
    async fn unknown_users_never_verify() {
        let hasher = PasswordHasher::new(1);
        let phc = hasher.hash("correct horse").await.unwrap();
        assert!(hasher.verify("correct horse", Some(&phc)).await.unwrap());
        assert!(!hasher.verify("correct horse", None).await.unwrap());
        assert!(
            !hasher
                .verify("trove-dummy-password-for-unknown-users", None)
                .await
                .unwrap()
        );
        assert!(!hasher.verify(&"x".repeat(5000), Some(&phc)).await.unwrap());
    }
}
