//! [`AuthService`]: accounts, logins, tokens, groups and API keys — everything the routes and
//! the [`Principal`] extractor need, over the records of [`super::store`].
//!
//! Each request looks its account up again (through a cache of a few seconds that local
//! writes invalidate at once), so a role change, disabling or deletion applies to the
//! account's existing tokens on its next request on this replica, and within the cache
//! lifetime on the others.
//!
//! Identities are never recycled (SPEC §9): every account has an immutable identity id that
//! its tokens and API keys are bound to, and deleting an account or a group leaves a
//! [`Tombstone`] that keeps its name from being created again until an admin frees it
//! ([`AuthService::free_name`], which first removes the old name from every profile and group).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use super::audit::{AuditHook, AuthEvent, AuthEventKind, TracingAuditHook};
use super::jwt::{IssuedToken, TokenError, TokenService, peek_algorithm};
use super::oidc::OidcVerifier;
use super::password::{PasswordError, PasswordHasher, check_new_password};
use super::principal::{CredentialKind, Principal, Session};
use super::rate_limit::{DEFAULT_MAX_KEYS, LoginLimits, LoginRateLimiter, SlidingWindow};
use super::store::{
    AccountRecord, ApiKeyRecord, GroupRecord, RecordStore, RevokedToken, StoreError, Tombstone,
    TombstoneKind,
};
use crate::cache::TtlCache;
use crate::config::Settings;
use crate::model::names::{self, NameError};
use crate::permissions::target::{
    Caching, TargetError, load_namespace_target, load_project_target,
};
use crate::permissions::{
    Caller, DirectoryGroupFilter, GrantTarget, MachineGrant, PrincipalRef, ProfileLoader,
    ProfileLocation, Role, Target, can_manage, can_read,
};
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

/// A new API key, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    /// The bearer credential `trove_<id>_<secret>` (a secret: never log it).
    pub key: String,
}

/// Accounts, logins, tokens, groups and API keys.
#[derive(Debug)]
pub struct AuthService {
    records: RecordStore,
    storage: Arc<dyn ObjectStore>,
    profiles: ProfileLoader,
    hasher: PasswordHasher,
    tokens: TokenService,
    oidc: Option<OidcVerifier>,
    limiter: LoginRateLimiter,
    registrations: SlidingWindow,
    directory_filter: DirectoryGroupFilter,
    allow_registration: bool,
    default_role: Role,
    accounts: TtlCache<Option<AccountRecord>>,
    groups: TtlCache<Arc<Vec<GroupRecord>>>,
    api_keys: TtlCache<Option<ApiKeyRecord>>,
    revoked: TtlCache<bool>,
    audit: RwLock<Arc<dyn AuditHook>>,
    /// Serialises changes that may remove an admin, so the last-admin check and the write are
    /// one step within this process (two concurrent demotions can't both pass the check).
    admin_changes: tokio::sync::Mutex<()>,
    /// The change feed: other replicas drop their cached accounts, groups, keys and
    /// revocations when one of those changes here.
    feed: std::sync::OnceLock<Arc<crate::feed::Feed>>,
}

/// A role from a validated setting (falls back to guest, which validation makes unreachable).
fn role_setting(value: &str) -> Role {
    value.parse().unwrap_or(Role::Guest)
}

fn now_secs() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Constant-time equality of two strings of equal length (digests).
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn valid_email(email: &str) -> bool {
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
    async fn changed(&self) {
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

    fn audit(
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

    /// Names of the local groups `username` belongs to (as member or owner).
    pub async fn groups_of(&self, username: &str) -> Result<Vec<String>> {
        Ok(self
            .all_groups()
            .await?
            .iter()
            .filter(|group| group.includes(username))
            .map(|group| group.name.clone())
            .collect())
    }

    /// The caller an account is now.
    async fn account_caller(&self, account: &AccountRecord) -> Result<Caller> {
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
                session: None,
                credential: CredentialKind::Token,
            })),
            _ => Ok(None),
        }
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool> {
        let (cached, generation) = self.revoked.get(jti);
        if let Some(revoked) = cached {
            return Ok(revoked);
        }
        let revoked = self.records.is_revoked(jti).await?;
        self.revoked.insert(jti, revoked, generation);
        Ok(revoked)
    }

    // ---------------------------------------------------------------- authentication

    /// Authenticates the value of an `Authorization` header (`None` → anonymous).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        let Some(header) = authorization else {
            return Ok(Principal::anonymous());
        };
        let (scheme, credential) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::UnsupportedScheme.into());
        }
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(TokenError::Missing.into());
        }
        if let Some(rest) = credential.strip_prefix(API_KEY_PREFIX) {
            return self.authenticate_api_key(rest).await;
        }
        let header = peek_algorithm(credential)?;
        match header.alg.as_str() {
            "HS256" => self.authenticate_token(credential).await,
            "RS256" | "ES256" => match &self.oidc {
                Some(oidc) if !oidc.keys_loaded() => Err(AuthError::IdentityProviderUnavailable),
                Some(oidc) => {
                    let identity = oidc.verify(credential, &header).await?;
                    let role: Role = identity
                        .role
                        .parse()
                        .map_err(|_| TokenError::InvalidClaims("unknown role".to_owned()))?;
                    if let Some(account) = self.account(&identity.username).await?
                        && account.disabled
                    {
                        return Err(TokenError::AccountDisabled.into());
                    }
                    Ok(Principal {
                        caller: Caller::Account {
                            groups: self.groups_of(&identity.username).await?,
                            directory_groups: self
                                .directory_filter
                                .apply(&identity.directory_groups),
                            username: identity.username,
                            role,
                        },
                        creator: None,
                        session: None,
                        credential: CredentialKind::External,
                    })
                }
                None => Err(TokenError::WrongAlgorithm.into()),
            },
            _ => Err(TokenError::WrongAlgorithm.into()),
        }
    }

    async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let claims = self.tokens.verify(token)?;
        let account = self
            .account(&claims.sub)
            .await?
            .ok_or(TokenError::UnknownAccount)?;
        if account.disabled {
            return Err(TokenError::AccountDisabled.into());
        }
        if self.is_revoked(&claims.jti).await? {
            return Err(TokenError::Revoked.into());
        }
        // A token of a deleted account never works for a later account of the same name.
        if claims.uid != account.id {
            return Err(TokenError::UnknownAccount.into());
        }
        if claims.generation != account.token_generation {
            return Err(TokenError::Outdated.into());
        }
        Ok(Principal {
            caller: self.account_caller(&account).await?,
            creator: None,
            session: Some(Session {
                jti: claims.jti,
                username: claims.sub,
                expires_at: claims.exp,
            }),
            credential: CredentialKind::Token,
        })
    }

    async fn authenticate_api_key(&self, rest: &str) -> Result<Principal> {
        let (id, secret) = rest.split_once('_').ok_or(TokenError::ApiKeyInvalid)?;
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
            return Err(TokenError::ApiKeyInvalid.into());
        }
        let (cached, generation) = self.api_keys.get(id);
        let record = match cached {
            Some(record) => record,
            None => {
                let record = self.records.api_key(id).await?;
                self.api_keys.insert(id, record.clone(), generation);
                record
            }
        };
        let record = record.ok_or(TokenError::ApiKeyInvalid)?;
        if !constant_time_eq(&sha256_hex(secret.as_bytes()), &record.secret_sha256)
            || record.disabled
        {
            return Err(TokenError::ApiKeyInvalid.into());
        }
        if record.expires_at.is_some_and(|expiry| expiry <= Utc::now()) {
            return Err(TokenError::ApiKeyExpired.into());
        }
        // The very account that created the key, never a later one of the same name.
        let creator = match self.account(&record.created_by).await? {
            Some(account) if !account.disabled && account.id == record.creator_id => {
                self.account_caller(&account).await?
            }
            _ => return Err(TokenError::ApiKeyInvalid.into()),
        };
        Ok(Principal {
            caller: Caller::Machine {
                name: record.name.clone(),
                scopes: record.scopes.clone(),
            },
            creator: Some(creator),
            session: None,
            credential: CredentialKind::ApiKey,
        })
    }

    // ---------------------------------------------------------------- accounts

    /// Refuses a retired name (`409 name_retired`).
    async fn check_not_retired(&self, kind: TombstoneKind, name: &str) -> Result<()> {
        if self.records.tombstone(kind, name).await?.is_some() {
            return Err(AuthError::NameRetired(format!("{} {name}", kind.as_str())));
        }
        Ok(())
    }

    /// Creates an account with a password (registration, CLI, bootstrap); a retired name is
    /// refused (`409 name_retired`).
    pub async fn create_account(
        &self,
        username: &str,
        password: &str,
        role: Role,
        email: Option<String>,
    ) -> Result<AccountRecord> {
        names::validate_username(username)?;
        check_new_password(password)?;
        if role == Role::Machine {
            return Err(AuthError::Unprocessable(
                "accounts can not have the machine role (use an API key)".to_owned(),
            ));
        }
        if let Some(email) = &email
            && !valid_email(email)
        {
            return Err(AuthError::Unprocessable("invalid email address".to_owned()));
        }
        self.check_not_retired(TombstoneKind::User, username)
            .await?;
        let account = AccountRecord {
            username: username.to_owned(),
            id: uuid::Uuid::new_v4().simple().to_string(),
            password_hash: Some(self.hasher.hash(password).await?),
            role,
            disabled: false,
            token_generation: 0,
            email,
            created_at: Utc::now(),
            updated_at: None,
        };
        match self.records.create_account(&account).await {
            Ok(()) => {}
            Err(StoreError::Storage(StorageError::AlreadyExists { .. })) => {
                return Err(AuthError::AlreadyExists(format!("user {username}")));
            }
            Err(error) => return Err(error.into()),
        }
        self.accounts.invalidate(username);
        // A deletion of the same name may have raced the check above: its tombstone wins.
        if let Err(error) = self.check_not_retired(TombstoneKind::User, username).await {
            self.records.delete_account(username).await?;
            self.accounts.invalidate(username);
            return Err(error);
        }
        self.changed().await;
        Ok(account)
    }

    /// `POST /auth/register`.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        email: Option<String>,
        address: Option<&str>,
    ) -> Result<AccountRecord> {
        if !self.allow_registration {
            return Err(AuthError::RegistrationDisabled);
        }
        // Every attempt counts (not only failures): this bounds account spam per address.
        self.registrations
            .acquire(address.unwrap_or("unknown"), std::time::Instant::now())
            .map_err(AuthError::RateLimited)?;
        let account = self
            .create_account(username, password, self.default_role, email)
            .await?;
        self.audit(AuthEventKind::Registered, username, address, None);
        Ok(account)
    }

    /// `POST /auth/login`: checks the password (rate limited) and issues a token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<IssuedToken> {
        let permit = match self.limiter.attempt(username, address) {
            Ok(permit) => permit,
            Err(wait) => {
                self.audit(
                    AuthEventKind::LoginRateLimited,
                    username,
                    Some(address),
                    Some("rate_limited"),
                );
                return Err(AuthError::RateLimited(wait));
            }
        };
        // Fresh read: a login must see the current password and state.
        let account = if names::validate_username(username).is_ok() {
            self.records.account(username).await?.map(|v| v.record)
        } else {
            None
        };
        let phc = account
            .as_ref()
            .and_then(|account| account.password_hash.as_deref());
        let verified = self.hasher.verify(password, phc).await?;
        let account = match account {
            Some(account) if verified => account,
            _ => {
                self.audit(
                    AuthEventKind::LoginFailed,
                    username,
                    Some(address),
                    Some("invalid_credentials"),
                );
                return Err(AuthError::InvalidCredentials);
            }
        };
        if account.disabled {
            self.audit(
                AuthEventKind::LoginFailed,
                username,
                Some(address),
                Some("account_disabled"),
            );
            return Err(TokenError::AccountDisabled.into());
        }
        self.limiter.succeeded(permit);
        let issued = self
            .tokens
            .issue(&account.username, &account.id, account.token_generation)
            .map_err(|error| AuthError::Unprocessable(format!("cannot issue a token: {error}")))?;
        self.audit(AuthEventKind::LoginSucceeded, username, Some(address), None);
        Ok(issued)
    }

    /// `POST /auth/logout`: revokes the session's token.
    pub async fn logout(&self, session: &Session) -> Result<()> {
        self.records
            .revoke(&RevokedToken {
                jti: session.jti.clone(),
                sub: session.username.clone(),
                expires_at: session.expires_at,
            })
            .await?;
        self.revoked.invalidate(&session.jti);
        self.audit(AuthEventKind::LoggedOut, &session.username, None, None);
        self.changed().await;
        Ok(())
    }

    /// `PUT /auth/password`: checks the old password (throttled like logins, per account and
    /// client address), stores the new one and bumps the token generation (every earlier
    /// token is refused); answers a fresh token.
    pub async fn change_password(
        &self,
        username: &str,
        old_password: &str,
        new_password: &str,
        address: &str,
    ) -> Result<IssuedToken> {
        check_new_password(new_password)?;
        let permit = match self.limiter.attempt(username, address) {
            Ok(permit) => permit,
            Err(wait) => {
                self.audit(
                    AuthEventKind::LoginRateLimited,
                    username,
                    Some(address),
                    Some("rate_limited"),
                );
                return Err(AuthError::RateLimited(wait));
            }
        };
        let account = self
            .records
            .account(username)
            .await?
            .map(|versioned| versioned.record)
            .ok_or(TokenError::UnknownAccount)?;
        if !self
            .hasher
            .verify(old_password, account.password_hash.as_deref())
            .await?
        {
            self.audit(
                AuthEventKind::LoginFailed,
                username,
                Some(address),
                Some("wrong_old_password"),
            );
            return Err(AuthError::InvalidCredentials);
        }
        self.limiter.succeeded(permit);
        let new_hash = self.hasher.hash(new_password).await?;
        let updated = self
            .records
            .update_account(username, |account: &mut AccountRecord| {
                account.password_hash = Some(new_hash.clone());
                account.token_generation += 1;
                account.updated_at = Some(Utc::now());
                Ok::<_, AuthError>(true)
            })
            .await?
            .ok_or(TokenError::UnknownAccount)??;
        self.accounts.invalidate(username);
        self.audit(AuthEventKind::PasswordChanged, username, None, None);
        self.changed().await;
        self.tokens
            .issue(&updated.username, &updated.id, updated.token_generation)
            .map_err(|error| AuthError::Unprocessable(format!("cannot issue a token: {error}")))
    }

    /// Every account.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        Ok(self.records.accounts().await?)
    }

    /// Enabled admins other than `except`.
    async fn other_enabled_admins(&self, except: &str) -> Result<usize> {
        Ok(self
            .records
            .accounts()
            .await?
            .iter()
            .filter(|account| {
                account.role == Role::Admin && !account.disabled && account.username != except
            })
            .count())
    }

    /// `PATCH /users/{u}`: role and disabled flag; the last enabled admin stays.
    pub async fn update_account(
        &self,
        username: &str,
        change: &AccountChange,
    ) -> Result<AccountRecord> {
        if change.role == Some(Role::Machine) {
            return Err(AuthError::Unprocessable(
                "accounts can not have the machine role (use an API key)".to_owned(),
            ));
        }
        let _serialised = self.admin_changes.lock().await;
        let guard = self.admin_guard().await?;
        let result = self.update_account_guarded(username, change).await;
        guard.release().await;
        let updated = result?;
        self.changed().await;
        Ok(updated)
    }

    /// Takes the guard of admin changes across every process on the bucket (other replicas,
    /// `trove user` next to a server): the last-admin check and the write are one step.
    async fn admin_guard(&self) -> Result<crate::storage::lease::Lease> {
        let holder = uuid::Uuid::now_v7().to_string();
        crate::storage::lease::Lease::acquire_within(
            &self.storage,
            "admin-changes",
            &holder,
            Duration::from_secs(30),
            Duration::from_secs(10),
        )
        .await?
        .ok_or_else(|| {
            StorageError::Unavailable("another admin change is in progress; retry".to_owned())
                .into()
        })
    }

    async fn update_account_guarded(
        &self,
        username: &str,
        change: &AccountChange,
    ) -> Result<AccountRecord> {
        let current = self
            .records
            .account(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?
            .record;
        let loses_admin = current.role == Role::Admin
            && !current.disabled
            && (change.role.is_some_and(|role| role != Role::Admin)
                || change.disabled == Some(true));
        if loses_admin && self.other_enabled_admins(username).await? == 0 {
            return Err(AuthError::LastAdmin);
        }
        let updated = self
            .records
            .update_account(username, |account: &mut AccountRecord| {
                let mut changed = false;
                if let Some(role) = change.role
                    && role != account.role
                {
                    account.role = role;
                    changed = true;
                }
                if let Some(disabled) = change.disabled
                    && disabled != account.disabled
                {
                    account.disabled = disabled;
                    if disabled {
                        account.token_generation += 1;
                    }
                    changed = true;
                }
                if changed {
                    account.updated_at = Some(Utc::now());
                }
                Ok::<_, AuthError>(changed)
            })
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))??;
        self.accounts.invalidate(username);
        Ok(updated)
    }

    /// `DELETE /users/{u}`; the last enabled admin stays. The name is retired (a tombstone
    /// keeps it from being registered again until an admin frees it), the account's API keys
    /// are deleted, and its tokens stop working at once (they are bound to its identity id).
    pub async fn delete_account(&self, username: &str, deleted_by: &str) -> Result<()> {
        let _serialised = self.admin_changes.lock().await;
        let guard = self.admin_guard().await?;
        let result = self.delete_account_guarded(username, deleted_by).await;
        guard.release().await;
        result?;
        self.changed().await;
        Ok(())
    }

    async fn delete_account_guarded(&self, username: &str, deleted_by: &str) -> Result<()> {
        let current = self
            .records
            .account(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?
            .record;
        if current.role == Role::Admin
            && !current.disabled
            && self.other_enabled_admins(username).await? == 0
        {
            return Err(AuthError::LastAdmin);
        }
        // The tombstone first: from now on the name can't be created again.
        self.records
            .put_tombstone(&Tombstone {
                name: username.to_owned(),
                kind: TombstoneKind::User,
                id: current.id.clone(),
                deleted_at: Utc::now(),
                deleted_by: deleted_by.to_owned(),
            })
            .await?;
        self.records.delete_account(username).await?;
        self.accounts.invalidate(username);
        self.delete_api_keys_of(username).await?;
        Ok(())
    }

    /// Deletes every API key created by `username` (its account is gone).
    async fn delete_api_keys_of(&self, username: &str) -> Result<()> {
        for key in self.records.api_keys().await? {
            if key.created_by == username {
                self.records.delete_api_key(&key.id).await?;
                self.api_keys.invalidate(&key.id);
            }
        }
        Ok(())
    }

    /// The tombstone of a retired user or group name, if any.
    pub async fn tombstone(&self, kind: TombstoneKind, name: &str) -> Result<Option<Tombstone>> {
        let valid = match kind {
            TombstoneKind::User => names::validate_username(name),
            TombstoneKind::Group => names::validate_group_name(name),
        };
        if valid.is_err() {
            return Ok(None);
        }
        Ok(self.records.tombstone(kind, name).await?)
    }

    /// Frees a retired name (admins): removes the old principal from every profile
    /// (`profiles` is the loader whose cache must see the change) and, for a user, from every
    /// group's members and owners; deletes API keys its account left; then removes the
    /// tombstone so the name can be created again. `404` when the name is not retired.
    pub async fn free_name(
        &self,
        kind: TombstoneKind,
        name: &str,
        profiles: &ProfileLoader,
    ) -> Result<FreedName> {
        let tombstone = self
            .tombstone(kind, name)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("retired {} {name}", kind.as_str())))?;
        let principal = match kind {
            TombstoneKind::User => PrincipalRef::User(name.to_owned()),
            TombstoneKind::Group => PrincipalRef::Group(name.to_owned()),
        };
        let locations = profiles
            .remove_principal_everywhere(&principal)
            .await
            .map_err(|error| match error {
                crate::permissions::LoaderError::Storage(storage) => AuthError::from(storage),
                other => AuthError::Unprocessable(other.to_string()),
            })?;
        let mut groups = Vec::new();
        if kind == TombstoneKind::User {
            for group in self.records.groups().await? {
                if !group.includes(name) {
                    continue;
                }
                self.records
                    .update_group(&group.name, |group: &mut GroupRecord| {
                        group.members.retain(|member| member != name);
                        group.owners.retain(|owner| owner != name);
                        Ok::<_, AuthError>(true)
                    })
                    .await?;
                groups.push(group.name);
            }
            self.groups.invalidate("");
            self.delete_api_keys_of(name).await?;
        }
        self.records.delete_tombstone(kind, name).await?;
        Ok(FreedName {
            tombstone,
            profiles: locations,
            groups,
        })
    }

    /// `TROVE_BOOTSTRAP_ADMIN`: when no enabled admin exists, creates `username` as admin (or
    /// promotes and re-enables it, with the given password). Answers whether it acted.
    pub async fn ensure_bootstrap_admin(&self, username: &str, password: &str) -> Result<bool> {
        if self.other_enabled_admins("").await? > 0 {
            return Ok(false);
        }
        match self
            .create_account(username, password, Role::Admin, None)
            .await
        {
            Ok(_) => Ok(true),
            Err(AuthError::AlreadyExists(_)) => {
                let hash = self.hasher.hash(password).await?;
                self.records
                    .update_account(username, |account: &mut AccountRecord| {
                        account.role = Role::Admin;
                        account.disabled = false;
                        account.password_hash = Some(hash.clone());
                        account.token_generation += 1;
                        account.updated_at = Some(Utc::now());
                        Ok::<_, AuthError>(true)
                    })
                    .await?
                    .ok_or_else(|| AuthError::NotFound(format!("user {username}")))??;
                self.accounts.invalidate(username);
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    // ---------------------------------------------------------------- groups

    /// `POST /groups`: admins and maintainers create groups; the creator becomes an owner.
    pub async fn create_group(
        &self,
        principal: &Principal,
        name: &str,
        description: String,
        members: Vec<String>,
    ) -> Result<GroupRecord> {
        let creator = self.require_account(principal)?;
        if !principal.caller.role().is_some_and(Role::can_own) {
            return Err(AuthError::Forbidden(
                "only admins and maintainers create groups".to_owned(),
            ));
        }
        names::validate_group_name(name)?;
        for member in &members {
            names::validate_username(member)?;
        }
        let mut members = members;
        members.sort();
        members.dedup();
        self.check_not_retired(TombstoneKind::Group, name).await?;
        let group = GroupRecord {
            name: name.to_owned(),
            description,
            owners: vec![creator.to_owned()],
            members,
            created_at: Utc::now(),
            created_by: creator.to_owned(),
        };
        match self.records.create_group(&group).await {
            Ok(()) => {}
            Err(StoreError::Storage(StorageError::AlreadyExists { .. })) => {
                return Err(AuthError::AlreadyExists(format!("group {name}")));
            }
            Err(error) => return Err(error.into()),
        }
        self.groups.invalidate("");
        if let Err(error) = self.check_not_retired(TombstoneKind::Group, name).await {
            self.records.delete_group(name).await?;
            self.groups.invalidate("");
            return Err(error);
        }
        Ok(group)
    }

    fn require_account<'a>(&self, principal: &'a Principal) -> Result<&'a str> {
        match &principal.caller {
            Caller::Anonymous => Err(AuthError::Unauthenticated),
            Caller::Machine { .. } => Err(AuthError::Forbidden(
                "machine accounts can not do this".to_owned(),
            )),
            Caller::Account { username, .. } => Ok(username),
        }
    }

    /// Groups the caller may see: all for admins, else those it owns or belongs to.
    pub async fn visible_groups(&self, principal: &Principal) -> Result<Vec<GroupRecord>> {
        let username = self.require_account(principal)?;
        let groups = self.records.groups().await?;
        Ok(groups
            .into_iter()
            .filter(|group| principal.is_admin() || group.includes(username))
            .collect())
    }

    /// One group, if the caller may see it.
    pub async fn visible_group(&self, principal: &Principal, name: &str) -> Result<GroupRecord> {
        let username = self.require_account(principal)?;
        let not_found = || AuthError::NotFound(format!("group {name}"));
        if names::validate_group_name(name).is_err() {
            return Err(not_found());
        }
        let group = self
            .records
            .group(name)
            .await?
            .ok_or_else(not_found)?
            .record;
        if principal.is_admin() || group.includes(username) {
            Ok(group)
        } else {
            Err(not_found())
        }
    }

    /// A group the caller may manage (admins, owners); members get `403`, others `404`.
    async fn managed_group(&self, principal: &Principal, name: &str) -> Result<GroupRecord> {
        let group = self.visible_group(principal, name).await?;
        let username = principal.username().unwrap_or_default();
        if principal.is_admin() || group.owners.iter().any(|owner| owner == username) {
            Ok(group)
        } else {
            Err(AuthError::Forbidden(
                "only the group's owners or admins manage it".to_owned(),
            ))
        }
    }

    /// `PUT /groups/{g}/members`.
    pub async fn change_members(
        &self,
        principal: &Principal,
        name: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<GroupRecord> {
        self.managed_group(principal, name).await?;
        for member in add.iter().chain(remove) {
            names::validate_username(member)?;
        }
        let updated = self
            .records
            .update_group(name, |group: &mut GroupRecord| {
                let before = group.members.clone();
                group.members.retain(|member| !remove.contains(member));
                group.members.extend(add.iter().cloned());
                group.members.sort();
                group.members.dedup();
                Ok::<_, AuthError>(group.members != before)
            })
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("group {name}")))??;
        self.groups.invalidate("");
        self.changed().await;
        Ok(updated)
    }

    /// `DELETE /groups/{g}`: the name is retired (a tombstone keeps it from being created
    /// again, by anyone, until an admin frees it), so no new group inherits its grants.
    pub async fn delete_group(&self, principal: &Principal, name: &str) -> Result<()> {
        self.managed_group(principal, name).await?;
        self.records
            .put_tombstone(&Tombstone {
                name: name.to_owned(),
                kind: TombstoneKind::Group,
                id: String::new(),
                deleted_at: Utc::now(),
                deleted_by: principal.actor(),
            })
            .await?;
        self.records.delete_group(name).await?;
        self.groups.invalidate("");
        self.changed().await;
        Ok(())
    }

    // ---------------------------------------------------------------- api keys

    /// The permission target of a key scope, read fresh from storage.
    async fn scope_target(&self, scope: &GrantTarget) -> Result<Target> {
        // The one target loader (uncached: a key's scope is judged on the latest profile);
        // a damaged record or profile is an internal error, as on every other route.
        let damaged = |error: TargetError| match error {
            TargetError::Storage(storage) => AuthError::from(storage),
            other => AuthError::Store(StoreError::Corrupt {
                key: match &other {
                    TargetError::Corrupt { key, .. } => key.clone(),
                    _ => String::from("permission profile"),
                },
                message: other.to_string(),
            }),
        };
        match scope {
            GrantTarget::Project(project) => {
                names::validate_project_id(project)?;
                let loaded = load_project_target(
                    self.storage.as_ref(),
                    &self.profiles,
                    project,
                    Caching::Uncached,
                )
                .await
                .map_err(damaged)?
                .ok_or_else(|| AuthError::NotFound(format!("project {project}")))?;
                // A key's scope never creates projects: `auto_create` plays no part.
                Ok(Target {
                    auto_create: false,
                    ..loaded.target
                })
            }
            GrantTarget::Namespace(namespace) => {
                names::validate_namespace(namespace)?;
                let loaded = load_namespace_target(
                    self.storage.as_ref(),
                    &self.profiles,
                    namespace,
                    Caching::Uncached,
                )
                .await
                .map_err(damaged)?
                .ok_or_else(|| AuthError::NotFound(format!("namespace {namespace}")))?;
                Ok(loaded.target)
            }
        }
    }

    /// `POST /api-keys`: admins for anything; owners (who may manage) for what they own, their
    /// ownership judged with grant expiry at `grants_now` (the app's clock).
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        scopes: Vec<MachineGrant>,
        expires_in_days: Option<u32>,
        grants_now: DateTime<Utc>,
    ) -> Result<CreatedApiKey> {
        let creator = self.require_account(principal)?.to_owned();
        names::validate_username(name)?;
        if scopes.is_empty() || scopes.len() > 100 {
            return Err(AuthError::Unprocessable(
                "an api key needs between 1 and 100 scopes".to_owned(),
            ));
        }
        let days = expires_in_days.unwrap_or(DEFAULT_API_KEY_DAYS);
        if days == 0 || days > MAX_API_KEY_DAYS {
            return Err(AuthError::Unprocessable(format!(
                "expires_in_days must be between 1 and {MAX_API_KEY_DAYS}"
            )));
        }
        let now = Utc::now();
        for scope in &scopes {
            let target = self.scope_target(&scope.target).await?;
            // A scope the creator cannot read answers as one that does not exist (SPEC §3:
            // never reveal existence); the model test found the `403` that told them apart.
            if !principal.is_admin() && !can_read(&principal.caller, &target, grants_now) {
                return Err(match &scope.target {
                    GrantTarget::Project(project) => {
                        AuthError::NotFound(format!("project {project}"))
                    }
                    GrantTarget::Namespace(namespace) => {
                        AuthError::NotFound(format!("namespace {namespace}"))
                    }
                });
            }
            if !principal.is_admin() && !can_manage(&principal.caller, &target, grants_now) {
                return Err(AuthError::Forbidden(
                    "api keys can only be created for what you own".to_owned(),
                ));
            }
        }
        let creator_id = self
            .account(&creator)
            .await?
            .map(|account| account.id)
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut secret = [0_u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let record = ApiKeyRecord {
            id: id.clone(),
            name: name.to_owned(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            scopes,
            created_by: creator,
            creator_id,
            created_at: now,
            expires_at: Some(now + chrono::Duration::days(i64::from(days))),
            disabled: false,
        };
        self.records.create_api_key(&record).await?;
        self.api_keys.invalidate(&id);
        Ok(CreatedApiKey {
            key: format!("{API_KEY_PREFIX}{id}_{secret}"),
            record,
        })
    }

    /// `GET /api-keys`: admins see every key, others their own.
    pub async fn list_api_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyRecord>> {
        let username = self.require_account(principal)?;
        Ok(self
            .records
            .api_keys()
            .await?
            .into_iter()
            .filter(|key| principal.is_admin() || key.created_by == username)
            .collect())
    }

    /// `PATCH /api-keys/{id}`: disables or re-enables a key (admins, or the key's creator); a
    /// disabled key is refused at once on this replica, within the cache lifetime elsewhere.
    pub async fn set_api_key_disabled(
        &self,
        principal: &Principal,
        id: &str,
        disabled: bool,
    ) -> Result<ApiKeyRecord> {
        let username = self.require_account(principal)?;
        let not_found = || AuthError::NotFound(format!("api key {id}"));
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let key = self.records.api_key(id).await?.ok_or_else(not_found)?;
        if !principal.is_admin() && key.created_by != username {
            return Err(not_found());
        }
        let updated = self
            .records
            .update_api_key(id, |key: &mut ApiKeyRecord| {
                let changed = key.disabled != disabled;
                key.disabled = disabled;
                Ok::<_, AuthError>(changed)
            })
            .await?
            .ok_or_else(not_found)??;
        self.api_keys.invalidate(id);
        self.changed().await;
        Ok(updated)
    }

    /// `DELETE /api-keys/{id}`: admins, or the key's creator.
    pub async fn delete_api_key(&self, principal: &Principal, id: &str) -> Result<()> {
        let username = self.require_account(principal)?;
        let not_found = || AuthError::NotFound(format!("api key {id}"));
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let key = self.records.api_key(id).await?.ok_or_else(not_found)?;
        if !principal.is_admin() && key.created_by != username {
            return Err(not_found());
        }
        self.records.delete_api_key(id).await?;
        self.api_keys.invalidate(id);
        self.changed().await;
        Ok(())
    }

    /// Deletes records of revoked tokens that have expired anyway (housekeeping).
    pub async fn purge_expired_revocations(&self) -> Result<usize> {
        let now = now_secs();
        let mut purged = 0;
        for token in self.records.revoked_tokens().await? {
            if token.expires_at + super::jwt::LEEWAY_SECS < now {
                self.records.forget_revoked(&token.jti).await?;
                crate::crash::point("revocation_purge.deleted");
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// What freeing a retired name changed.
#[derive(Debug, Clone)]
pub struct FreedName {
    /// The tombstone that was removed.
    pub tombstone: Tombstone,
    /// The profiles the old principal was removed from.
    pub profiles: Vec<ProfileLocation>,
    /// The groups the old user was removed from.
    pub groups: Vec<String>,
}

/// When a key expires, as shown to clients.
#[must_use]
pub fn expiry_of(record: &ApiKeyRecord) -> Option<DateTime<Utc>> {
    record.expires_at
}

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
