//! Accounts, local groups, API keys, revoked tokens and tombstones, stored as JSON records in
//! object storage (SPEC §2: `..meta/users/<username>.json`, `..meta/groups/<group>.json`,
//! `..meta/api-keys/<key-id>.json`, plus `..meta/revoked-tokens/<jti>.json` and
//! `..meta/tombstones/{users,groups}/<name>.json`).
//!
//! A tombstone is what a deleted account or group leaves behind (SPEC §9: identities are never
//! recycled): while it exists, the name cannot be created again; an admin frees it explicitly,
//! which first removes the old name from every profile and group.
//!
//! Creation uses [`PutCondition::IfAbsent`], so of many concurrent creators of one name exactly
//! one wins; updates use [`PutCondition::IfMatch`] on the ETag read, retried a few times on a
//! lost race. No caching here: [`super::service::AuthService`] caches on top.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::permissions::{MachineGrant, Role};
use crate::storage::records::{self, Edit, Retry};
use crate::storage::{ObjectStore, PutCondition, keys};

/// Result alias of this module.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What reading or writing a record can fail with: the error of [`crate::storage::records`].
pub use crate::storage::records::RecordError as StoreError;
/// A record with the ETag it was read at.
pub use crate::storage::records::Versioned;

/// A local account (`..meta/users/<username>.json`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The username.
    pub username: String,
    /// Immutable identity of this account (a UUID made at creation; empty for accounts made
    /// before identities existed). Tokens and API keys are bound to it, so those of a deleted
    /// account never work for a later account of the same name.
    #[serde(default)]
    pub id: String,
    /// argon2id PHC string; `None` for accounts that can't log in with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The role.
    pub role: Role,
    /// A disabled account can't log in and its tokens are refused.
    #[serde(default)]
    pub disabled: bool,
    /// Bumped by a password change or by disabling: tokens of earlier generations are refused.
    #[serde(default)]
    pub token_generation: u64,
    /// Optional e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the password hash.
        f.debug_struct("AccountRecord")
            .field("username", &self.username)
            .field("id", &self.id)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("token_generation", &self.token_generation)
            .finish_non_exhaustive()
    }
}

/// A local group (`..meta/groups/<group>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupRecord {
    /// Group name (`group:<name>` as a principal).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Usernames who manage the membership (and are members themselves).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Usernames of the members.
    #[serde(default)]
    pub members: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Creator.
    #[serde(default)]
    pub created_by: String,
}

impl GroupRecord {
    /// Whether `username` is a member or an owner.
    #[must_use]
    pub fn includes(&self, username: &str) -> bool {
        self.members
            .iter()
            .chain(&self.owners)
            .any(|name| name == username)
    }
}

/// A machine credential (`..meta/api-keys/<key-id>.json`). The secret is kept only as a
/// SHA-256 digest: it is 256 random bits, so a slow hash adds nothing but latency.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Key id (public, part of the bearer string).
    pub id: String,
    /// Machine name: the key acts as principal `machine:<name>`.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// What the key may reach.
    pub scopes: Vec<MachineGrant>,
    /// Username of the creator (the key never does more than they may).
    pub created_by: String,
    /// Identity id of the creator's account ([`AccountRecord::id`]): the key works only while
    /// that very account exists, never for a later account of the same name.
    #[serde(default)]
    pub creator_id: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// A disabled key is refused (`401 api_key_invalid`) until it is enabled again.
    #[serde(default)]
    pub disabled: bool,
}

impl fmt::Debug for ApiKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_by", &self.created_by)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A revoked access token (`..meta/revoked-tokens/<jti>.json`), kept until it would expire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The token id.
    pub jti: String,
    /// Its account.
    pub sub: String,
    /// Its `exp` (seconds since the epoch): after it, the record can be deleted.
    pub expires_at: u64,
}

/// `..meta/revoked-tokens/`.
#[must_use]
pub fn revoked_tokens_prefix() -> String {
    keys::revoked_tokens_prefix()
}

/// `..meta/revoked-tokens/<jti>.json`.
#[must_use]
pub fn revoked_token_key(jti: &str) -> String {
    keys::revoked_token(jti)
}

/// What kind of identity a tombstone retires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TombstoneKind {
    /// A local account (`<name>` in profiles).
    User,
    /// A local group (`group:<name>` in profiles).
    Group,
}

impl TombstoneKind {
    /// `users` or `groups`: the folder of its tombstones.
    fn folder(self) -> &'static str {
        match self {
            Self::User => "users",
            Self::Group => "groups",
        }
    }

    /// `user` or `group`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// What a deleted account or group leaves (`..meta/tombstones/{users,groups}/<name>.json`):
/// the name stays retired until an admin frees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tombstone {
    /// The retired name.
    pub name: String,
    /// `user` or `group`.
    #[schema(value_type = String)]
    pub kind: TombstoneKind,
    /// The identity id of the deleted account (empty for groups and older accounts).
    #[serde(default)]
    pub id: String,
    /// When it was deleted.
    pub deleted_at: DateTime<Utc>,
    /// Who deleted it (`system` from the command line).
    #[serde(default)]
    pub deleted_by: String,
}

/// `..meta/tombstones/<users|groups>/`.
#[must_use]
pub fn tombstones_prefix(kind: TombstoneKind) -> String {
    keys::tombstones_prefix(kind.folder())
}

/// `..meta/tombstones/<users|groups>/<name>.json`.
#[must_use]
pub fn tombstone_key(kind: TombstoneKind, name: &str) -> String {
    keys::tombstone(kind.folder(), name)
}

/// An update's failure: storage, or the change refused.
enum UpdateStep<E> {
    Record(StoreError),
    Refused(E),
}

impl<E> From<StoreError> for UpdateStep<E> {
    fn from(error: StoreError) -> Self {
        Self::Record(error)
    }
}

/// Typed access to the auth records of a store.
#[derive(Debug, Clone)]
pub struct RecordStore {
    storage: Arc<dyn ObjectStore>,
}

/// How many times a conditional update is retried after losing a race.
const UPDATE_ATTEMPTS: u32 = 5;

impl RecordStore {
    /// Records in `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn ObjectStore>) -> Self {
        Self { storage }
    }

    async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        records::read(&*self.storage, key).await
    }

    async fn write<T: Serialize>(
        &self,
        key: &str,
        record: &T,
        condition: PutCondition,
    ) -> Result<String> {
        records::write(&*self.storage, key, record, condition).await
    }

    /// Creates a record; [`crate::storage::StorageError::AlreadyExists`] when one is there.
    async fn create<T: Serialize>(&self, key: &str, record: &T) -> Result<()> {
        records::create(&*self.storage, key, record).await.map(drop)
    }

    /// Applies `change` to the current record with `If-Match`, retrying lost races
    /// ([`records::update`]). `change` answers whether it changed anything (`false` writes
    /// nothing) or an error that is handed back as `Ok(Some(Err(..)))`. `Ok(None)` when the
    /// record is absent.
    async fn update<T, E>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> std::result::Result<bool, E>,
    ) -> Result<Option<std::result::Result<T, E>>>
    where
        T: Serialize + DeserializeOwned,
    {
        let outcome = records::update(
            &*self.storage,
            key,
            Retry::immediate(UPDATE_ATTEMPTS),
            |record: &mut T| change(record).map(Edit::from).map_err(UpdateStep::Refused),
        )
        .await;
        match outcome {
            Ok(found) => Ok(found.map(|versioned| Ok(versioned.record))),
            Err(UpdateStep::Refused(error)) => Ok(Some(Err(error))),
            Err(UpdateStep::Record(error)) => Err(error),
        }
    }

    /// Every record under `prefix` (unparseable ones are skipped with a warning).
    async fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>> {
        let objects = self.storage.list_all(prefix).await?;
        let keys: Vec<String> = objects
            .into_iter()
            .map(|object| object.key)
            .filter(|key| key.ends_with(".json"))
            .collect();
        let reads = futures::stream::iter(keys)
            .map(|key| async move { (self.read::<T>(&key).await, key) })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        let mut records = Vec::with_capacity(reads.len());
        for (result, key) in reads {
            match result {
                Ok(Some(versioned)) => records.push(versioned.record),
                Ok(None) => {}
                Err(StoreError::Corrupt { message, .. }) => {
                    tracing::warn!(%key, %message, "skipping a corrupt record");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(records)
    }

    // --- accounts ---

    /// One account.
    pub async fn account(&self, username: &str) -> Result<Option<Versioned<AccountRecord>>> {
        self.read(&keys::user(username)).await
    }

    /// Creates an account; `Err(Storage(AlreadyExists))` when the name is taken.
    pub async fn create_account(&self, account: &AccountRecord) -> Result<()> {
        self.create(&keys::user(&account.username), account).await
    }

    /// Updates an account with `If-Match`, retrying lost races; `change` answers whether it
    /// changed anything. `Ok(None)` when the account is absent.
    pub async fn update_account<E>(
        &self,
        username: &str,
        change: impl FnMut(&mut AccountRecord) -> std::result::Result<bool, E>,
    ) -> Result<Option<std::result::Result<AccountRecord, E>>> {
        self.update(&keys::user(username), change).await
    }

    /// Deletes an account.
    pub async fn delete_account(&self, username: &str) -> Result<()> {
        Ok(self.storage.delete(&keys::user(username)).await?)
    }

    /// Every account, sorted by username.
    pub async fn accounts(&self) -> Result<Vec<AccountRecord>> {
        let mut accounts: Vec<AccountRecord> = self.list(&keys::users_prefix()).await?;
        accounts.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(accounts)
    }

    // --- groups ---

    /// One group.
    pub async fn group(&self, name: &str) -> Result<Option<Versioned<GroupRecord>>> {
        self.read(&keys::group(name)).await
    }

    /// Creates a group; `Err(Storage(AlreadyExists))` when the name is taken.
    pub async fn create_group(&self, group: &GroupRecord) -> Result<()> {
        self.create(&keys::group(&group.name), group).await
    }

    /// Updates a group with `If-Match`.
    pub async fn update_group<E>(
        &self,
        name: &str,
        change: impl FnMut(&mut GroupRecord) -> std::result::Result<bool, E>,
    ) -> Result<Option<std::result::Result<GroupRecord, E>>> {
        self.update(&keys::group(name), change).await
    }

    /// Deletes a group.
    pub async fn delete_group(&self, name: &str) -> Result<()> {
        Ok(self.storage.delete(&keys::group(name)).await?)
    }

    /// Every group, sorted by name.
    pub async fn groups(&self) -> Result<Vec<GroupRecord>> {
        let mut groups: Vec<GroupRecord> = self.list(&keys::groups_prefix()).await?;
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    // --- api keys ---

    /// One API key.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(self
            .read(&keys::api_key(id))
            .await?
            .map(|versioned| versioned.record))
    }

    /// Stores a new API key.
    pub async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()> {
        self.create(&keys::api_key(&key.id), key).await
    }

    /// Updates an API key with `If-Match`; `Ok(None)` when it is absent.
    pub async fn update_api_key<E>(
        &self,
        id: &str,
        change: impl FnMut(&mut ApiKeyRecord) -> std::result::Result<bool, E>,
    ) -> Result<Option<std::result::Result<ApiKeyRecord, E>>> {
        self.update(&keys::api_key(id), change).await
    }

    /// Deletes an API key.
    pub async fn delete_api_key(&self, id: &str) -> Result<()> {
        Ok(self.storage.delete(&keys::api_key(id)).await?)
    }

    /// Every API key, sorted by creation time.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut keys: Vec<ApiKeyRecord> = self.list(&keys::api_keys_prefix()).await?;
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    // --- tombstones ---

    /// The tombstone of a retired name, if any.
    pub async fn tombstone(&self, kind: TombstoneKind, name: &str) -> Result<Option<Tombstone>> {
        Ok(self
            .read(&tombstone_key(kind, name))
            .await?
            .map(|versioned| versioned.record))
    }

    /// Writes a tombstone (replacing an older one of the same name).
    pub async fn put_tombstone(&self, tombstone: &Tombstone) -> Result<()> {
        self.write(
            &tombstone_key(tombstone.kind, &tombstone.name),
            tombstone,
            PutCondition::None,
        )
        .await
        .map(drop)
    }

    /// Removes a tombstone: the name may be created again.
    pub async fn delete_tombstone(&self, kind: TombstoneKind, name: &str) -> Result<()> {
        Ok(self.storage.delete(&tombstone_key(kind, name)).await?)
    }

    /// Every tombstone of a kind, sorted by name.
    pub async fn tombstones(&self, kind: TombstoneKind) -> Result<Vec<Tombstone>> {
        let mut tombstones: Vec<Tombstone> = self.list(&tombstones_prefix(kind)).await?;
        tombstones.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tombstones)
    }

    // --- revoked tokens ---

    /// Records a revoked token.
    pub async fn revoke(&self, token: &RevokedToken) -> Result<()> {
        self.write(&revoked_token_key(&token.jti), token, PutCondition::None)
            .await
            .map(drop)
    }

    /// Whether a token id is revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool> {
        match self.storage.head(&revoked_token_key(jti)).await {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Every revoked token still recorded.
    pub async fn revoked_tokens(&self) -> Result<Vec<RevokedToken>> {
        self.list(&revoked_tokens_prefix()).await
    }

    /// Deletes the record of a revoked token (once it has expired anyway).
    pub async fn forget_revoked(&self, jti: &str) -> Result<()> {
        Ok(self.storage.delete(&revoked_token_key(jti)).await?)
    }
}
