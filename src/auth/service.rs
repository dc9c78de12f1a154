//! [`AuthService`]: accounts, logins, tokens, groups and API keys — everything the routes and
//! the [`Principal`] extractor need, over the records of [`super::store`]. This file holds the
//! service's state, its caches and the lookups every concern shares; the methods of each
//! concern live beside it: [`super::sessions`] (authentication, login, logout, password
//! change, revocations), [`super::accounts`], [`super::groups`] and [`super::api_keys`].
//!
//! Each request looks its account up again (through a cache of a few seconds that local
//! writes invalidate at once), so a role change, disabling or deletion applies to the
//! account's existing tokens on its next request on this replica, and within the cache
//! lifetime on the others.
//!
//! Identities are never recycled (SPEC §9): every account has an immutable identity id that
//! its tokens and API keys are bound to, and deleting an account or a group leaves a
//! [`Tombstone`](super::store::Tombstone) that keeps its name from being created again until an admin frees it
//! ([`AuthService::free_name`], which first removes the old name from every profile and group).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest as _, Sha256};

use super::audit::{AuditHook, AuthEvent, AuthEventKind, TracingAuditHook};
use super::jwt::{TokenError, TokenService};
use super::oidc::OidcVerifier;
use super::password::{PasswordError, PasswordHasher};
use super::principal::{CredentialKind, Principal};
use super::rate_limit::{DEFAULT_MAX_KEYS, LoginLimits, LoginRateLimiter, SlidingWindow};
use super::store::{AccountRecord, ApiKeyRecord, GroupRecord, RecordStore, StoreError};
use crate::cache::TtlCache;
use crate::config::Settings;
use crate::model::names::{self, NameError};
use crate::permissions::{Caller, DirectoryGroupFilter, ProfileLoader, Role};
use crate::storage::{ObjectStore, StorageError};

/// How long a looked-up account, group list, API key or revocation is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Prefix of API-key bearer credentials.
pub const API_KEY_PREFIX: &str = "trove_";
/// Longest accepted API-key lifetime.
pub const MAX_API_KEY_DAYS: u32 = 3650;
/// Default API-key lifetime.
pub const DEFAULT_API_KEY_DAYS: u32 = 90;
/// Window of the registration limit per client address.
pub const REGISTRATION_WINDOW: Duration = Duration::from_secs(3600);
/// Longest client-supplied name kept in an audit event or a log line (longer ones are cut and
/// marked): what an unauthenticated client can make the service store stays bounded.
pub const MAX_LOGGED_NAME_BYTES: usize = 64;

/// `value` cut to [`MAX_LOGGED_NAME_BYTES`] (at a character boundary) and marked with `…` when
/// longer: for names a client typed, before they reach an audit event or a log line.
#[must_use]
pub fn bounded_name(value: &str) -> String {
    if value.len() <= MAX_LOGGED_NAME_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_LOGGED_NAME_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
}

/// Why an account operation failed (the API maps each to its status and code).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A bearer credential was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Self-registration is switched off.
    #[error("registration is disabled on this instance")]
    RegistrationDisabled,
    /// Wrong username or password (same answer whether or not the account exists).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many login attempts; retry after this many seconds.
    #[error("too many login attempts, retry later")]
    RateLimited(u64),
    /// A name breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A password breaks the length rules.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The request is well-formed but its content is invalid.
    #[error("{0}")]
    Unprocessable(String),
    /// The thing to create exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The name belonged to a deleted account or group and is retired until an admin frees it.
    #[error("{0} belonged to a deleted identity and is retired; an admin can free it")]
    NameRetired(String),
    /// The external identity provider's keys are not loaded yet (its JWKS URL was
    /// unreachable); retry shortly.
    #[error("the identity provider's keys are not available yet, retry shortly")]
    IdentityProviderUnavailable,
    /// Nothing here (or nothing the caller may know about).
    #[error("{0} not found")]
    NotFound(String),
    /// The change would leave no enabled admin.
    #[error("the last admin can not be demoted, disabled or deleted")]
    LastAdmin,
    /// Authentication is required.
    #[error("authentication required")]
    Unauthenticated,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// Storage or record failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<StorageError> for AuthError {
    fn from(error: StorageError) -> Self {
        Self::Store(StoreError::Storage(error))
    }
}

/// Result alias of this module.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Changes an admin may make to an account.
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    /// New role.
    pub role: Option<Role>,
    /// Disable or re-enable.
    pub disabled: Option<bool>,
}

/// Accounts, logins, tokens, groups and API keys.
#[derive(Debug)]
pub struct AuthService {
    pub(super) records: RecordStore,
    pub(super) storage: Arc<dyn ObjectStore>,
    pub(super) profiles: ProfileLoader,
    pub(super) hasher: PasswordHasher,
    pub(super) tokens: TokenService,
    pub(super) oidc: Option<OidcVerifier>,
    pub(super) limiter: LoginRateLimiter,
    pub(super) registrations: SlidingWindow,
    pub(super) directory_filter: DirectoryGroupFilter,
    pub(super) allow_registration: bool,
    pub(super) default_role: Role,
    pub(super) accounts: TtlCache<Option<AccountRecord>>,
    pub(super) groups: TtlCache<Arc<Vec<GroupRecord>>>,
    /// [`AuthService::groups_of`]'s answers by username, each with the group list it was
    /// computed from: a `Weak` keeps that list's allocation, so its address cannot be reused
    /// by a newer list while the entry exists, without keeping old lists' records alive. At
    /// most [`MEMBERSHIPS_KEPT`] entries (emptied when full).
    pub(super) memberships: std::sync::Mutex<MembershipMemo>,
    pub(super) api_keys: TtlCache<Option<ApiKeyRecord>>,
    pub(super) revoked: TtlCache<bool>,
    pub(super) audit: RwLock<Arc<dyn AuditHook>>,
    /// Serialises changes that may remove an admin, so the last-admin check and the write are
    /// one step within this process (two concurrent demotions can't both pass the check).
    pub(super) admin_changes: tokio::sync::Mutex<()>,
    /// The change feed: other replicas drop their cached accounts, groups, keys and
    /// revocations when one of those changes here.
    pub(super) feed: std::sync::OnceLock<Arc<crate::feed::Feed>>,
}

/// [`AuthService::groups_of`]'s kept answers: username → (the group list they were computed
/// from, the names).
pub(super) type MembershipMemo =
    std::collections::HashMap<String, (std::sync::Weak<Vec<GroupRecord>>, Arc<[String]>)>;

/// Accounts whose group names [`AuthService::groups_of`] keeps.
const MEMBERSHIPS_KEPT: usize = 4096;

/// A role from a validated setting (falls back to guest, which validation makes unreachable).
pub(super) fn role_setting(value: &str) -> Role {
    value.parse().unwrap_or(Role::Guest)
}

pub(super) fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Constant-time equality of two strings of equal length (digests).
pub(super) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

pub(super) fn valid_email(email: &str) -> bool {
    email.len() <= 254
        && !email.chars().any(|c| c.is_control() || c.is_whitespace())
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

impl AuthService {
    /// Builds the service: `jwt_secret` signs tokens; `oidc` verifies external tokens.
    pub fn new(
        settings: &Settings,
        storage: Arc<dyn ObjectStore>,
        jwt_secret: &[u8],
        oidc: Option<OidcVerifier>,
    ) -> Result<Self, regex::Error> {
        let auth = &settings.auth;
        Ok(Self {
            records: RecordStore::new(storage.clone()),
            profiles: ProfileLoader::new(storage.clone()),
            storage,
            hasher: PasswordHasher::default(),
            tokens: TokenService::new(
                jwt_secret,
                &auth.jwt_issuer,
                &auth.jwt_audience,
                auth.token_ttl_secs,
            ),
            oidc,
            limiter: LoginRateLimiter::new(LoginLimits {
                per_user_address: auth.login_rate_limit_per_user_ip,
                per_user: auth.login_rate_limit_per_user,
                per_address: auth.login_rate_limit_per_ip,
                window: Duration::from_secs(auth.login_rate_limit_window_secs),
                max_keys: DEFAULT_MAX_KEYS,
            }),
            registrations: SlidingWindow::new(auth.register_rate_limit_per_ip, REGISTRATION_WINDOW),
            directory_filter: DirectoryGroupFilter::new(&settings.oidc.group_pattern)?,
            allow_registration: auth.allow_registration,
            default_role: role_setting(&auth.default_role),
            accounts: TtlCache::new(CACHE_TTL),
            groups: TtlCache::new(CACHE_TTL),
            memberships: std::sync::Mutex::default(),
            api_keys: TtlCache::new(CACHE_TTL),
            revoked: TtlCache::new(CACHE_TTL),
            audit: RwLock::new(Arc::new(TracingAuditHook)),
            admin_changes: tokio::sync::Mutex::new(()),
            feed: std::sync::OnceLock::new(),
        })
    }

    /// Tells other replicas through `feed` when accounts, groups, keys or revocations change.
    pub fn set_feed(&self, feed: Arc<crate::feed::Feed>) {
        let _ = self.feed.set(feed);
    }

    /// Drops every cached account, group list, API key, revocation and profile (another
    /// replica changed them).
    pub fn invalidate_caches(&self) {
        self.accounts.invalidate_all();
        self.groups.invalidate_all();
        self.api_keys.invalidate_all();
        self.revoked.invalidate_all();
        self.profiles.invalidate_all();
    }

    /// Publishes that accounts changed. Best effort: the mutation is stored already, and
    /// other replicas' caches lapse within [`CACHE_TTL`] anyway.
    pub(super) async fn changed(&self) {
        if let Some(feed) = self.feed.get()
            && let Err(error) = feed.publish(crate::feed::Change::Accounts).await
        {
            tracing::warn!(%error, "change feed: account change not published");
        }
    }

    /// Replaces the audit hook (the audit module installs its durable one).
    pub fn set_audit_hook(&self, hook: Arc<dyn AuditHook>) {
        if let Ok(mut current) = self.audit.write() {
            *current = hook;
        }
    }

    pub(super) fn audit(
        &self,
        kind: AuthEventKind,
        username: &str,
        address: Option<&str>,
        reason: Option<&'static str>,
    ) {
        let hook = match self.audit.read() {
            Ok(hook) => hook.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        hook.record(AuthEvent {
            kind,
            // Bounded: a client can type anything as a username.
            username: bounded_name(username),
            address: address.map(str::to_owned),
            reason,
            at: Utc::now(),
        });
    }

    /// The record store (for the CLI and tests).
    #[must_use]
    pub fn records(&self) -> &RecordStore {
        &self.records
    }

    /// The password hasher.
    #[must_use]
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Token lifetime in seconds.
    #[must_use]
    pub fn token_ttl_secs(&self) -> u64 {
        self.tokens.ttl_secs()
    }

    // ---------------------------------------------------------------- lookups

    /// An account, through the cache.
    pub async fn account(&self, username: &str) -> Result<Option<AccountRecord>> {
        if names::validate_username(username).is_err() {
            return Ok(None);
        }
        let (cached, generation) = self.accounts.get(username);
        if let Some(account) = cached {
            return Ok(account);
        }
        let account = self
            .records
            .account(username)
            .await?
            .map(|versioned| versioned.record);
        self.accounts.insert(username, account.clone(), generation);
        Ok(account)
    }

    /// Every group, through the cache.
    pub async fn all_groups(&self) -> Result<Arc<Vec<GroupRecord>>> {
        let (cached, generation) = self.groups.get("");
        if let Some(groups) = cached {
            return Ok(groups);
        }
        let groups = Arc::new(self.records.groups().await?);
        self.groups.insert("", groups.clone(), generation);
        Ok(groups)
    }

    /// Names of the local groups `username` belongs to (as member or owner). A function of
    /// the cached group list and the name alone, so the answer is kept with the list it came
    /// from and handed out again (shared) while that list is the cached one: every request of
    /// an account asks, and scanning every group and copying each name per request was a
    /// twentieth of a cheap route's CPU for an account in 50 groups.
    pub async fn groups_of(&self, username: &str) -> Result<Arc<[String]>> {
        let groups = self.all_groups().await?;
        let list = Arc::as_ptr(&groups);
        let lock = || {
            self.memberships
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((from, names)) = lock().get(username)
            && std::ptr::eq(from.as_ptr(), list)
        {
            return Ok(names.clone());
        }
        let names: Arc<[String]> = groups
            .iter()
            .filter(|group| group.includes(username))
            .map(|group| group.name.clone())
            .collect();
        let mut memberships = lock();
        if memberships.len() >= MEMBERSHIPS_KEPT && !memberships.contains_key(username) {
            memberships.clear();
        }
        memberships.insert(
            username.to_owned(),
            (Arc::downgrade(&groups), names.clone()),
        );
        Ok(names)
    }

    /// The caller an account is now.
    pub(super) async fn account_caller(&self, account: &AccountRecord) -> Result<Caller> {
        Ok(Caller::Account {
            username: account.username.clone(),
            role: account.role,
            groups: self.groups_of(&account.username).await?,
            directory_groups: Vec::new(),
        })
    }

    /// The principal an enabled local account acts as now (for decisions made on its behalf
    /// outside a request of its own, e.g. a presigned URL it obtained); `None` when the account
    /// is gone or disabled.
    pub async fn principal_for_account(&self, username: &str) -> Result<Option<Principal>> {
        match self.account(username).await? {
            Some(account) if !account.disabled => Ok(Some(Principal {
                caller: self.account_caller(&account).await?,
                creator: None,
                api_key: None,
                account_id: Some(account.id.clone()).filter(|id| !id.is_empty()),
                session: None,
                credential: CredentialKind::Token,
            })),
            _ => Ok(None),
        }
    }

    /// The principal a caller of the external identity provider acts as now, from what its
    /// token said then (`role`, `directory_groups`) and its local groups now; `None` when a
    /// local account of that name is disabled (its tokens are refused too).
    pub async fn principal_for_external(
        &self,
        username: &str,
        role: Role,
        directory_groups: &[String],
    ) -> Result<Option<Principal>> {
        if self
            .account(username)
            .await?
            .is_some_and(|account| account.disabled)
        {
            return Ok(None);
        }
        Ok(Some(Principal {
            caller: Caller::Account {
                username: username.to_owned(),
                role,
                groups: self.groups_of(username).await?,
                directory_groups: directory_groups.to_vec(),
            },
            creator: None,
            api_key: None,
            account_id: None,
            session: None,
            credential: CredentialKind::External,
        }))
    }

    pub(super) async fn is_revoked(&self, jti: &str) -> Result<bool> {
        let (cached, generation) = self.revoked.get(jti);
        if let Some(revoked) = cached {
            return Ok(revoked);
        }
        let revoked = self.records.is_revoked(jti).await?;
        self.revoked.insert(jti, revoked, generation);
        Ok(revoked)
    }
}

pub use crate::auth::accounts::FreedName;
pub use crate::auth::api_keys::{CreatedApiKey, expiry_of};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    #[test]
    fn names_reaching_logs_are_bounded() {
        assert_eq!(bounded_name("alice"), "alice");
        let huge = "é".repeat(1_000_000);
        let bounded = bounded_name(&huge);
        assert!(bounded.len() <= MAX_LOGGED_NAME_BYTES + '…'.len_utf8());
        assert!(bounded.ends_with('…'));
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(valid_email("alice@example.org"));
        assert!(!valid_email("alice"));
        assert!(!valid_email("a b@example.org"));
        assert!(!valid_email("@example.org"));
    }
}
