//! The search side of the permission rules (SPEC §4 "Query rewriting").
//!
//! The index stores, per document, a [`DocumentAccess`]: the set of **reader tokens** — terms
//! that stand for "this caller may read the document" — with their expiries, and whether the
//! document is disabled. Each caller gets an [`AccessScope`]: admins are
//! [`Unrestricted`](AccessScope::Unrestricted), reviewers see
//! [`AllButDisabled`](AccessScope::AllButDisabled), everyone else carries the tokens it holds.
//! A document matches a token scope when it is not disabled and shares at least one unexpired
//! token with the scope. By construction `scope.matches(doc, now) == can_read(caller, target,
//! now)` for every caller, document and `now` at or after the document was built (proven by
//! the property tests of this module).
//!
//! # Token scheme
//!
//! Principal tokens are the principal strings themselves (`alice`, `group:ml`, `CN=...`,
//! `machine:ci`). Reserved tokens start with `@`, which no principal can spell:
//!
//! | token | in a document when `read_access` is | held by |
//! |---|---|---|
//! | `@public` | `public` | every caller, anonymous included |
//! | `@authenticated` | `authenticated` | every logged-in account or machine |
//! | principal strings | `owners` (owners), `writers` (owners, writers), `viewers` (all three lists) | the caller's identities |
//! | `@grant-write:project:<p>`, `@grant-write:namespace:<ns>` | `writers` or `viewers` | machines whose key has a `write` scope on `<p>` / `<ns>` |
//! | `@grant-read:project:<p>`, `@grant-read:namespace:<ns>` | `viewers` | machines whose key has a `read` scope on `<p>` / `<ns>` |
//!
//! A `read` key scope is a viewer listing and a `write` scope a writer listing, so a document
//! carries the grant tokens exactly when its read rule admits that level. `none` yields no
//! token at all (admins only). Principal tokens keep the expiry of the entry that admits them
//! (the latest, when several do); tokens already expired when the document is built are left
//! out, and [`DocumentAccess::next_expiry`] tells the scheduler when to re-index.
//!
//! A machine key acting for its creator searches with [`AccessScope::delegated`]: what its
//! creator finds, confined to the key's scopes — just as [`decide_capped`](super::decide_capped)
//! lets the key read within its scopes whatever its creator may read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::evaluate::Target;
use super::identity::{Caller, GrantAccess, GrantTarget, Level, MachineGrant, Role};
use super::profile::AccessRule;
use super::resolve::{ResolvedProfile, is_valid_at};
use super::state::LifecycleState;

/// Reader token of documents every caller may read.
pub const TOKEN_PUBLIC: &str = "@public";
/// Reader token of documents every logged-in caller may read.
pub const TOKEN_AUTHENTICATED: &str = "@authenticated";

/// The reader token a machine key scope is matched by (see the module documentation).
#[must_use]
pub fn grant_token(access: GrantAccess, target: &GrantTarget) -> String {
    let access = match access {
        GrantAccess::Read => "read",
        GrantAccess::Write => "write",
    };
    match target {
        GrantTarget::Project(project) => format!("@grant-{access}:project:{project}"),
        GrantTarget::Namespace(namespace) => format!("@grant-{access}:namespace:{namespace}"),
    }
}

/// The token every document of a project (or namespace) carries so a machine key can be
/// confined to its scopes: a key reaches nothing outside them, whatever profiles list it. No
/// caller's scope holds these tokens except through [`AccessScope::confined_to`].
#[must_use]
pub fn scope_token(target: &GrantTarget) -> String {
    match target {
        GrantTarget::Project(project) => format!("@in:project:{project}"),
        GrantTarget::Namespace(namespace) => format!("@in:namespace:{namespace}"),
    }
}

/// What the index stores per document to filter searches by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentAccess {
    /// Reader token → expiry (`None` = never). A token counts while `now < expiry`.
    pub readers: BTreeMap<String, Option<DateTime<Utc>>>,
    /// Whether the document's effective state is `disabled` (only admins find it).
    pub disabled: bool,
    /// The earliest expiry among `readers`, in the future when the document was built: the
    /// scheduler re-indexes the document then.
    pub next_expiry: Option<DateTime<Utc>>,
}

impl DocumentAccess {
    /// Derives the reader tokens of a document governed by `profile`, in effective `state`,
    /// belonging to `project` in `namespace`, as of `now` (entries already expired are left
    /// out).
    #[must_use]
    pub fn from_target(
        profile: &ResolvedProfile,
        state: LifecycleState,
        project: Option<&str>,
        namespace: Option<&str>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut readers: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
        let mut admit = |token: String, expiry: Option<DateTime<Utc>>| {
            if !is_valid_at(expiry, now) {
                return;
            }
            readers
                .entry(token)
                .and_modify(|current| {
                    *current = match (*current, expiry) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                })
                .or_insert(expiry);
        };
        let rule = profile.read_access;
        match rule {
            AccessRule::Public => admit(TOKEN_PUBLIC.to_owned(), None),
            AccessRule::Authenticated => admit(TOKEN_AUTHENTICATED.to_owned(), None),
            AccessRule::None => {}
            AccessRule::Owners | AccessRule::Writers | AccessRule::Viewers => {
                let required = rule.required_level().unwrap_or(Level::Owner);
                for level in [Level::Owner, Level::Writer, Level::Viewer] {
                    if level < required {
                        continue;
                    }
                    for (principal, expiry) in profile.entries(level) {
                        admit(principal.to_string(), *expiry);
                    }
                }
                for access in [GrantAccess::Read, GrantAccess::Write] {
                    if access.level() < required {
                        continue;
                    }
                    if let Some(project) = project {
                        admit(
                            grant_token(access, &GrantTarget::Project(project.to_owned())),
                            None,
                        );
                    }
                    if let Some(namespace) = namespace {
                        admit(
                            grant_token(access, &GrantTarget::Namespace(namespace.to_owned())),
                            None,
                        );
                    }
                }
            }
        }
        let next_expiry = readers.values().flatten().copied().min();
        // Where the document lives, for confining machine keys (never a read grant by itself:
        // it only ever appears in a conjunction with a real grant).
        if let Some(project) = project {
            readers.insert(scope_token(&GrantTarget::Project(project.to_owned())), None);
        }
        if let Some(namespace) = namespace {
            readers.insert(
                scope_token(&GrantTarget::Namespace(namespace.to_owned())),
                None,
            );
        }
        Self {
            readers,
            disabled: state == LifecycleState::Disabled,
            next_expiry,
        }
    }

    /// [`from_target`](Self::from_target) for an evaluation [`Target`].
    #[must_use]
    pub fn for_target(target: &Target, now: DateTime<Utc>) -> Self {
        Self::from_target(
            &target.profile,
            target.state,
            target.project.as_deref(),
            target.namespace.as_deref(),
            now,
        )
    }

    /// The terms to index for this document.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.readers.keys().map(String::as_str)
    }

    /// Whether `token` admits a reader at `now`.
    #[must_use]
    pub fn admits(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.readers
            .get(token)
            .is_some_and(|expiry| is_valid_at(*expiry, now))
    }
}

/// The caller's search scope: a required argument of the only search function, so a route
/// cannot forget it, and an explicit variant for "no filter" (never "`None` means everything").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccessScope {
    /// Admins: every document, disabled ones included.
    Unrestricted,
    /// Reviewers: every document that is not disabled.
    AllButDisabled,
    /// Accounts and anonymous callers: documents not disabled sharing an unexpired token with
    /// `tokens` (the caller's identities, `@authenticated` when logged in, `@public`).
    Principals {
        /// The reader tokens the caller holds (shared: every filter of the caller's
        /// searches points at this one set).
        tokens: Arc<BTreeSet<String>>,
    },
    /// A machine key: like `Principals`, with the grant tokens of its key scopes.
    Machine {
        /// The machine's name (for logs and audit).
        name: String,
        /// The reader tokens the key holds.
        tokens: Arc<BTreeSet<String>>,
    },
    /// Both scopes must match (a machine key: its creator's scope and its own confinement).
    Both(Box<AccessScope>, Box<AccessScope>),
}

/// The filter the index applies for a scope: drop disabled documents when asked, and keep a
/// document only if, for each set of `required_token_sets`, it holds one of its tokens.
/// Equal filters select equal documents, so this is the cache key of a per-segment allow-set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SearchFilter {
    /// Exclude documents whose `disabled` flag is set.
    pub exclude_disabled: bool,
    /// Conjunction of term sets; each must intersect the document's reader tokens.
    pub required_token_sets: Vec<Arc<BTreeSet<String>>>,
}

impl SearchFilter {
    /// Whether the filter admits everything (an admin's: no term to query, no state to
    /// check).
    #[must_use]
    pub fn is_unrestricted(&self) -> bool {
        !self.exclude_disabled && self.required_token_sets.is_empty()
    }

    /// Canonical text of the filter used as the cache key of allow-sets: two filters with the
    /// same key admit exactly the same documents.
    #[must_use]
    pub fn cache_key(&self) -> String {
        if self.required_token_sets.is_empty() {
            return if self.exclude_disabled {
                "not-disabled".to_owned()
            } else {
                "unrestricted".to_owned()
            };
        }
        let mut canonical: Vec<&BTreeSet<String>> =
            self.required_token_sets.iter().map(|set| &**set).collect();
        canonical.sort();
        canonical.dedup();
        // Tokens never contain '\n' or '\u{1}' (principal names exclude control characters),
        // so this encoding is unambiguous; a set ordered and deduplicated is canonical.
        let sets = canonical
            .iter()
            .map(|set| {
                set.iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\u{1}")
            })
            .collect::<Vec<_>>()
            .join("\n");
        if self.exclude_disabled {
            sets
        } else {
            format!("with-disabled\n{sets}")
        }
    }
}

/// The scopes [`AccessScope::for_caller`] keeps, by caller.
static SCOPES: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<Caller, AccessScope>>,
> = std::sync::LazyLock::new(std::sync::Mutex::default);

/// Callers whose scope [`AccessScope::for_caller`] keeps.
const SCOPES_KEPT: usize = 1024;

impl AccessScope {
    /// The scope of a caller: admins are unrestricted, reviewers see all but disabled
    /// documents, others carry their identities plus `@authenticated` (when logged in) and
    /// `@public`, and machines also the grant tokens of their key scopes.
    ///
    /// A function of the caller alone, so recent callers' scopes are kept (at most 1,024,
    /// emptied when full) and handed out again: every index search of a
    /// request builds its caller's scope, which copies every identity (53 strings for an
    /// account in 50 groups) — a twentieth of a cheap route's CPU.
    #[must_use]
    pub fn for_caller(caller: &Caller) -> Self {
        match caller.role() {
            Some(Role::Admin) => return Self::Unrestricted,
            Some(Role::Reviewer) => return Self::AllButDisabled,
            _ => {}
        }
        let kept = || {
            SCOPES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(scope) = kept().get(caller) {
            return scope.clone();
        }
        let scope = Self::built_for(caller);
        let mut scopes = kept();
        if scopes.len() >= SCOPES_KEPT && !scopes.contains_key(caller) {
            scopes.clear();
        }
        scopes.insert(caller.clone(), scope.clone());
        scope
    }

    /// [`for_caller`](Self::for_caller) computed, for a caller who is neither admin nor
    /// reviewer.
    fn built_for(caller: &Caller) -> Self {
        let mut tokens = caller.identities();
        tokens.insert(TOKEN_PUBLIC.to_owned());
        if caller.is_authenticated() {
            tokens.insert(TOKEN_AUTHENTICATED.to_owned());
        }
        match caller {
            Caller::Machine { name, scopes } => {
                tokens.extend(
                    scopes
                        .iter()
                        .map(|grant| grant_token(grant.access, &grant.target)),
                );
                Self::Machine {
                    name: name.clone(),
                    tokens: Arc::new(tokens),
                }
            }
            Caller::Anonymous | Caller::Account { .. } => Self::Principals {
                tokens: Arc::new(tokens),
            },
        }
    }

    /// This scope restricted to documents inside `scopes` (a machine key's project and
    /// namespace scopes): it must match, and the document must live in one of them.
    #[must_use]
    pub fn confined_to(self, scopes: &[MachineGrant]) -> Self {
        let tokens = scopes
            .iter()
            .map(|grant| scope_token(&grant.target))
            .collect();
        Self::Both(
            Box::new(self),
            Box::new(Self::Principals {
                tokens: Arc::new(tokens),
            }),
        )
    }

    /// The scope of a machine key acting for its creator (like a fine-grained token): what
    /// the creator may read, inside the key's `scopes` only.
    #[must_use]
    pub fn delegated(creator: &Caller, scopes: &[MachineGrant]) -> Self {
        Self::for_caller(creator).confined_to(scopes)
    }

    /// Whether a document is in this scope at `now`; equals `can_read` of the caller on the
    /// document's target.
    #[must_use]
    pub fn matches(&self, document: &DocumentAccess, now: DateTime<Utc>) -> bool {
        match self {
            Self::Unrestricted => true,
            Self::AllButDisabled => !document.disabled,
            Self::Principals { tokens } | Self::Machine { tokens, .. } => {
                !document.disabled && tokens.iter().any(|token| document.admits(token, now))
            }
            Self::Both(first, second) => {
                first.matches(document, now) && second.matches(document, now)
            }
        }
    }

    /// Every term the index will query for this scope (empty for the unrestricted and
    /// reviewer scopes, which query no term).
    #[must_use]
    pub fn tokens(&self) -> BTreeSet<String> {
        self.filter()
            .required_token_sets
            .into_iter()
            .flat_map(Arc::unwrap_or_clone)
            .collect()
    }

    /// The filter the index applies (see [`SearchFilter`]).
    #[must_use]
    pub fn filter(&self) -> SearchFilter {
        match self {
            Self::Unrestricted => SearchFilter::default(),
            Self::AllButDisabled => SearchFilter {
                exclude_disabled: true,
                required_token_sets: Vec::new(),
            },
            Self::Principals { tokens } | Self::Machine { tokens, .. } => SearchFilter {
                exclude_disabled: true,
                required_token_sets: vec![tokens.clone()],
            },
            Self::Both(first, second) => {
                let first = first.filter();
                let second = second.filter();
                let mut required_token_sets = first.required_token_sets;
                for set in second.required_token_sets {
                    if !required_token_sets.contains(&set) {
                        required_token_sets.push(set);
                    }
                }
                SearchFilter {
                    exclude_disabled: first.exclude_disabled || second.exclude_disabled,
                    required_token_sets,
                }
            }
        }
    }
}

impl SearchFilter {
    /// Whether a document passes the filter at `now` (the same answer as
    /// [`AccessScope::matches`] of the scope it came from).
    #[must_use]
    pub fn matches(&self, document: &DocumentAccess, now: DateTime<Utc>) -> bool {
        !(self.exclude_disabled && document.disabled)
            && self
                .required_token_sets
                .iter()
                .all(|set| set.iter().any(|token| document.admits(token, now)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::permissions::profile::{Profile, ProfileScope};

    fn now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    /// A kept scope is the one its caller would get computed: callers that differ only in a
    /// group, a directory group or their role each get their own, asked in any order and
    /// again.
    #[test]
    fn kept_scopes_are_each_callers_own() {
        let account = |role: Role, groups: &[&str], directory: &[&str]| Caller::Account {
            username: "kept-scope-user".into(),
            role,
            groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            directory_groups: directory.iter().map(|group| (*group).to_owned()).collect(),
        };
        let callers = [
            account(Role::Developer, &["ml"], &[]),
            account(Role::Developer, &["ml", "vision"], &[]),
            account(Role::Developer, &["vision"], &[]),
            account(Role::Developer, &["ml"], &["CN=Team,DC=corp"]),
            account(Role::Guest, &["ml"], &[]),
            account(Role::Admin, &["ml"], &[]),
            Caller::Anonymous,
        ];
        for _ in 0..2 {
            for caller in callers.iter().chain(callers.iter().rev()) {
                let expected = match caller.role() {
                    Some(Role::Admin) => AccessScope::Unrestricted,
                    _ => AccessScope::built_for(caller),
                };
                assert_eq!(AccessScope::for_caller(caller), expected, "{caller:?}");
            }
        }
        let tokens = |caller: &Caller| match AccessScope::for_caller(caller) {
            AccessScope::Principals { tokens } => tokens,
            other => panic!("{other:?}"),
        };
        assert!(tokens(&callers[1]).contains("group:vision"));
        assert!(!tokens(&callers[0]).contains("group:vision"));
        assert!(!tokens(&callers[2]).contains("group:ml"));
    }

    fn document(profile: serde_json::Value, state: LifecycleState) -> DocumentAccess {
        let profile = ResolvedProfile::standalone(
            ProfileScope::Project,
            &Profile::from_value(profile).unwrap(),
        );
        DocumentAccess::from_target(&profile, state, Some("bert"), Some("nlp"), now())
    }

    #[test]
    fn tokens_follow_the_read_rule() {
        let doc = document(
            json!({"owners": ["alice"], "writers": ["group:w"], "viewers": ["carol"], "read_access": "writers"}),
            LifecycleState::Active,
        );
        let tokens: Vec<&str> = doc.tokens().collect();
        assert_eq!(
            tokens,
            [
                "@grant-write:namespace:nlp",
                "@grant-write:project:bert",
                "@in:namespace:nlp",
                "@in:project:bert",
                "alice",
                "group:w"
            ]
        );
        let public = document(json!({"read_access": "public"}), LifecycleState::Active);
        assert_eq!(
            public.tokens().collect::<Vec<_>>(),
            ["@in:namespace:nlp", "@in:project:bert", TOKEN_PUBLIC]
        );
        let none = document(
            json!({"owners": ["alice"], "read_access": "none"}),
            LifecycleState::Active,
        );
        assert_eq!(
            none.tokens().collect::<Vec<_>>(),
            ["@in:namespace:nlp", "@in:project:bert"],
            "only where it lives: no one may read"
        );
        for caller in [
            Caller::Anonymous,
            Caller::account("alice", Role::Maintainer),
        ] {
            assert!(!AccessScope::for_caller(&caller).matches(&none, now()));
        }
    }

    #[test]
    fn a_confined_machine_scope_matches_only_inside_its_scopes() {
        let listed = json!({"viewers": ["machine:ci"], "read_access": "viewers"});
        let inside = document(listed.clone(), LifecycleState::Active);
        let profile = ResolvedProfile::standalone(
            ProfileScope::Project,
            &Profile::from_value(listed).unwrap(),
        );
        let outside =
            DocumentAccess::from_target(&profile, LifecycleState::Active, Some("gpt"), None, now());
        let machine = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project("bert".into()),
                access: GrantAccess::Read,
            }],
        };
        let scope = AccessScope::for_caller(&machine);
        assert!(
            scope.matches(&outside, now()),
            "listed by name outside its scope"
        );
        let Caller::Machine { scopes, .. } = &machine else {
            unreachable!()
        };
        let confined = scope.confined_to(scopes);
        assert!(confined.matches(&inside, now()));
        assert!(
            !confined.matches(&outside, now()),
            "a key reaches nothing outside its scopes"
        );
    }

    #[test]
    fn reserved_tokens_cannot_be_spelled_by_principals() {
        for token in [TOKEN_PUBLIC, TOKEN_AUTHENTICATED, "@grant-read:project:p"] {
            assert!(crate::permissions::PrincipalRef::parse(token).is_err());
        }
    }

    #[test]
    fn disabled_documents_match_admins_only() {
        let doc = document(json!({"read_access": "public"}), LifecycleState::Disabled);
        assert!(AccessScope::Unrestricted.matches(&doc, now()));
        assert!(!AccessScope::AllButDisabled.matches(&doc, now()));
        assert!(!AccessScope::for_caller(&Caller::Anonymous).matches(&doc, now()));
    }

    #[test]
    fn expiries_are_kept_and_the_next_one_reported() {
        let doc = document(
            json!({"owners": ["alice"], "viewers": ["carol", "dave", "erin"],
                   "expires": {"carol": "2026-07-01T00:00:00Z", "dave": "2026-08-01T00:00:00Z", "erin": "2026-01-01T00:00:00Z"}}),
            LifecycleState::Active,
        );
        assert_eq!(
            doc.next_expiry,
            Some("2026-07-01T00:00:00Z".parse().unwrap())
        );
        assert!(!doc.readers.contains_key("erin"), "already expired");
        let carol = AccessScope::for_caller(&Caller::account("carol", Role::Guest));
        assert!(carol.matches(&doc, now()));
        assert!(!carol.matches(&doc, "2026-07-01T00:00:00Z".parse().unwrap()));
    }

    #[test]
    fn scopes_by_role() {
        assert_eq!(
            AccessScope::for_caller(&Caller::account("root", Role::Admin)),
            AccessScope::Unrestricted
        );
        assert_eq!(
            AccessScope::for_caller(&Caller::account("rev", Role::Reviewer)),
            AccessScope::AllButDisabled
        );
        let anonymous = AccessScope::for_caller(&Caller::Anonymous);
        assert_eq!(
            anonymous.tokens().into_iter().collect::<Vec<_>>(),
            [TOKEN_PUBLIC]
        );
        let machine = Caller::Machine {
            name: "ci".into(),
            scopes: vec![MachineGrant {
                target: GrantTarget::Project("bert".into()),
                access: GrantAccess::Read,
            }],
        };
        assert_eq!(
            AccessScope::for_caller(&machine)
                .tokens()
                .into_iter()
                .collect::<Vec<_>>(),
            [
                "@authenticated",
                "@grant-read:project:bert",
                "@public",
                "machine:ci"
            ]
        );
    }

    #[test]
    fn a_delegated_key_finds_what_its_creator_reads_inside_its_scopes() {
        // A private project: only its owner reads it; no machine is listed.
        let doc = document(
            json!({"owners": ["alice"], "read_access": "owners"}),
            LifecycleState::Active,
        );
        let alice = Caller::account("alice", Role::Maintainer);
        let eve = Caller::account("eve", Role::Maintainer);
        let scopes = |namespace: &str| {
            vec![MachineGrant {
                target: GrantTarget::Namespace(namespace.into()),
                access: GrantAccess::Read,
            }]
        };
        let by_alice = AccessScope::delegated(&alice, &scopes("nlp"));
        assert!(by_alice.matches(&doc, now()));
        assert!(by_alice.filter().matches(&doc, now()));
        let by_eve = AccessScope::delegated(&eve, &scopes("nlp"));
        assert!(!by_eve.matches(&doc, now()));
        assert!(!by_eve.filter().matches(&doc, now()));
        assert_eq!(by_eve.filter().required_token_sets.len(), 2);
        let elsewhere = AccessScope::delegated(&alice, &scopes("vision"));
        assert!(!elsewhere.matches(&doc, now()));
        assert!(!elsewhere.filter().matches(&doc, now()));
    }
}
