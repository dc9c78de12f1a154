//! Accounts: creating (by an admin, by registration, the bootstrap admin), listing,
//! changing and deleting them (under the last-admin guard), tombstones and freeing a
//! retired name. Methods of [`AuthService`].

use std::time::Duration;

use chrono::Utc;

use super::audit::AuthEventKind;
use super::password::check_new_password;
use super::store::{AccountRecord, GroupRecord, StoreError, Tombstone, TombstoneKind};
use crate::model::names;
use crate::permissions::{PrincipalRef, ProfileLoader, ProfileLocation, Role};
use crate::storage::StorageError;

use super::service::*;

impl AuthService {
    /// Refuses a retired name (`409 name_retired`).
    pub(super) async fn check_not_retired(&self, kind: TombstoneKind, name: &str) -> Result<()> {
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

    /// Every account.
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>> {
        Ok(self.records.accounts().await?)
    }

    /// Enabled admins other than `except`.
    pub(super) async fn other_enabled_admins(&self, except: &str) -> Result<usize> {
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
    pub(super) async fn admin_guard(&self) -> Result<crate::storage::lease::Lease> {
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

    pub(super) async fn update_account_guarded(
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

    pub(super) async fn delete_account_guarded(
        &self,
        username: &str,
        deleted_by: &str,
    ) -> Result<()> {
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
    pub(super) async fn delete_api_keys_of(&self, username: &str) -> Result<()> {
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
