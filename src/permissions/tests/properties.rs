//! Property tests over random profiles, scope chains and callers:
//! (a) the search-side match equals `can_read` for every document (machines and keys acting
//!     for their creators included), and
//! (b) no caller ever gains a right by being demoted, by an expired entry, or by time passing.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;

use crate::permissions::{
    AccessRule, AccessScope, Action, Caller, DocumentAccess, GrantAccess, GrantTarget,
    LifecycleState, MachineGrant, PrincipalRef, Profile, Role, ScopeChain, Target, can_download,
    can_manage, can_read, can_write, decide, decide_capped,
};

use super::now;

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const GROUPS: [&str; 2] = ["ml", "ops"];
const DIRECTORY_GROUPS: [&str; 2] = ["CN=Readers,DC=corp", "CN=Admins,DC=corp"];
const MACHINES: [&str; 2] = ["ci", "etl"];
const PROJECTS: [&str; 2] = ["bert", "gpt"];
const NAMESPACES: [&str; 2] = ["nlp", "cv"];

fn principal() -> impl Strategy<Value = PrincipalRef> {
    prop_oneof![
        4 => prop::sample::select(USERS.to_vec()).prop_map(|name| PrincipalRef::User(name.to_owned())),
        2 => prop::sample::select(GROUPS.to_vec()).prop_map(|name| PrincipalRef::Group(name.to_owned())),
        1 => prop::sample::select(DIRECTORY_GROUPS.to_vec()).prop_map(|name| PrincipalRef::DirectoryGroup(name.to_owned())),
        2 => prop::sample::select(MACHINES.to_vec()).prop_map(|name| PrincipalRef::Machine(name.to_owned())),
    ]
}

fn rule() -> impl Strategy<Value = Option<AccessRule>> {
    prop::option::of(prop::sample::select(AccessRule::ALL.to_vec()))
}

/// An instant within two days of [`now`].
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (-48_i64..48).prop_map(|hours| now() + Duration::hours(hours))
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        prop::collection::vec(principal(), 0..3),
        prop::collection::vec(principal(), 0..3),
        prop::collection::vec(principal(), 0..4),
        (rule(), rule(), rule()),
        any::<bool>(),
        prop::collection::btree_map(principal(), instant(), 0..3),
    )
        .prop_map(
            |(owners, writers, viewers, (read, download, write), inherit, expires)| Profile {
                scope: None,
                owners,
                writers,
                viewers,
                read_access: read,
                download_access: download,
                write_access: write,
                inherit,
                expires,
            },
        )
}

fn chain() -> impl Strategy<Value = ScopeChain> {
    (
        prop::option::of(profile()),
        prop::option::of(profile()),
        prop::option::of(profile()),
        prop::option::of(profile()),
    )
        .prop_map(|(version, project, namespace, global)| ScopeChain {
            version,
            project,
            namespace,
            global,
        })
}

fn machine_grant() -> impl Strategy<Value = MachineGrant> {
    (
        prop_oneof![
            prop::sample::select(PROJECTS.to_vec())
                .prop_map(|p| GrantTarget::Project(p.to_owned())),
            prop::sample::select(NAMESPACES.to_vec())
                .prop_map(|n| GrantTarget::Namespace(n.to_owned())),
        ],
        prop_oneof![Just(GrantAccess::Read), Just(GrantAccess::Write)],
    )
        .prop_map(|(target, access)| MachineGrant { target, access })
}

fn account_role() -> impl Strategy<Value = Role> {
    prop::sample::select(vec![
        Role::Admin,
        Role::Reviewer,
        Role::Maintainer,
        Role::Developer,
        Role::Guest,
    ])
}

fn caller() -> impl Strategy<Value = Caller> {
    prop_oneof![
        1 => Just(Caller::Anonymous),
        5 => (
            prop::sample::select(USERS.to_vec()),
            account_role(),
            prop::sample::subsequence(GROUPS.to_vec(), 0..=2),
            prop::sample::subsequence(DIRECTORY_GROUPS.to_vec(), 0..=2),
        )
            .prop_map(|(username, role, groups, directory_groups)| Caller::Account {
                username: username.to_owned(),
                role,
                groups: groups.into_iter().map(str::to_owned).collect(),
                directory_groups: directory_groups.into_iter().map(str::to_owned).collect(),
            }),
        2 => (prop::sample::select(MACHINES.to_vec()), prop::collection::vec(machine_grant(), 0..3))
            .prop_map(|(name, scopes)| Caller::Machine { name: name.to_owned(), scopes }),
    ]
}

fn state() -> impl Strategy<Value = LifecycleState> {
    prop::sample::select(LifecycleState::ALL.to_vec())
}

/// A target of any kind (version, project or namespace) governed by a random chain.
fn target() -> impl Strategy<Value = (ScopeChain, Target)> {
    (
        chain(),
        prop::option::of(prop::sample::select(NAMESPACES.to_vec())),
        prop::sample::select(PROJECTS.to_vec()),
        0_u8..3,
        (state(), state()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(chain, namespace, project, kind, (own, parent), (completed, stable, auto_create))| {
                let mut chain = chain;
                let (project, version) = match kind {
                    0 => (Some(project.to_owned()), Some("v1".to_owned())),
                    1 => {
                        chain.version = None;
                        (Some(project.to_owned()), None)
                    }
                    _ => {
                        chain.version = None;
                        chain.project = None;
                        (None, None)
                    }
                };
                // A namespace target needs a namespace.
                let namespace = if project.is_none() {
                    Some(namespace.unwrap_or("nlp").to_owned())
                } else {
                    namespace.map(str::to_owned)
                };
                let target = Target {
                    profile: chain.resolve(),
                    state: own.max(parent),
                    parent_state: parent,
                    namespace,
                    project,
                    version,
                    stable: stable && completed,
                    completed,
                    auto_create,
                };
                (chain, target)
            },
        )
}

/// Every right of a caller on a target at an instant, for comparisons.
fn rights(caller: &Caller, target: &Target, at: DateTime<Utc>) -> Vec<bool> {
    let mut rights = vec![
        can_read(caller, target, at),
        can_download(caller, target, at),
        can_write(caller, target, at),
        can_manage(caller, target, at),
    ];
    rights.extend(
        Action::all()
            .into_iter()
            .map(|action| decide(caller, action, target, at).is_ok()),
    );
    rights
}

/// `lower ⊆ higher`, pointwise.
fn no_gain(lower: &[bool], higher: &[bool]) -> bool {
    lower.iter().zip(higher).all(|(low, high)| !low || *high)
}

/// The roles an account may be demoted to from `role`.
fn demotions(role: Role) -> &'static [Role] {
    match role {
        Role::Admin => &[
            Role::Reviewer,
            Role::Maintainer,
            Role::Developer,
            Role::Guest,
        ],
        Role::Maintainer => &[Role::Developer, Role::Guest],
        Role::Developer | Role::Reviewer => &[Role::Guest],
        Role::Guest | Role::Machine => &[],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// (a) A search finds a document exactly when the caller can read it, at any instant from
    /// when the document was indexed on.
    #[test]
    fn search_match_equals_can_read(
        (_chain, target) in target(),
        caller in caller(),
        indexed_at in instant(),
        later in 0_i64..72,
    ) {
        let document = DocumentAccess::for_target(&target, indexed_at);
        let scope = AccessScope::for_caller(&caller);
        for at in [indexed_at, indexed_at + Duration::hours(later)] {
            let expected = can_read(&caller, &target, at);
            prop_assert_eq!(scope.matches(&document, at), expected, "scope {:?} doc {:?}", scope, document);
            prop_assert_eq!(scope.filter().matches(&document, at), expected);
        }
        if let Some(next) = document.next_expiry {
            prop_assert!(next > indexed_at);
        }
    }

    /// The caller's best level in a profile, found by walking the profile's entries
    /// (`Caller::is`, no parsing), is the best level of its parsed principals, and `is`
    /// agrees with `principals` on every principal.
    #[test]
    fn walking_the_profile_finds_the_callers_best_level(
        (_chain, target) in target(),
        caller in caller(),
        principals in prop::collection::vec(principal(), 0..8),
        at in instant(),
    ) {
        let parsed = caller.principals();
        for principal in &principals {
            prop_assert_eq!(caller.is(principal), parsed.contains(principal));
            prop_assert_eq!(caller.is_named(&principal.to_string()), parsed.contains(principal));
        }
        let expected = parsed
            .iter()
            .filter_map(|principal| target.profile.level_of(principal, at))
            .max();
        prop_assert_eq!(target.profile.best_level_where(|p| caller.is(p), at), expected);
    }

    /// (a) for a machine key acting for its creator: found exactly when the engine lets the
    /// key read (its creator reads the document, inside one of the key's scopes).
    #[test]
    fn delegated_search_match_equals_capped_read(
        (_chain, target) in target(),
        scopes in prop::collection::vec(machine_grant(), 0..3),
        creator in caller(),
        at in instant(),
    ) {
        let machine = Caller::Machine { name: "ci".to_owned(), scopes: scopes.clone() };
        let document = DocumentAccess::for_target(&target, at);
        let scope = AccessScope::delegated(&creator, &scopes);
        let expected =
            decide_capped(&machine, &creator, Action::ReadMetadata, &target, at).is_ok();
        prop_assert_eq!(scope.matches(&document, at), expected);
        prop_assert_eq!(scope.filter().matches(&document, at), expected);
    }

    /// (b) Demoting an account never adds a right.
    #[test]
    fn demotion_never_grants(
        (_chain, target) in target(),
        caller in caller(),
        at in instant(),
    ) {
        let Caller::Account { username, role, groups, directory_groups } = caller.clone() else {
            return Ok(());
        };
        let before = rights(&caller, &target, at);
        for &demoted_role in demotions(role) {
            let demoted = Caller::Account {
                username: username.clone(),
                role: demoted_role,
                groups: groups.clone(),
                directory_groups: directory_groups.clone(),
            };
            let after = rights(&demoted, &target, at);
            prop_assert!(no_gain(&after, &before), "{} -> {}", role, demoted_role);
            let document = DocumentAccess::for_target(&target, at);
            prop_assert!(
                !AccessScope::for_caller(&demoted).matches(&document, at)
                    || AccessScope::for_caller(&caller).matches(&document, at)
            );
        }
    }

    /// (b) Removing a key scope from a machine never adds a right.
    #[test]
    fn fewer_key_scopes_never_grant(
        (_chain, target) in target(),
        name in prop::sample::select(MACHINES.to_vec()),
        scopes in prop::collection::vec(machine_grant(), 1..4),
        at in instant(),
    ) {
        let full = Caller::Machine { name: name.to_owned(), scopes: scopes.clone() };
        let reduced = Caller::Machine { name: name.to_owned(), scopes: scopes[1..].to_vec() };
        prop_assert!(no_gain(&rights(&reduced, &target, at), &rights(&full, &target, at)));
    }

    /// (b) An entry that has expired grants nothing: adding it changes no decision, and the
    /// document indexed afterwards is the same.
    #[test]
    fn expired_entries_grant_nothing(
        (chain, target) in target(),
        caller in caller(),
        extra in principal(),
        level in 0_usize..3,
        slot in 0_usize..4,
        expired_hours_ago in 0_i64..48,
        at in instant(),
    ) {
        let mut with_extra = chain.clone();
        let profile = match slot {
            0 => with_extra.version.as_mut(),
            1 => with_extra.project.as_mut(),
            2 => with_extra.namespace.as_mut(),
            _ => with_extra.global.as_mut(),
        };
        // Only add to an existing profile, for a principal it does not mention yet (an expiry
        // applies to every entry of its principal in a profile).
        let Some(profile) = profile else { return Ok(()) };
        let mentioned = profile.owners.contains(&extra)
            || profile.writers.contains(&extra)
            || profile.viewers.contains(&extra)
            || profile.expires.contains_key(&extra);
        if mentioned {
            return Ok(());
        }
        match level {
            0 => profile.owners.push(extra.clone()),
            1 => profile.writers.push(extra.clone()),
            _ => profile.viewers.push(extra.clone()),
        }
        profile.expires.insert(extra, at - Duration::hours(expired_hours_ago));
        let extended = Target { profile: with_extra.resolve(), ..target.clone() };
        prop_assert_eq!(rights(&caller, &extended, at), rights(&caller, &target, at));
        for action in Action::all() {
            prop_assert_eq!(decide(&caller, action, &extended, at), decide(&caller, action, &target, at));
        }
        prop_assert_eq!(DocumentAccess::for_target(&extended, at), DocumentAccess::for_target(&target, at));
    }

    /// (b) Time passing only removes rights (entries expire, none start).
    #[test]
    fn time_passing_never_grants(
        (_chain, target) in target(),
        caller in caller(),
        at in instant(),
        later in 0_i64..72,
    ) {
        let earlier = rights(&caller, &target, at);
        let after = rights(&caller, &target, at + Duration::hours(later));
        prop_assert!(no_gain(&after, &earlier));
    }

    /// A resolved profile read back from its serialized form is the same profile.
    #[test]
    fn resolved_profiles_round_trip_through_their_serialized_form(chain in chain()) {
        // What the index stores as `_extra.permissions` evaluates like the original.
        let resolved = chain.resolve();
        let stored = resolved.to_json_value();
        let read_back: crate::permissions::ResolvedProfile = serde_json::from_value(stored).unwrap();
        prop_assert_eq!(read_back, resolved);
    }

    /// Parsing never panics and either accepts or names the problem, on any JSON.
    #[test]
    fn parsing_arbitrary_json_never_panics(value in arbitrary_json()) {
        if let Err(error) = Profile::from_value(value.clone()) {
            prop_assert!(!error.code().is_empty());
        }
        let mut profile = Profile::default();
        let _ = profile.merge_partial(value);
    }
}

/// Arbitrary JSON biased towards profile-shaped objects.
pub(super) fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let field = prop::sample::select(vec![
        "scope",
        "owners",
        "writers",
        "viewers",
        "read_access",
        "download_access",
        "write_access",
        "inherit",
        "expires",
        "other",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9:=@ _.,-]{0,12}".prop_map(Value::String),
        "(group:|machine:|CN=|)[a-zA-Z0-9 ._-]{0,6}".prop_map(Value::String),
        Just(json!("2026-01-01 00:00:00Z")),
        Just(json!("2026-01-01T00:00:00Z")),
        Just(json!("viewers")),
        Just(json!(["alice", "group:x"])),
        Just(json!({"carol": "2026-01-01T00:00:00Z"})),
    ];
    let value = leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z:=]{1,8}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    });
    prop_oneof![
        prop::collection::btree_map(field, value.clone(), 0..5).prop_map(|map| Value::Object(
            map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        )),
        value,
    ]
}
