//! The matrix: roles × listing levels × access rules × lifecycle states × version status ×
//! actions, each decision checked against SPEC §3 restated as a small oracle, plus invariants
//! that must hold in every cell.

use crate::permissions::{
    AccessRule, Action, Caller, Denial, Level, LifecycleState, PrincipalRef, ResolvedProfile, Role,
    Target, decide,
};

use super::now;

/// A caller of the matrix: anonymous, or a role with the level it is listed at (if any).
#[derive(Debug, Clone, Copy)]
struct Subject {
    role: Option<Role>,
    level: Option<Level>,
}

impl Subject {
    fn caller(self) -> Caller {
        match self.role {
            None => Caller::Anonymous,
            Some(Role::Machine) => Caller::Machine {
                name: "bot".into(),
                scopes: vec![],
            },
            Some(role) => Caller::account("sam", role),
        }
    }

    fn principal(self) -> Option<PrincipalRef> {
        match self.role {
            None => None,
            Some(Role::Machine) => Some(PrincipalRef::Machine("bot".into())),
            Some(_) => Some(PrincipalRef::User("sam".into())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum VersionStatus {
    Open,
    Completed,
    Stable,
}

/// SPEC §3 "C satisfies a rule", with the level the caller is listed at.
fn satisfies(subject: Subject, rule: AccessRule, level: Option<Level>) -> bool {
    match rule {
        AccessRule::Public => true,
        AccessRule::Authenticated => subject.role.is_some(),
        AccessRule::None => false,
        AccessRule::Owners => level == Some(Level::Owner),
        AccessRule::Writers => matches!(level, Some(Level::Owner | Level::Writer)),
        AccessRule::Viewers => level.is_some(),
    }
}

/// The level a role lets a listing count as when writing (SPEC §3 evaluation caps).
fn cap(role: Role, level: Option<Level>) -> Option<Level> {
    let max = match role {
        Role::Admin | Role::Maintainer => Level::Owner,
        Role::Developer | Role::Machine => Level::Writer,
        Role::Guest | Role::Reviewer => Level::Viewer,
    };
    level.map(|level| level.min(max))
}

/// SPEC §3 and §8, restated.
fn oracle(
    subject: Subject,
    rules: (AccessRule, AccessRule, AccessRule),
    state: LifecycleState,
    status: VersionStatus,
    action: Action,
) -> Result<(), Denial> {
    let (read, download, write) = rules;
    let admin = subject.role == Some(Role::Admin);
    let reviewer = subject.role == Some(Role::Reviewer);
    let disabled = state == LifecycleState::Disabled;
    let deprecated = state == LifecycleState::Deprecated;
    let stable = matches!(status, VersionStatus::Stable);
    let completed = !matches!(status, VersionStatus::Open);
    let lacking = if subject.role.is_some() {
        Denial::Forbidden
    } else {
        Denial::Unauthenticated
    };

    let can_read = admin || (!disabled && (reviewer || satisfies(subject, read, subject.level)));
    let can_download =
        can_read && (admin || reviewer || satisfies(subject, download, subject.level));
    let may_write = match subject.role {
        Some(Role::Admin) => true,
        Some(role @ (Role::Maintainer | Role::Developer | Role::Machine)) => {
            satisfies(subject, write, cap(role, subject.level))
        }
        _ => false,
    };
    let can_manage = admin
        || (!disabled
            && subject.role == Some(Role::Maintainer)
            && subject.level == Some(Level::Owner));

    match action {
        Action::Administer => return if admin { Ok(()) } else { Err(lacking) },
        Action::CreateProject => unreachable!("not on a version target"),
        _ => {}
    }
    if !can_read {
        return Err(Denial::NotFound);
    }
    let allowed = match action {
        Action::ReadMetadata => true,
        Action::Download => can_download,
        Action::CreateVersion
        | Action::UploadFile
        | Action::CreateLink
        | Action::CompleteUpload
        | Action::AbortUpload
        | Action::UpdateRecord
        | Action::DeleteVersion => may_write,
        Action::ChangeState { from, to } => {
            can_manage
                && (admin || (from != LifecycleState::Disabled && to != LifecycleState::Disabled))
        }
        _ => can_manage,
    };
    if !allowed {
        return Err(lacking);
    }
    let read_only = matches!(
        action,
        Action::ReadMetadata
            | Action::ReadPermissions
            | Action::Download
            | Action::ReadAudit
            | Action::CreateApiKey
            | Action::ChangeState { .. }
    );
    if deprecated && !read_only {
        return Err(Denial::Deprecated);
    }
    let touches_files_or_record = matches!(
        action,
        Action::UploadFile
            | Action::CreateLink
            | Action::CompleteUpload
            | Action::AbortUpload
            | Action::UpdateRecord
            | Action::DeleteVersion
            | Action::DeleteFile
    );
    if stable && touches_files_or_record {
        return Err(Denial::StableVersion);
    }
    let adds_files = matches!(
        action,
        Action::UploadFile | Action::CreateLink | Action::CompleteUpload | Action::AbortUpload
    );
    if completed && adds_files {
        return Err(Denial::VersionCompleted);
    }
    if action == Action::MarkStable && !completed {
        return Err(Denial::VersionNotCompleted);
    }
    Ok(())
}

fn target(
    subject: Subject,
    rules: (AccessRule, AccessRule, AccessRule),
    state: LifecycleState,
    status: VersionStatus,
) -> Target {
    let mut profile = ResolvedProfile::built_in_default();
    // Someone else always owns the project, so "nobody listed" is a real profile.
    profile
        .owners
        .insert(PrincipalRef::User("olivia".into()), None);
    if let (Some(level), Some(principal)) = (subject.level, subject.principal()) {
        let entries = match level {
            Level::Owner => &mut profile.owners,
            Level::Writer => &mut profile.writers,
            Level::Viewer => &mut profile.viewers,
        };
        entries.insert(principal, None);
    }
    (
        profile.read_access,
        profile.download_access,
        profile.write_access,
    ) = rules;
    Target {
        profile,
        state,
        parent_state: LifecycleState::Active,
        namespace: Some("nlp".into()),
        project: Some("bert".into()),
        version: Some("v1".into()),
        stable: matches!(status, VersionStatus::Stable),
        completed: !matches!(status, VersionStatus::Open),
        auto_create: false,
    }
}

fn subjects() -> Vec<Subject> {
    let mut subjects = vec![Subject {
        role: None,
        level: None,
    }];
    for role in Role::ALL {
        for level in [
            None,
            Some(Level::Viewer),
            Some(Level::Writer),
            Some(Level::Owner),
        ] {
            subjects.push(Subject {
                role: Some(role),
                level,
            });
        }
    }
    subjects
}

#[test]
fn matrix_of_roles_levels_rules_states_and_actions() {
    let actions: Vec<Action> = Action::all()
        .into_iter()
        .filter(|action| *action != Action::CreateProject)
        .collect();
    let mut cells = 0_usize;
    for subject in subjects() {
        let caller = subject.caller();
        for read in AccessRule::ALL {
            for download in [
                read,
                AccessRule::Owners,
                AccessRule::Viewers,
                AccessRule::Public,
            ] {
                for write in AccessRule::ALL {
                    let rules = (read, download, write);
                    for state in LifecycleState::ALL {
                        for status in [
                            VersionStatus::Open,
                            VersionStatus::Completed,
                            VersionStatus::Stable,
                        ] {
                            let target = target(subject, rules, state, status);
                            for &action in &actions {
                                let actual = decide(&caller, action, &target, now());
                                let expected = oracle(subject, rules, state, status, action);
                                assert_eq!(
                                    actual, expected,
                                    "{subject:?} rules {rules:?} {state} {status:?} {action:?}"
                                );
                                check_invariants(subject, &target, action, actual);
                                cells += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cells > 100_000, "{cells} cells");
}

/// Properties every cell must have, whatever the oracle says.
fn check_invariants(subject: Subject, target: &Target, action: Action, actual: Result<(), Denial>) {
    let context = || format!("{subject:?} {action:?} {:?}", target.state);
    if subject.role.is_none() {
        assert_ne!(
            actual,
            Err(Denial::Forbidden),
            "anonymous callers get 401, {}",
            context()
        );
    } else {
        assert_ne!(
            actual,
            Err(Denial::Unauthenticated),
            "accounts get 403, {}",
            context()
        );
    }
    if subject.role == Some(Role::Admin) {
        assert!(
            !matches!(
                actual,
                Err(Denial::NotFound | Denial::Forbidden | Denial::Unauthenticated)
            ),
            "admins bypass rights, {}",
            context()
        );
    }
    if target.state == LifecycleState::Disabled
        && subject.role != Some(Role::Admin)
        && action != Action::Administer
    {
        assert_eq!(
            actual,
            Err(Denial::NotFound),
            "disabled is invisible, {}",
            context()
        );
    }
    if matches!(subject.role, Some(Role::Guest | Role::Reviewer) | None) {
        let changes_something = !matches!(
            action,
            Action::ReadMetadata | Action::ReadPermissions | Action::Download
        );
        assert!(
            !(changes_something && actual.is_ok()),
            "read-only roles change nothing, {}",
            context()
        );
    }
    if target.stable
        && matches!(
            action,
            Action::UploadFile | Action::DeleteFile | Action::DeleteVersion
        )
    {
        assert!(
            actual.is_err(),
            "stable versions are frozen for everyone, {}",
            context()
        );
    }
}

#[test]
fn matrix_of_project_creation() {
    for subject in subjects() {
        let caller = subject.caller();
        for auto_create in [false, true] {
            for state in LifecycleState::ALL {
                let mut namespace = target(
                    subject,
                    (AccessRule::Viewers, AccessRule::Viewers, AccessRule::Owners),
                    state,
                    VersionStatus::Open,
                );
                namespace.project = None;
                namespace.version = None;
                namespace.auto_create = auto_create;
                let actual = decide(&caller, Action::CreateProject, &namespace, now());
                let admin = subject.role == Some(Role::Admin);
                let reviewer = subject.role == Some(Role::Reviewer);
                let visible = admin
                    || (state != LifecycleState::Disabled && (reviewer || subject.level.is_some()));
                // Owners create; writers only when the namespace has auto_create.
                let writer_here = cap_for(subject) >= Some(Level::Writer) && auto_create;
                let owner_here = cap_for(subject) >= Some(Level::Owner);
                let permitted = match subject.role {
                    Some(Role::Admin) => true,
                    Some(Role::Maintainer) => owner_here || writer_here,
                    Some(Role::Developer) => writer_here,
                    _ => false,
                };
                let expected = if !visible {
                    Err(Denial::NotFound)
                } else if !permitted {
                    Err(if subject.role.is_some() {
                        Denial::Forbidden
                    } else {
                        Denial::Unauthenticated
                    })
                } else if state == LifecycleState::Deprecated {
                    Err(Denial::Deprecated)
                } else {
                    Ok(())
                };
                assert_eq!(
                    actual, expected,
                    "{subject:?} auto_create={auto_create} {state}"
                );
            }
        }
        // Outside namespaces the role alone decides.
        let global = Target::default();
        let expected = matches!(subject.role, Some(Role::Admin | Role::Maintainer));
        assert_eq!(
            decide(&caller, Action::CreateProject, &global, now()).is_ok(),
            expected,
            "{subject:?}"
        );
    }
}

fn cap_for(subject: Subject) -> Option<Level> {
    subject.role.and_then(|role| cap(role, subject.level))
}
