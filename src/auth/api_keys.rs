//! API keys: scoped machine credentials — creating (the scope checked against the
//! creator's rights, read fresh), listing, disabling and deleting them. Methods of
//! [`AuthService`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore as _;

use super::principal::Principal;
use super::store::{ApiKeyRecord, StoreError};
use crate::model::names;
use crate::permissions::target::{
    Caching, TargetError, load_namespace_target, load_project_target,
};
use crate::permissions::{GrantTarget, MachineGrant, Target, can_manage, can_read};

use super::service::*;

impl AuthService {
    /// The permission target of a key scope, read fresh from storage.
    pub(super) async fn scope_target(&self, scope: &GrantTarget) -> Result<Target> {
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
}

/// A new API key, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The stored record.
    pub record: ApiKeyRecord,
    /// The bearer credential `trove_<id>_<secret>` (a secret: never log it).
    pub key: String,
}

/// When a key expires, as shown to clients.
#[must_use]
pub fn expiry_of(record: &ApiKeyRecord) -> Option<DateTime<Utc>> {
    record.expires_at
}
