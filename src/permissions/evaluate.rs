//! Evaluation: may this caller do this to this resource, now? (SPEC §3 "Evaluation").
//!
//! For caller C (identities I), target T with resolved profile R and effective state S:
//!
//! * `can_read` = admin, or (S ≠ disabled and (reviewer, or C satisfies R.read_access))
//! * `can_download` = can_read and (admin, or reviewer, or C satisfies R.download_access)
//! * `can_write` = S = active and C's role may write and (admin, or C satisfies
//!   R.write_access with its listing capped by its role)
//! * `can_manage` = admin, or (S ≠ disabled and C's role may own and I meets R.owners)
//!
//! "C satisfies a rule": `public` always; `authenticated` when logged in; `owners` / `writers`
//! / `viewers` when C's best unexpired listing is at that level or above; `none` never.
//! A machine's key scopes count as listings on the scoped project or namespace: `write` as a
//! writer, `read` as a viewer for reading and downloading only.
//!
//! **Evaluation caps.** A role caps what a listing lets an account *do*: for writing the
//! listing counts at most at [`Role::max_level`] (a developer listed as owner acts as a writer,
//! a guest listed as owner cannot write at all), and managing needs a role that may own.
//! Reading and downloading use the listing as it is: every role may be granted at least
//! viewer, and a demoted account stays able to read what it is listed for ("read-only", not
//! "read-nothing"). This also keeps the search side a plain set of principal strings.
//!
//! [`decide`] turns this into the answer for each API [`Action`]: what the caller may not read
//! is [`Denial::NotFound`] (`404`, never reveal existence); what it may read but not do is
//! [`Denial::Unauthenticated`] (`401`) when anonymous, else [`Denial::Forbidden`] (`403`);
//! an allowed caller may still hit a state conflict (`409`): `deprecated`, the stable-version
//! guard (which binds admins too), a completed version (no new files), a version not yet
//! completed (cannot be marked stable), or a disabled parent (states below it are frozen).

use std::fmt;

use chrono::{DateTime, Utc};

use super::identity::{Caller, GrantAccess, GrantTarget, Level, Role};
use super::profile::AccessRule;
use super::resolve::ResolvedProfile;
use super::state::LifecycleState;

/// The resource a request acts on, with everything the rules need to know about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// The resolved profile governing the resource.
    pub profile: ResolvedProfile,
    /// The effective lifecycle state (most restrictive along the chain, see
    /// [`effective_state`](super::effective_state)).
    pub state: LifecycleState,
    /// The effective state of everything above the resource (`active` for a namespace or the
    /// global scope); while it is `disabled`, the resource's own state cannot be changed.
    pub parent_state: LifecycleState,
    /// The namespace of the project, or the namespace itself for a namespace target.
    pub namespace: Option<String>,
    /// The project id; `None` for namespace and global targets.
    pub project: Option<String>,
    /// The version; `None` for project, namespace and global targets.
    pub version: Option<String>,
    /// Whether the version is marked stable (its files are frozen).
    pub stable: bool,
    /// Whether the version is completed (no new files).
    pub completed: bool,
    /// For a namespace target: whether developers may create projects in it (`auto_create`).
    pub auto_create: bool,
}

/// What kind of resource a [`Target`] is, derived from which ids it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// No namespace, project or version: the global scope.
    Global,
    /// A namespace.
    Namespace,
    /// A project.
    Project,
    /// A version of a project.
    Version,
}

impl Target {
    /// What kind of resource this is.
    #[must_use]
    pub fn kind(&self) -> TargetKind {
        match (&self.namespace, &self.project, &self.version) {
            (_, Some(_), Some(_)) => TargetKind::Version,
            (_, Some(_), None) => TargetKind::Project,
            (Some(_), None, _) => TargetKind::Namespace,
            (None, None, _) => TargetKind::Global,
        }
    }

    /// Whether an API key scope covers this target: a project scope covers that project and
    /// its versions, a namespace scope the namespace and every project in it.
    #[must_use]
    pub fn is_covered_by(&self, scope: &GrantTarget) -> bool {
        match scope {
            GrantTarget::Project(project) => self.project.as_deref() == Some(project.as_str()),
            GrantTarget::Namespace(namespace) => {
                self.namespace.as_deref() == Some(namespace.as_str())
            }
        }
    }
}

/// Why a listing is looked up: machine read scopes count only for reading and downloading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Read,
    Write,
}

/// The caller's best unexpired listing on the target, before any role cap: the highest level of
/// any of its principals in the resolved profile, and for machines of any covering key scope.
fn listing(
    caller: &Caller,
    target: &Target,
    now: DateTime<Utc>,
    purpose: Purpose,
) -> Option<Level> {
    // A profile lists a few principals and a caller is a few dozen: matching the profile's
    // entries against the caller costs no allocation. A long profile is matched the other way
    // round, through the caller's parsed principals (a lookup each).
    let listed = if profile_len(&target.profile) <= LONG_PROFILE {
        target
            .profile
            .best_level_where(|principal| caller.is(principal), now)
    } else {
        caller
            .principals()
            .iter()
            .filter_map(|principal| target.profile.level_of(principal, now))
            .max()
    };
    let scoped = caller
        .machine_scopes()
        .iter()
        .filter(|grant| purpose == Purpose::Read || grant.access == GrantAccess::Write)
        .filter(|grant| target.is_covered_by(&grant.target))
        .map(|grant| grant.access.level())
        .max();
    listed.max(scoped)
}

/// Entries of a profile up to which [`listing`] walks the profile rather than the caller.
const LONG_PROFILE: usize = 64;

fn profile_len(profile: &ResolvedProfile) -> usize {
    [Level::Owner, Level::Writer, Level::Viewer]
        .into_iter()
        .map(|level| profile.entries(level).len())
        .sum()
}

/// The listing capped by the caller's role (the evaluation cap used for writing and managing).
fn capped_listing(caller: &Caller, target: &Target, now: DateTime<Utc>) -> Option<Level> {
    let role = caller.role()?;
    listing(caller, target, now, Purpose::Write).map(|level| level.min(role.max_level()))
}

/// Whether a caller with this listing satisfies an access rule.
fn satisfies(caller: &Caller, rule: AccessRule, level: Option<Level>) -> bool {
    match rule {
        AccessRule::Public => true,
        AccessRule::Authenticated => caller.is_authenticated(),
        AccessRule::None => false,
        AccessRule::Owners | AccessRule::Writers | AccessRule::Viewers => rule
            .required_level()
            .is_some_and(|required| level >= Some(required)),
    }
}

/// Whether the caller may see the target's metadata and find it in search:
/// admin, or (not disabled and (reviewer, or the caller satisfies `read_access`)).
#[must_use]
pub fn can_read(caller: &Caller, target: &Target, now: DateTime<Utc>) -> bool {
    if caller.is_admin() {
        return true;
    }
    if target.state == LifecycleState::Disabled {
        return false;
    }
    caller.is_reviewer()
        || satisfies(
            caller,
            target.profile.read_access,
            listing(caller, target, now, Purpose::Read),
        )
}

/// Whether the caller may fetch the target's file bytes:
/// `can_read` and (admin, or reviewer, or the caller satisfies `download_access`).
#[must_use]
pub fn can_download(caller: &Caller, target: &Target, now: DateTime<Utc>) -> bool {
    can_read(caller, target, now)
        && (caller.is_admin()
            || caller.is_reviewer()
            || satisfies(
                caller,
                target.profile.download_access,
                listing(caller, target, now, Purpose::Read),
            ))
}

/// The write right without the state condition: the role may write and (admin, or the caller
/// satisfies `write_access` with its role-capped listing).
fn write_permitted(caller: &Caller, target: &Target, now: DateTime<Utc>) -> bool {
    let Some(role) = caller.role() else {
        return false;
    };
    role.can_write()
        && (role == Role::Admin
            || satisfies(
                caller,
                target.profile.write_access,
                capped_listing(caller, target, now),
            ))
}

/// Whether the caller may create versions and upload files: the effective state is `active`,
/// its role may write, and (admin, or it satisfies `write_access` with its listing capped by
/// its role).
#[must_use]
pub fn can_write(caller: &Caller, target: &Target, now: DateTime<Utc>) -> bool {
    target.state == LifecycleState::Active && write_permitted(caller, target, now)
}

/// Whether the caller may manage the target (change profiles, share, grant, mark stable,
/// change state, delete files): admin, or (not disabled and its role may own and it holds an
/// unexpired owner listing). Managing is always the owners' right, whatever `write_access`
/// says.
#[must_use]
pub fn can_manage(caller: &Caller, target: &Target, now: DateTime<Utc>) -> bool {
    if caller.is_admin() {
        return true;
    }
    target.state != LifecycleState::Disabled
        && caller.role().is_some_and(Role::can_own)
        && capped_listing(caller, target, now) == Some(Level::Owner)
}

/// Every operation the API authorizes, named after what it does. Revoking is authorized as the
/// corresponding grant (`Share` covers unsharing, `GrantMember` removing a member,
/// `MarkStable` unmarking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read a record, metadata document, listing, version info or sync report (`can_read`).
    ReadMetadata,
    /// Read a profile, a member listing or the profile in a version's sync report (`can_manage`:
    /// owners and admins; also while deprecated).
    ReadPermissions,
    /// Fetch file bytes (`can_download`).
    Download,
    /// Create a project; the target is its namespace, or the global target without one.
    /// Outside namespaces maintainers may. Inside one: its owners (maintainers), or its writers
    /// (maintainers and developers) when the namespace has `auto_create`.
    CreateProject,
    /// Create a version of a project (`can_write` on the project).
    CreateVersion,
    /// Start an upload or upload a file into an open version (`can_write`; not in a stable
    /// or completed version).
    UploadFile,
    /// Record a link instead of uploading a copy (as [`UploadFile`](Self::UploadFile)).
    CreateLink,
    /// Complete an upload (as [`UploadFile`](Self::UploadFile)).
    CompleteUpload,
    /// Abort an upload (as [`UploadFile`](Self::UploadFile)).
    AbortUpload,
    /// Change a project or version record: title, description, tags, changelog (`can_write`;
    /// not on a stable version, which is frozen).
    UpdateRecord,
    /// Delete a version (`can_write`: writers may; a stable version must be unmarked first, by
    /// anyone including admins).
    DeleteVersion,
    /// Delete a file (`can_manage`; never in a stable version).
    DeleteFile,
    /// Write or delete a profile (`can_manage`; the global profile is admins' only).
    ChangePermissions,
    /// Share read-only with a principal, or unshare (`can_manage`).
    Share,
    /// Add or remove a project or namespace member (`can_manage`).
    GrantMember,
    /// Mark or unmark a completed version stable (`can_manage`).
    MarkStable,
    /// Change the lifecycle state from `from` (the resource's own state) to `to`: owners move
    /// between `active` and `deprecated`; only admins disable or re-enable; nobody while the
    /// parent is disabled. Allowed while deprecated (that is how it is undone).
    ChangeState {
        /// The resource's own current state.
        from: LifecycleState,
        /// The requested state.
        to: LifecycleState,
    },
    /// Read the audit timeline of a project (`can_manage`; the global log is admins' only).
    ReadAudit,
    /// Create an API key scoped to this project or namespace (`can_manage`).
    CreateApiKey,
    /// Instance administration: users, groups' admin operations, namespaces, index build and
    /// sync, the global audit log (admins only).
    Administer,
}

impl Action {
    /// A stable snake_case name, for audit events and logs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::ReadMetadata => "read_metadata",
            Self::ReadPermissions => "read_permissions",
            Self::Download => "download",
            Self::CreateProject => "create_project",
            Self::CreateVersion => "create_version",
            Self::UploadFile => "upload_file",
            Self::CreateLink => "create_link",
            Self::CompleteUpload => "complete_upload",
            Self::AbortUpload => "abort_upload",
            Self::UpdateRecord => "update_record",
            Self::DeleteVersion => "delete_version",
            Self::DeleteFile => "delete_file",
            Self::ChangePermissions => "change_permissions",
            Self::Share => "share",
            Self::GrantMember => "grant_member",
            Self::MarkStable => "mark_stable",
            Self::ChangeState { .. } => "change_state",
            Self::ReadAudit => "read_audit",
            Self::CreateApiKey => "create_api_key",
            Self::Administer => "administer",
        }
    }

    /// Every action, with each `ChangeState` transition, for tests and documentation.
    #[must_use]
    pub fn all() -> Vec<Self> {
        let mut actions = vec![
            Self::ReadMetadata,
            Self::ReadPermissions,
            Self::Download,
            Self::CreateProject,
            Self::CreateVersion,
            Self::UploadFile,
            Self::CreateLink,
            Self::CompleteUpload,
            Self::AbortUpload,
            Self::UpdateRecord,
            Self::DeleteVersion,
            Self::DeleteFile,
            Self::ChangePermissions,
            Self::Share,
            Self::GrantMember,
            Self::MarkStable,
            Self::ReadAudit,
            Self::CreateApiKey,
            Self::Administer,
        ];
        for from in LifecycleState::ALL {
            for to in LifecycleState::ALL {
                actions.push(Self::ChangeState { from, to });
            }
        }
        actions
    }

    fn requirement(self) -> Requirement {
        match self {
            Self::ReadMetadata => Requirement::Read,
            Self::Download => Requirement::Download,
            Self::CreateVersion
            | Self::UploadFile
            | Self::CreateLink
            | Self::CompleteUpload
            | Self::AbortUpload
            | Self::UpdateRecord
            | Self::DeleteVersion => Requirement::Write,
            // Who has access (owners, viewers, expiries) is for those who manage it.
            Self::ReadPermissions
            | Self::DeleteFile
            | Self::ChangePermissions
            | Self::Share
            | Self::GrantMember
            | Self::MarkStable
            | Self::ChangeState { .. }
            | Self::ReadAudit
            | Self::CreateApiKey => Requirement::Manage,
            Self::CreateProject | Self::Administer => Requirement::Special,
        }
    }

    /// Whether a deprecated target refuses the action with `409 deprecated`.
    fn refused_while_deprecated(self) -> bool {
        matches!(
            self.requirement(),
            Requirement::Write | Requirement::Manage | Requirement::Special
        ) && !matches!(
            self,
            Self::ReadPermissions
                | Self::ChangeState { .. }
                | Self::ReadAudit
                | Self::CreateApiKey
                | Self::Administer
        )
    }

    /// Whether the stable-version guard applies (files frozen, record frozen, deletion only
    /// after unmarking).
    fn guarded_by_stable(self) -> bool {
        matches!(
            self,
            Self::UploadFile
                | Self::CreateLink
                | Self::CompleteUpload
                | Self::AbortUpload
                | Self::UpdateRecord
                | Self::DeleteVersion
                | Self::DeleteFile
        )
    }

    /// Whether the action adds files, which a completed version no longer accepts.
    fn needs_open_version(self) -> bool {
        matches!(
            self,
            Self::UploadFile | Self::CreateLink | Self::CompleteUpload | Self::AbortUpload
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requirement {
    Read,
    Download,
    Write,
    Manage,
    Special,
}

/// Why an action is refused, and how the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Denial {
    /// The caller may not read the target: `404`, as if it did not exist.
    #[error("not found")]
    NotFound,
    /// An anonymous caller may read the target but not do this: `401`.
    #[error("authentication required")]
    Unauthenticated,
    /// An authenticated caller may read the target but not do this: `403`.
    #[error("forbidden")]
    Forbidden,
    /// The target is deprecated: read and download only (`409`).
    #[error("the resource is deprecated")]
    Deprecated,
    /// The version is stable: its files and record are frozen, and it must be unmarked before
    /// it can be deleted (`409`; binds admins too).
    #[error("the version is stable")]
    StableVersion,
    /// The version is completed and accepts no new files (`409`).
    #[error("the version is completed")]
    VersionCompleted,
    /// Only a completed version can be marked stable (`409`).
    #[error("the version is not completed")]
    VersionNotCompleted,
    /// A parent is disabled, so the state of what is below it cannot change (`409`).
    #[error("a parent of the resource is disabled")]
    ParentDisabled,
}

impl Denial {
    /// The HTTP status the API answers with.
    #[must_use]
    pub fn status_code(self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::Deprecated
            | Self::StableVersion
            | Self::VersionCompleted
            | Self::VersionNotCompleted
            | Self::ParentDisabled => 409,
        }
    }

    /// The stable snake_case code of the error body.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::Deprecated => "deprecated",
            Self::StableVersion => "stable_version",
            Self::VersionCompleted => "version_completed",
            Self::VersionNotCompleted => "version_not_completed",
            Self::ParentDisabled => "parent_disabled",
        }
    }
}

/// The refusal for a caller lacking a right on something it may see.
fn lacking_right(caller: &Caller) -> Denial {
    if caller.is_authenticated() {
        Denial::Forbidden
    } else {
        Denial::Unauthenticated
    }
}

/// Decides one action (see the module documentation for the order of checks): visibility
/// (`404`), then the right (`401`/`403`), then state conflicts (`409`).
pub fn decide(
    caller: &Caller,
    action: Action,
    target: &Target,
    now: DateTime<Utc>,
) -> Result<(), Denial> {
    let admin = caller.is_admin();
    if action == Action::Administer {
        return if admin {
            Ok(())
        } else {
            Err(lacking_right(caller))
        };
    }
    if action == Action::CreateProject {
        return decide_create_project(caller, target, now);
    }
    if target.kind() == TargetKind::Global {
        // Only admins act on the global scope (its profile, its audit log).
        return if admin {
            Ok(())
        } else {
            Err(lacking_right(caller))
        };
    }
    if !can_read(caller, target, now) {
        return Err(Denial::NotFound);
    }
    let permitted = admin
        || match action.requirement() {
            Requirement::Read => true,
            Requirement::Download => can_download(caller, target, now),
            Requirement::Write => write_permitted(caller, target, now),
            Requirement::Manage => can_manage(caller, target, now),
            Requirement::Special => false,
        };
    if !permitted {
        return Err(lacking_right(caller));
    }
    if let Action::ChangeState { from, to } = action {
        let touches_disabled = from == LifecycleState::Disabled || to == LifecycleState::Disabled;
        if touches_disabled && !admin {
            return Err(lacking_right(caller));
        }
        if target.parent_state == LifecycleState::Disabled {
            return Err(Denial::ParentDisabled);
        }
        return Ok(());
    }
    if action.refused_while_deprecated() && target.state == LifecycleState::Deprecated {
        return Err(Denial::Deprecated);
    }
    if action.guarded_by_stable() && target.stable {
        return Err(Denial::StableVersion);
    }
    if action.needs_open_version() && target.completed {
        return Err(Denial::VersionCompleted);
    }
    if action == Action::MarkStable && !target.completed {
        return Err(Denial::VersionNotCompleted);
    }
    Ok(())
}

fn decide_create_project(
    caller: &Caller,
    target: &Target,
    now: DateTime<Utc>,
) -> Result<(), Denial> {
    let role = caller.role();
    if target.kind() == TargetKind::Global {
        // Outside namespaces, the role alone decides: maintainers (and admins) create.
        return if role.is_some_and(Role::can_own) {
            Ok(())
        } else {
            Err(lacking_right(caller))
        };
    }
    if !can_read(caller, target, now) {
        return Err(Denial::NotFound);
    }
    // A namespace's owners create projects in it; its writers only when `auto_create` is on.
    let listed = capped_listing(caller, target, now);
    let writer_here = listed >= Some(Level::Writer) && target.auto_create;
    let permitted = match role {
        Some(Role::Admin) => true,
        Some(Role::Maintainer) => listed >= Some(Level::Owner) || writer_here,
        Some(Role::Developer) => writer_here,
        _ => false,
    };
    if !permitted {
        return Err(lacking_right(caller));
    }
    if target.state == LifecycleState::Deprecated {
        return Err(Denial::Deprecated);
    }
    Ok(())
}

/// Decides an action for a machine key acting for its creator, like a fine-grained token:
/// inside a scope of the key that covers the target, the key may do what its creator may do
/// now (never more), capped at the scope's access — `read` reads and downloads, `write` also
/// writes; a key never manages nor creates projects. Outside its scopes, and on anything
/// disabled, it reaches nothing (`404`). Profiles listing `machine:<name>` neither widen nor narrow this. For any other
/// caller, both `caller` and `creator` must be allowed.
pub fn decide_capped(
    caller: &Caller,
    creator: &Caller,
    action: Action,
    target: &Target,
    now: DateTime<Utc>,
) -> Result<(), Denial> {
    let Caller::Machine { scopes, .. } = caller else {
        decide(caller, action, target, now)?;
        return decide(creator, action, target, now);
    };
    let Some(access) = scopes
        .iter()
        .filter(|scope| target.is_covered_by(&scope.target))
        .map(|scope| scope.access)
        .max()
    else {
        return Err(Denial::NotFound);
    };
    // A key is never an admin: what is disabled stays invisible to it, whoever created it.
    if target.state == LifecycleState::Disabled {
        return Err(Denial::NotFound);
    }
    let within_reach = match action.requirement() {
        Requirement::Read | Requirement::Download => true,
        Requirement::Write => access == GrantAccess::Write,
        Requirement::Manage | Requirement::Special => false,
    };
    if within_reach {
        return decide(creator, action, target, now);
    }
    // Beyond the key's reach: hidden when its creator can't see the target, else forbidden.
    decide(creator, Action::ReadMetadata, target, now)?;
    Err(Denial::Forbidden)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::permissions::identity::MachineGrant;
    use crate::permissions::profile::{Profile, ProfileScope};

    fn now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn target(profile: serde_json::Value) -> Target {
        Target {
            profile: ResolvedProfile::standalone(
                ProfileScope::Project,
                &Profile::from_value(profile).unwrap(),
            ),
            namespace: Some("nlp".into()),
            project: Some("bert".into()),
            version: Some("v1".into()),
            ..Target::default()
        }
    }

    fn user(name: &str, role: Role) -> Caller {
        Caller::account(name, role)
    }

    #[test]
    fn shared_user_cannot_delete_files() {
        let t = target(json!({"owners": ["alice"], "viewers": ["carol"]}));
        assert_eq!(
            decide(
                &user("carol", Role::Maintainer),
                Action::DeleteFile,
                &t,
                now()
            ),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(
                &user("alice", Role::Maintainer),
                Action::DeleteFile,
                &t,
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn unreadable_targets_are_not_found_for_every_action() {
        let t = target(json!({"owners": ["alice"], "read_access": "owners"}));
        for action in Action::all() {
            if matches!(action, Action::Administer | Action::CreateProject) {
                continue;
            }
            assert_eq!(
                decide(&user("mallory", Role::Maintainer), action, &t, now()),
                Err(Denial::NotFound),
                "{action}"
            );
            assert_eq!(
                decide(&Caller::Anonymous, action, &t, now()),
                Err(Denial::NotFound),
                "{action}"
            );
        }
    }

    #[test]
    fn anonymous_readers_get_401_and_accounts_403() {
        let t = target(
            json!({"owners": ["alice"], "read_access": "public", "download_access": "viewers"}),
        );
        assert_eq!(
            decide(&Caller::Anonymous, Action::ReadMetadata, &t, now()),
            Ok(())
        );
        assert_eq!(
            decide(&Caller::Anonymous, Action::Download, &t, now()),
            Err(Denial::Unauthenticated)
        );
        assert_eq!(
            decide(&user("bob", Role::Guest), Action::Download, &t, now()),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(&Caller::Anonymous, Action::UploadFile, &t, now()),
            Err(Denial::Unauthenticated)
        );
    }

    #[test]
    fn demoted_owner_acts_as_its_role_allows() {
        let t = target(json!({"owners": ["alice"], "write_access": "writers"}));
        let developer = user("alice", Role::Developer);
        assert!(
            can_write(&developer, &t, now()),
            "a developer owner acts as a writer"
        );
        assert!(!can_manage(&developer, &t, now()));
        let guest = user("alice", Role::Guest);
        assert!(can_read(&guest, &t, now()));
        assert!(!can_write(&guest, &t, now()));
        let owners_only = target(json!({"owners": ["alice"], "write_access": "owners"}));
        assert!(
            !can_write(&developer, &owners_only, now()),
            "a writer does not satisfy write_access owners"
        );
        assert!(can_write(
            &user("alice", Role::Maintainer),
            &owners_only,
            now()
        ));
    }

    #[test]
    fn expired_grants_stop_at_their_instant() {
        let t = target(
            json!({"owners": ["alice"], "viewers": ["carol"], "expires": {"carol": "2026-06-01T00:00:00Z"}}),
        );
        let carol = user("carol", Role::Guest);
        assert!(can_read(&carol, &t, now() - chrono::Duration::seconds(1)));
        assert!(!can_read(&carol, &t, now()));
    }

    #[test]
    fn admins_bypass_rights_but_not_the_stable_guard() {
        let mut t = target(json!({"owners": ["alice"], "read_access": "none"}));
        let admin = user("root", Role::Admin);
        t.state = LifecycleState::Disabled;
        assert_eq!(decide(&admin, Action::ReadMetadata, &t, now()), Ok(()));
        t.state = LifecycleState::Active;
        t.stable = true;
        t.completed = true;
        for action in [
            Action::UploadFile,
            Action::DeleteFile,
            Action::DeleteVersion,
            Action::UpdateRecord,
        ] {
            assert_eq!(
                decide(&admin, action, &t, now()),
                Err(Denial::StableVersion),
                "{action}"
            );
        }
        assert_eq!(
            decide(&admin, Action::MarkStable, &t, now()),
            Ok(()),
            "unmarking is allowed"
        );
    }

    #[test]
    fn stable_version_is_deleted_after_unmarking_by_writers() {
        let mut t =
            target(json!({"owners": ["alice"], "writers": ["bob"], "write_access": "writers"}));
        t.completed = true;
        t.stable = true;
        let bob = user("bob", Role::Developer);
        assert_eq!(
            decide(&bob, Action::DeleteVersion, &t, now()),
            Err(Denial::StableVersion)
        );
        assert_eq!(
            decide(&bob, Action::MarkStable, &t, now()),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(
                &user("alice", Role::Maintainer),
                Action::MarkStable,
                &t,
                now()
            ),
            Ok(())
        );
        t.stable = false;
        assert_eq!(decide(&bob, Action::DeleteVersion, &t, now()), Ok(()));
    }

    #[test]
    fn deprecated_allows_reads_and_changing_the_state_back() {
        let mut t = target(json!({"owners": ["alice"], "read_access": "viewers"}));
        t.state = LifecycleState::Deprecated;
        let alice = user("alice", Role::Maintainer);
        assert_eq!(decide(&alice, Action::Download, &t, now()), Ok(()));
        assert_eq!(
            decide(&alice, Action::CreateVersion, &t, now()),
            Err(Denial::Deprecated)
        );
        assert_eq!(
            decide(&alice, Action::Share, &t, now()),
            Err(Denial::Deprecated)
        );
        let back = Action::ChangeState {
            from: LifecycleState::Deprecated,
            to: LifecycleState::Active,
        };
        assert_eq!(decide(&alice, back, &t, now()), Ok(()));
        let disable = Action::ChangeState {
            from: LifecycleState::Deprecated,
            to: LifecycleState::Disabled,
        };
        assert_eq!(decide(&alice, disable, &t, now()), Err(Denial::Forbidden));
        assert_eq!(
            decide(&user("root", Role::Admin), disable, &t, now()),
            Ok(())
        );
    }

    #[test]
    fn states_below_a_disabled_parent_are_frozen() {
        let mut t = target(json!({"owners": ["alice"]}));
        t.state = LifecycleState::Disabled;
        t.parent_state = LifecycleState::Disabled;
        let change = Action::ChangeState {
            from: LifecycleState::Active,
            to: LifecycleState::Deprecated,
        };
        assert_eq!(
            decide(&user("root", Role::Admin), change, &t, now()),
            Err(Denial::ParentDisabled)
        );
        assert_eq!(
            decide(&user("alice", Role::Maintainer), change, &t, now()),
            Err(Denial::NotFound)
        );
    }

    #[test]
    fn completed_versions_take_no_files_and_open_ones_cannot_be_stable() {
        let mut t = target(json!({"owners": ["alice"]}));
        let alice = user("alice", Role::Maintainer);
        assert_eq!(
            decide(&alice, Action::MarkStable, &t, now()),
            Err(Denial::VersionNotCompleted)
        );
        t.completed = true;
        assert_eq!(
            decide(&alice, Action::UploadFile, &t, now()),
            Err(Denial::VersionCompleted)
        );
        assert_eq!(decide(&alice, Action::MarkStable, &t, now()), Ok(()));
    }

    #[test]
    fn project_creation_follows_roles_and_auto_create() {
        let global = Target::default();
        assert_eq!(
            decide(
                &user("m", Role::Maintainer),
                Action::CreateProject,
                &global,
                now()
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &user("d", Role::Developer),
                Action::CreateProject,
                &global,
                now()
            ),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(&Caller::Anonymous, Action::CreateProject, &global, now()),
            Err(Denial::Unauthenticated)
        );
        let mut namespace = Target {
            profile: ResolvedProfile::standalone(
                ProfileScope::Namespace,
                &Profile::from_value(json!({"owners": ["mm"], "writers": ["dd"], "viewers": ["gg"], "read_access": "viewers"})).unwrap(),
            ),
            namespace: Some("nlp".into()),
            ..Target::default()
        };
        let developer = user("dd", Role::Developer);
        assert_eq!(
            decide(&developer, Action::CreateProject, &namespace, now()),
            Err(Denial::Forbidden)
        );
        // A maintainer listed as a writer (not an owner) needs auto_create too.
        let maintainer_writer = user("dd", Role::Maintainer);
        assert_eq!(
            decide(&maintainer_writer, Action::CreateProject, &namespace, now()),
            Err(Denial::Forbidden)
        );
        namespace.auto_create = true;
        assert_eq!(
            decide(&developer, Action::CreateProject, &namespace, now()),
            Ok(())
        );
        assert_eq!(
            decide(&maintainer_writer, Action::CreateProject, &namespace, now()),
            Ok(())
        );
        assert_eq!(
            decide(
                &user("gg", Role::Guest),
                Action::CreateProject,
                &namespace,
                now()
            ),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(
                &user("xx", Role::Maintainer),
                Action::CreateProject,
                &namespace,
                now()
            ),
            Err(Denial::NotFound)
        );
        assert_eq!(
            decide(
                &user("mm", Role::Maintainer),
                Action::CreateProject,
                &namespace,
                now()
            ),
            Ok(())
        );
    }

    #[test]
    fn global_scope_is_for_admins_only() {
        let global = Target::default();
        assert_eq!(
            decide(
                &user("m", Role::Maintainer),
                Action::ChangePermissions,
                &global,
                now()
            ),
            Err(Denial::Forbidden)
        );
        assert_eq!(
            decide(
                &user("root", Role::Admin),
                Action::ChangePermissions,
                &global,
                now()
            ),
            Ok(())
        );
        assert_eq!(
            decide(
                &user("m", Role::Maintainer),
                Action::Administer,
                &global,
                now()
            ),
            Err(Denial::Forbidden)
        );
    }

    #[test]
    fn machine_scopes_act_as_listings() {
        let t = target(
            json!({"owners": ["alice"], "read_access": "viewers", "write_access": "writers"}),
        );
        let reader = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Namespace("nlp".into()),
                access: GrantAccess::Read,
            }],
        };
        assert!(can_read(&reader, &t, now()));
        assert!(!can_write(&reader, &t, now()));
        let writer = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project("bert".into()),
                access: GrantAccess::Write,
            }],
        };
        assert!(can_write(&writer, &t, now()));
        assert!(!can_manage(&writer, &t, now()));
        let elsewhere = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project("other".into()),
                access: GrantAccess::Write,
            }],
        };
        assert!(!can_read(&elsewhere, &t, now()));
        // A read key never writes, even where viewers may write.
        let viewers_write = target(json!({"owners": ["alice"], "write_access": "viewers"}));
        assert!(!can_write(&reader, &viewers_write, now()));
    }

    #[test]
    fn capped_machine_needs_its_creator_too() {
        let t = target(json!({"owners": ["alice"], "writers": ["bob"], "write_access": "writers"}));
        let machine = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project("bert".into()),
                access: GrantAccess::Write,
            }],
        };
        assert_eq!(
            decide_capped(
                &machine,
                &user("bob", Role::Developer),
                Action::UploadFile,
                &t,
                now()
            ),
            Ok(())
        );
        assert_eq!(
            decide_capped(
                &machine,
                &user("eve", Role::Developer),
                Action::UploadFile,
                &t,
                now()
            ),
            Err(Denial::NotFound)
        );
    }

    #[test]
    fn a_key_acts_as_its_creator_within_its_scope_capped_to_its_access() {
        // A private project of alice's: no machine is listed anywhere.
        let t = target(json!({"owners": ["alice"], "read_access": "owners"}));
        let key = |access: GrantAccess, project: &str| Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project(project.into()),
                access,
            }],
        };
        let alice = user("alice", Role::Maintainer);
        let read = key(GrantAccess::Read, "bert");
        assert_eq!(
            decide_capped(&read, &alice, Action::ReadMetadata, &t, now()),
            Ok(())
        );
        assert_eq!(
            decide_capped(&read, &alice, Action::Download, &t, now()),
            Ok(())
        );
        assert_eq!(
            decide_capped(&read, &alice, Action::UploadFile, &t, now()),
            Err(Denial::Forbidden)
        );
        let write = key(GrantAccess::Write, "bert");
        assert_eq!(
            decide_capped(&write, &alice, Action::UploadFile, &t, now()),
            Ok(())
        );
        // Never managing, whatever the creator may.
        for action in [Action::ChangePermissions, Action::DeleteFile, Action::Share] {
            assert_eq!(
                decide_capped(&write, &alice, action, &t, now()),
                Err(Denial::Forbidden)
            );
        }
        // Never more than the creator, never outside the scope.
        let eve = user("eve", Role::Maintainer);
        assert_eq!(
            decide_capped(&write, &eve, Action::ReadMetadata, &t, now()),
            Err(Denial::NotFound)
        );
        let elsewhere = key(GrantAccess::Write, "gpt");
        assert_eq!(
            decide_capped(&elsewhere, &alice, Action::ReadMetadata, &t, now()),
            Err(Denial::NotFound)
        );
    }

    #[test]
    fn denials_map_to_status_codes() {
        assert_eq!(
            (Denial::NotFound.status_code(), Denial::NotFound.code()),
            (404, "not_found")
        );
        assert_eq!(Denial::Unauthenticated.status_code(), 401);
        assert_eq!(Denial::Forbidden.status_code(), 403);
        assert_eq!(
            (Denial::Deprecated.status_code(), Denial::Deprecated.code()),
            (409, "deprecated")
        );
        assert_eq!(Denial::StableVersion.status_code(), 409);
    }
}
