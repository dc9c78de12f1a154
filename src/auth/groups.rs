//! Local groups: creating, listing what a caller may see, changing members, deleting.
//! Methods of [`AuthService`].

use chrono::Utc;

use super::principal::Principal;
use super::store::{GroupRecord, StoreError, Tombstone, TombstoneKind};
use crate::model::names;
use crate::permissions::{Caller, Role};
use crate::storage::StorageError;

use super::service::*;

impl AuthService {
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

    pub(super) fn require_account<'a>(&self, principal: &'a Principal) -> Result<&'a str> {
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
    pub(super) async fn managed_group(
        &self,
        principal: &Principal,
        name: &str,
    ) -> Result<GroupRecord> {
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
}
