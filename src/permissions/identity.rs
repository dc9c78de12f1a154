//! Who is asking: callers, their identities, roles and levels (SPEC §3 "Roles", §7).
//!
//! A [`Caller`] is anonymous, an account (username, role, local groups, directory groups kept
//! by the configured [`DirectoryGroupFilter`]) or a machine (API key) with its key scopes. Its
//! [`identities`](Caller::identities) are the principal strings a profile can name it by.
//! A [`Role`] bounds both what may be granted to an account ([`Role::may_be_granted`]) and what
//! a listing lets it do at evaluation ([`Role::max_level`]).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::profile::PrincipalRef;

/// The level a principal is listed at in a profile. Levels nest and are ordered
/// `Viewer < Writer < Owner`: an owner is also a writer and a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Listed in `viewers`.
    Viewer,
    /// Listed in `writers`.
    Writer,
    /// Listed in `owners`.
    Owner,
}

impl Level {
    /// The wire name (`viewer`, `writer`, `owner`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Writer => "writer",
            Self::Owner => "owner",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's role (one per account, SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Bypasses every check except the stable-version guard and state conflicts.
    Admin,
    /// Reads and downloads everything not disabled; changes nothing.
    Reviewer,
    /// May own projects and create them.
    Maintainer,
    /// May write; creates projects only in `auto_create` namespaces where it is a writer.
    Developer,
    /// Read-only.
    Guest,
    /// API-key accounts for automation; may write, never own.
    Machine,
}

/// The text of an unknown role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected admin, reviewer, maintainer, developer, guest or machine")]
pub struct UnknownRole(pub String);

impl Role {
    /// Every role.
    pub const ALL: [Self; 6] = [
        Self::Admin,
        Self::Reviewer,
        Self::Maintainer,
        Self::Developer,
        Self::Guest,
        Self::Machine,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Reviewer => "reviewer",
            Self::Maintainer => "maintainer",
            Self::Developer => "developer",
            Self::Guest => "guest",
            Self::Machine => "machine",
        }
    }

    /// Whether the role may own resources and so manage them (admin, maintainer).
    #[must_use]
    pub fn can_own(self) -> bool {
        matches!(self, Self::Admin | Self::Maintainer)
    }

    /// Whether the role may write at all (admin, maintainer, developer, machine).
    #[must_use]
    pub fn can_write(self) -> bool {
        matches!(
            self,
            Self::Admin | Self::Maintainer | Self::Developer | Self::Machine
        )
    }

    /// The highest level this role may be granted, which is also the level a listing counts
    /// as at evaluation (the evaluation cap): maintainer and admin → owner, developer and
    /// machine → writer, guest and reviewer → viewer.
    #[must_use]
    pub fn max_level(self) -> Level {
        match self {
            Self::Admin | Self::Maintainer => Level::Owner,
            Self::Developer | Self::Machine => Level::Writer,
            Self::Guest | Self::Reviewer => Level::Viewer,
        }
    }

    /// The grant cap: whether an account of this role may be listed at `level`
    /// (SPEC §3: granting `owner` to a developer is a `422`).
    #[must_use]
    pub fn may_be_granted(self, level: Level) -> bool {
        level <= self.max_level()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(value: &str) -> Result<Self, UnknownRole> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| UnknownRole(value.to_owned()))
    }
}

/// What an API key's scope grants: `read` counts as a viewer listing, `write` as a writer
/// listing, on the scoped project or namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantAccess {
    /// Viewer level, for reading and downloading only (never for writing, even where
    /// `write_access` admits viewers: a read key never writes).
    Read,
    /// Writer level.
    Write,
}

impl GrantAccess {
    /// The level the grant counts as.
    #[must_use]
    pub fn level(self) -> Level {
        match self {
            Self::Read => Level::Viewer,
            Self::Write => Level::Writer,
        }
    }
}

/// What an API key's scope covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantTarget {
    /// One project (its versions included).
    Project(String),
    /// A namespace: every project in it, and the namespace itself.
    Namespace(String),
}

/// One scope of an API key: `{project|namespace, access}` (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MachineGrant {
    /// The project or namespace covered.
    pub target: GrantTarget,
    /// Read (viewer) or write (writer).
    pub access: GrantAccess,
}

/// The caller of a request, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    /// No credentials: satisfies only `public` rules.
    Anonymous,
    /// A person's account (password login or external identity provider).
    Account {
        /// The username (a [`PrincipalRef::User`]).
        username: String,
        /// The account's role.
        role: Role,
        /// Names of the local groups it belongs to (matched as `group:<name>`), shared: every
        /// request of the account clones its caller, and the auth service hands out one list
        /// per account and group set (`AuthService::groups_of`).
        groups: Arc<[String]>,
        /// Directory groups from the external token, already kept by the
        /// [`DirectoryGroupFilter`] (matched verbatim, `CN=...`).
        directory_groups: Vec<String>,
    },
    /// A machine (API-key) account; its role is always [`Role::Machine`].
    Machine {
        /// The machine name (matched as `machine:<name>`).
        name: String,
        /// The key's scopes, each a viewer or writer listing on a project or namespace.
        scopes: Vec<MachineGrant>,
    },
}

impl Caller {
    /// A plain account without groups (convenience for tests and bootstrap).
    #[must_use]
    pub fn account(username: &str, role: Role) -> Self {
        Self::Account {
            username: username.to_owned(),
            role,
            groups: Arc::default(),
            directory_groups: Vec::new(),
        }
    }

    /// The caller's role; `None` for anonymous callers.
    #[must_use]
    pub fn role(&self) -> Option<Role> {
        match self {
            Self::Anonymous => None,
            Self::Account { role, .. } => Some(*role),
            Self::Machine { .. } => Some(Role::Machine),
        }
    }

    /// Whether the caller is an admin (bypasses permission checks).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.role() == Some(Role::Admin)
    }

    /// Whether the caller is a reviewer (reads everything not disabled).
    #[must_use]
    pub fn is_reviewer(&self) -> bool {
        self.role() == Some(Role::Reviewer)
    }

    /// Whether the caller is logged in (satisfies `authenticated` rules).
    #[must_use]
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Self::Anonymous)
    }

    /// The principals this caller is, as parsed principals. Values that are not valid
    /// principals of their kind (a directory group not starting with `CN=`, a malformed group
    /// name) are dropped, so that an external token can never make a caller match a principal
    /// of another kind (an identity-provider group called `alice` is not user `alice`).
    #[must_use]
    pub fn principals(&self) -> BTreeSet<PrincipalRef> {
        let mut principals = BTreeSet::new();
        match self {
            Self::Anonymous => {}
            Self::Account {
                username,
                groups,
                directory_groups,
                ..
            } => {
                if let Ok(user @ PrincipalRef::User(_)) = PrincipalRef::parse(username) {
                    principals.insert(user);
                }
                for group in groups.iter() {
                    if let Ok(group @ PrincipalRef::Group(_)) =
                        PrincipalRef::parse(&format!("group:{group}"))
                    {
                        principals.insert(group);
                    }
                }
                for directory_group in directory_groups {
                    if let Ok(group @ PrincipalRef::DirectoryGroup(_)) =
                        PrincipalRef::parse(directory_group)
                    {
                        principals.insert(group);
                    }
                }
            }
            Self::Machine { name, .. } => {
                if let Ok(machine @ PrincipalRef::Machine(_)) =
                    PrincipalRef::parse(&format!("machine:{name}"))
                {
                    principals.insert(machine);
                }
            }
        }
        principals
    }

    /// Whether this caller is `principal`: exactly `self.principals().contains(principal)` for
    /// a valid principal (every principal of a stored profile is), without parsing the
    /// caller's identities into a set (an evaluation per search hit did that).
    #[must_use]
    pub fn is(&self, principal: &PrincipalRef) -> bool {
        match (self, principal) {
            (Self::Account { username, .. }, PrincipalRef::User(name)) => username == name,
            (Self::Account { groups, .. }, PrincipalRef::Group(name)) => {
                groups.iter().any(|group| group == name)
            }
            (
                Self::Account {
                    directory_groups, ..
                },
                PrincipalRef::DirectoryGroup(value),
            ) => directory_groups.iter().any(|group| group == value),
            (Self::Machine { name, .. }, PrincipalRef::Machine(machine)) => name == machine,
            _ => false,
        }
    }

    /// Whether this caller is the principal written `name` (`alice`, `group:ml`, `CN=...`,
    /// `machine:ci`): [`is`](Self::is) on the parsed principal, for a valid one, without
    /// parsing it.
    #[must_use]
    pub fn is_named(&self, name: &str) -> bool {
        match self {
            Self::Anonymous => false,
            Self::Account {
                username,
                groups,
                directory_groups,
                ..
            } => {
                if let Some(group) = name.strip_prefix("group:") {
                    groups.iter().any(|own| own == group)
                } else if name.starts_with("machine:") {
                    false
                } else if name.starts_with("CN=") {
                    directory_groups.iter().any(|own| own == name)
                } else {
                    username == name
                }
            }
            Self::Machine { name: machine, .. } => {
                name.strip_prefix("machine:") == Some(machine.as_str())
            }
        }
    }

    /// The principal strings this caller matches in a profile (`alice`, `group:ml`,
    /// `CN=...`, `machine:ci-bot`); empty for anonymous callers. See
    /// [`principals`](Self::principals) for what is dropped.
    ///
    /// Exactly `principals()` as strings, built without the intermediate principals: every
    /// search builds its caller's scope from these, and the detour through parsed principals
    /// (four allocations per group, and one large one that made glibc consolidate its free
    /// lists) was a twentieth of `GET /projects?size=50`'s CPU for a caller in 50 groups.
    #[must_use]
    pub fn identities(&self) -> BTreeSet<String> {
        let mut identities = BTreeSet::new();
        match self {
            Self::Anonymous => {}
            Self::Account {
                username,
                groups,
                directory_groups,
                ..
            } => {
                // What `PrincipalRef::parse` makes a user, a group and a directory group.
                if super::profile::is_username(username) {
                    identities.insert(username.clone());
                }
                for group in groups.iter() {
                    if super::profile::is_group_or_machine_name(group) {
                        identities.insert(format!("group:{group}"));
                    }
                }
                for directory_group in directory_groups {
                    if directory_group.starts_with("CN=")
                        && matches!(
                            PrincipalRef::parse(directory_group),
                            Ok(PrincipalRef::DirectoryGroup(_))
                        )
                    {
                        identities.insert(directory_group.clone());
                    }
                }
            }
            Self::Machine { name, .. } => {
                if super::profile::is_group_or_machine_name(name) {
                    identities.insert(format!("machine:{name}"));
                }
            }
        }
        identities
    }

    /// The key scopes of a machine (empty for other callers).
    #[must_use]
    pub fn machine_scopes(&self) -> &[MachineGrant] {
        match self {
            Self::Machine { scopes, .. } => scopes,
            _ => &[],
        }
    }
}

/// Keeps only the meaningful directory groups of an external token (ArtifactDB's rule, to bound
/// the size of the search filter): a group is kept when it is a valid `CN=...` principal and the
/// configured regex finds a match in it (anchor the pattern with `^...$` to match whole values).
#[derive(Debug, Clone)]
pub struct DirectoryGroupFilter {
    /// `None` keeps nothing.
    pattern: Option<Regex>,
}

impl DirectoryGroupFilter {
    /// Compiles the configured pattern; an invalid regex is a configuration error.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            pattern: Some(Regex::new(pattern)?),
        })
    }

    /// A filter that keeps no directory group at all.
    #[must_use]
    pub fn keep_none() -> Self {
        Self { pattern: None }
    }

    /// Whether one group is kept.
    #[must_use]
    pub fn keeps(&self, group: &str) -> bool {
        matches!(
            PrincipalRef::parse(group),
            Ok(PrincipalRef::DirectoryGroup(_))
        ) && self
            .pattern
            .as_ref()
            .is_some_and(|pattern| pattern.is_match(group))
    }

    /// The kept groups, in input order, without duplicates.
    #[must_use]
    pub fn apply<I, S>(&self, groups: I) -> Vec<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut seen = BTreeSet::new();
        groups
            .into_iter()
            .filter(|group| self.keeps(group.as_ref()))
            .filter(|group| seen.insert(group.as_ref().to_owned()))
            .map(|group| group.as_ref().to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_caps_follow_the_role_table() {
        use Level::{Owner, Viewer, Writer};
        let expected = [
            (Role::Admin, [true, true, true]),
            (Role::Maintainer, [true, true, true]),
            (Role::Developer, [false, true, true]),
            (Role::Machine, [false, true, true]),
            (Role::Guest, [false, false, true]),
            (Role::Reviewer, [false, false, true]),
        ];
        for (role, [owner, writer, viewer]) in expected {
            assert_eq!(
                [
                    role.may_be_granted(Owner),
                    role.may_be_granted(Writer),
                    role.may_be_granted(Viewer)
                ],
                [owner, writer, viewer],
                "{role}"
            );
        }
    }

    #[test]
    fn roles_parse_lowercase_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn identities_name_every_principal_of_the_caller() {
        let caller = Caller::Account {
            username: "alice".into(),
            role: Role::Developer,
            groups: ["ml".to_owned(), "bad name".to_owned()].into(),
            directory_groups: vec!["CN=Team,DC=corp".into(), "bob".into()],
        };
        let identities: Vec<String> = caller.identities().into_iter().collect();
        assert_eq!(identities, ["CN=Team,DC=corp", "alice", "group:ml"]);
        let machine = Caller::Machine {
            name: "ci-bot".into(),
            scopes: vec![],
        };
        assert_eq!(
            machine.identities().into_iter().collect::<Vec<_>>(),
            ["machine:ci-bot"]
        );
        assert!(Caller::Anonymous.identities().is_empty());
        assert_eq!(machine.role(), Some(Role::Machine));
    }

    #[test]
    fn identities_are_the_principals_as_strings_for_valid_and_invalid_names() {
        let names = [
            "alice",
            "Alice",
            "a",
            "group:ml",
            "machine:ci",
            "CN=Team,DC=corp",
            "CN=",
            "CN= ",
            "CN=a\u{7}b",
            "ml",
            "bad name",
            "-x",
            "x-",
            "ci-bot",
            "a.b_c-d",
            "@public",
            "",
            "g:1",
            "ü",
        ];
        let long = "x".repeat(129);
        let mut callers = vec![Caller::Anonymous];
        for username in names.iter().copied().chain([long.as_str()]) {
            callers.push(Caller::Account {
                username: username.into(),
                role: Role::Developer,
                groups: names
                    .iter()
                    .map(|name| (*name).to_owned())
                    .chain([long.clone()])
                    .collect(),
                directory_groups: names
                    .iter()
                    .map(|name| (*name).to_owned())
                    .chain([format!("CN={}", "y".repeat(1100))])
                    .collect(),
            });
            callers.push(Caller::Machine {
                name: username.into(),
                scopes: vec![],
            });
        }
        for caller in callers {
            let expected: BTreeSet<String> = caller
                .principals()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(caller.identities(), expected, "{caller:?}");
        }
    }

    #[test]
    fn directory_group_filter_keeps_matching_cn_groups_only() {
        let filter = DirectoryGroupFilter::new("^CN=ML-.*").unwrap();
        let kept = filter.apply([
            "CN=ML-Admins,DC=x",
            "CN=Payroll,DC=x",
            "ML-x",
            "CN=ML-Admins,DC=x",
        ]);
        assert_eq!(kept, ["CN=ML-Admins,DC=x"]);
        assert!(DirectoryGroupFilter::keep_none().apply(["CN=a"]).is_empty());
        assert!(DirectoryGroupFilter::new("(").is_err());
    }
}
