//! Permission profiles: the JSON document stored at each scope (SPEC §3), its parsing with
//! precise error codes, and ArtifactDB's partial update.
//!
//! A profile names principals at three nested levels (`owners` ⊂ `writers` ⊂ `viewers`) and
//! three access rules (`read_access`, `download_access`, `write_access`). Parsing is strict:
//! unknown fields, unknown access values, malformed principals and bad expiry timestamps are
//! each reported with their own [`ProfileError::code`], which the API answers as a `422`.
//! A profile holding only ArtifactDB's fields (`scope`, `owners`, `viewers`, `read_access`,
//! `write_access`) means exactly what it means in ArtifactDB: absent rules take the ArtifactDB
//! defaults (`read_access` = `viewers`, `write_access` = `owners`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::identity::{Level, Role};

/// Result alias of profile parsing.
pub type Result<T, E = ProfileError> = std::result::Result<T, E>;

/// Every way a profile can be rejected. Each variant has a stable [`code`](Self::code); the API
/// answers all of them with `422` and that code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The body is not JSON at all.
    #[error("profile is not valid json: {0}")]
    InvalidJson(String),
    /// The JSON is not an object, or a field has the wrong JSON type.
    #[error("invalid profile: {0}")]
    InvalidProfile(String),
    /// A field that profiles do not have (typo protection: `read_acess` must not be ignored).
    #[error("unknown field `{field}` in profile")]
    UnknownField {
        /// The offending field name.
        field: String,
    },
    /// An access rule that is not one of `owners`, `writers`, `viewers`, `authenticated`,
    /// `public`, `none`.
    #[error(
        "invalid value {value} for `{field}`: expected one of owners, writers, viewers, authenticated, public, none"
    )]
    InvalidAccessRule {
        /// Which rule (`read_access`, `download_access` or `write_access`).
        field: String,
        /// The rejected value, as JSON.
        value: String,
    },
    /// A principal that is not a username, `group:<name>`, `CN=...` or `machine:<name>`.
    #[error("invalid principal {value}: {reason}")]
    InvalidPrincipal {
        /// The rejected value, as JSON.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An `expires` entry whose value is not an RFC 3339 timestamp with a time zone.
    #[error("invalid expiry for `{principal}`: {value} is not an RFC 3339 timestamp")]
    InvalidExpiry {
        /// The principal the expiry belongs to.
        principal: String,
        /// The rejected value, as JSON.
        value: String,
    },
    /// A `scope` that is not `version`, `project`, `namespace` or `global`, or that differs
    /// from the scope the profile is stored at (the API writes `scope` itself).
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    /// A grant above what the grantee's role may hold (e.g. `owner` for a developer).
    #[error("{principal} has role {role} and may not be granted {level}")]
    GrantExceedsRole {
        /// The grantee.
        principal: String,
        /// The grantee's role.
        role: Role,
        /// The level the profile gives it.
        level: Level,
    },
}

impl ProfileError {
    /// Stable snake_case code of the error, used in the API's error body.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::InvalidProfile(_) => "invalid_profile",
            Self::UnknownField { .. } => "unknown_field",
            Self::InvalidAccessRule { .. } => "invalid_access_rule",
            Self::InvalidPrincipal { .. } => "invalid_principal",
            Self::InvalidExpiry { .. } => "invalid_expiry",
            Self::InvalidScope(_) => "invalid_scope",
            Self::GrantExceedsRole { .. } => "grant_exceeds_role",
        }
    }
}

/// The scope a profile is stored at. Resolution walks version → project → namespace → global.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileScope {
    /// `<project>/<version>/..meta/permissions.json`.
    Version,
    /// `<project>/..meta/permissions.json`.
    Project,
    /// `..meta/namespaces/<ns>/permissions.json`.
    Namespace,
    /// `..meta/permissions.json` (admins only).
    Global,
}

impl ProfileScope {
    /// The wire name (`version`, `project`, `namespace`, `global`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Version => "version",
            Self::Project => "project",
            Self::Namespace => "namespace",
            Self::Global => "global",
        }
    }
}

impl fmt::Display for ProfileScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProfileScope {
    type Err = ProfileError;

    fn from_str(value: &str) -> Result<Self> {
        match value {
            "version" => Ok(Self::Version),
            "project" => Ok(Self::Project),
            "namespace" => Ok(Self::Namespace),
            "global" => Ok(Self::Global),
            other => Err(ProfileError::InvalidScope(format!(
                "{other:?} is not one of version, project, namespace, global"
            ))),
        }
    }
}

/// Who an access rule admits (SPEC §3). `owners`, `writers` and `viewers` admit the principals
/// listed at that level or above (levels nest: an owner is also a writer and a viewer);
/// `authenticated` admits any logged-in caller (accounts and machines); `public` admits
/// everyone, anonymous included; `none` admits nobody (only admins, who bypass the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessRule {
    /// Principals listed in `owners`.
    Owners,
    /// Principals listed in `owners` or `writers`.
    Writers,
    /// Principals listed in `owners`, `writers` or `viewers`.
    Viewers,
    /// Any authenticated caller.
    Authenticated,
    /// Anyone, including anonymous callers.
    Public,
    /// Nobody but admins.
    None,
}

impl AccessRule {
    /// Every rule, for tests and documentation.
    pub const ALL: [Self; 6] = [
        Self::Owners,
        Self::Writers,
        Self::Viewers,
        Self::Authenticated,
        Self::Public,
        Self::None,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owners => "owners",
            Self::Writers => "writers",
            Self::Viewers => "viewers",
            Self::Authenticated => "authenticated",
            Self::Public => "public",
            Self::None => "none",
        }
    }

    /// The lowest listing level this rule admits, for the three list-based rules; `None` for
    /// `authenticated`, `public` and `none`, which do not depend on the lists.
    #[must_use]
    pub fn required_level(self) -> Option<Level> {
        match self {
            Self::Owners => Some(Level::Owner),
            Self::Writers => Some(Level::Writer),
            Self::Viewers => Some(Level::Viewer),
            Self::Authenticated | Self::Public | Self::None => None,
        }
    }
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessRule {
    type Err = ProfileError;

    fn from_str(value: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|rule| rule.as_str() == value)
            .ok_or_else(|| ProfileError::InvalidAccessRule {
                field: "access".to_owned(),
                value: Value::String(value.to_owned()).to_string(),
            })
    }
}

/// A principal named in a profile (SPEC §3). Its string form is what a caller's
/// [`identities`](super::Caller::identities) are compared with, so two spellings never denote
/// the same principal and no principal can spell a reserved search token (those start with
/// `@`, which no form below allows).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PrincipalRef {
    /// An account: `[a-z0-9][a-z0-9._-]{1,63}` (the username rule of SPEC §1).
    User(String),
    /// A local group, written `group:<name>` with `<name>` = `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`;
    /// holds the bare name.
    Group(String),
    /// A directory group from an external identity provider: any value starting with `CN=`
    /// (at most 1024 bytes, no control characters); holds the whole value, `CN=` included.
    DirectoryGroup(String),
    /// A machine (API-key) account, written `machine:<name>`; holds the bare name.
    Machine(String),
}

/// Longest directory group value accepted.
const MAX_DIRECTORY_GROUP_LEN: usize = 1024;

pub(super) fn is_username(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=64).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes[1..].iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

pub(super) fn is_group_or_machine_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl PrincipalRef {
    /// Parses the string form: `group:<name>`, `machine:<name>`, `CN=...`, or a username.
    /// Anything else (empty, upper-case usernames, unknown `kind:` prefixes, `@...`) is a
    /// [`ProfileError::InvalidPrincipal`].
    pub fn parse(value: &str) -> Result<Self> {
        let invalid = |reason: &str| ProfileError::InvalidPrincipal {
            value: Value::String(value.to_owned()).to_string(),
            reason: reason.to_owned(),
        };
        if let Some(name) = value.strip_prefix("group:") {
            return if is_group_or_machine_name(name) {
                Ok(Self::Group(name.to_owned()))
            } else {
                Err(invalid(
                    "a group name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
                ))
            };
        }
        if let Some(name) = value.strip_prefix("machine:") {
            return if is_group_or_machine_name(name) {
                Ok(Self::Machine(name.to_owned()))
            } else {
                Err(invalid(
                    "a machine name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
                ))
            };
        }
        if let Some(rest) = value.strip_prefix("CN=") {
            return if rest.trim().is_empty() {
                Err(invalid("a directory group needs a name after CN="))
            } else if value.len() > MAX_DIRECTORY_GROUP_LEN {
                Err(invalid("a directory group is at most 1024 bytes"))
            } else if value.chars().any(char::is_control) {
                Err(invalid(
                    "a directory group may not contain control characters",
                ))
            } else {
                Ok(Self::DirectoryGroup(value.to_owned()))
            };
        }
        if is_username(value) {
            return Ok(Self::User(value.to_owned()));
        }
        Err(invalid(
            "expected a username ([a-z0-9][a-z0-9._-]{1,63}), group:<name>, CN=... or machine:<name>",
        ))
    }

    /// Whether this principal names one account (a user or a machine), which has a role that
    /// caps its grants; groups and directory groups have no role (their members are capped at
    /// evaluation instead).
    #[must_use]
    pub fn is_account(&self) -> bool {
        matches!(self, Self::User(_) | Self::Machine(_))
    }
}

impl fmt::Display for PrincipalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(name) | Self::DirectoryGroup(name) => f.write_str(name),
            Self::Group(name) => write!(f, "group:{name}"),
            Self::Machine(name) => write!(f, "machine:{name}"),
        }
    }
}

impl FromStr for PrincipalRef {
    type Err = ProfileError;

    fn from_str(value: &str) -> Result<Self> {
        Self::parse(value)
    }
}

impl TryFrom<String> for PrincipalRef {
    type Error = ProfileError;

    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}

impl From<PrincipalRef> for String {
    fn from(principal: PrincipalRef) -> Self {
        principal.to_string()
    }
}

/// `null` reads as the default: ArtifactDB clients send `"viewers": null` for "nobody".
fn null_as_default<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One permission profile as stored at a scope (SPEC §3).
///
/// Access rules are `Option`s so that an `inherit: true` profile overrides its parent only
/// where it sets a rule; the `*_rule()` accessors apply the defaults of a standalone profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The scope the profile is stored at; written by the API, never chosen by a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ProfileScope>,
    /// Principals at owner level (also writers and viewers); owners manage the resource.
    #[serde(default, deserialize_with = "null_as_default")]
    pub owners: Vec<PrincipalRef>,
    /// Principals at writer level (also viewers).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub writers: Vec<PrincipalRef>,
    /// Principals at viewer level.
    #[serde(default, deserialize_with = "null_as_default")]
    pub viewers: Vec<PrincipalRef>,
    /// Who sees the metadata and finds it in search; default `viewers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_access: Option<AccessRule>,
    /// Who fetches file bytes; default: the value of `read_access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_access: Option<AccessRule>,
    /// Who creates versions and uploads files; default `owners`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_access: Option<AccessRule>,
    /// With `true`, the principal lists (and `expires`) are unioned with the resolved profile
    /// of the scope above, and the rules set here override the parent's.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub inherit: bool,
    /// Expiry per principal: after it, that principal's entries in this profile no longer
    /// count (at `now >= expiry`).
    #[serde(
        default,
        deserialize_with = "strict_expiries",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub expires: BTreeMap<PrincipalRef, DateTime<Utc>>,
}

/// Parses an expiry strictly as RFC 3339 with a `T` separator and a time zone (chrono alone
/// would also take a space), so the parser and the JSON Schema accept the same texts.
fn parse_expiry(text: &str) -> Option<DateTime<Utc>> {
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|expiry| expiry.with_timezone(&Utc))
}

fn strict_expiries<'de, D>(
    deserializer: D,
) -> std::result::Result<BTreeMap<PrincipalRef, DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let texts: BTreeMap<PrincipalRef, String> = null_as_default(deserializer)?;
    texts
        .into_iter()
        .map(|(principal, text)| match parse_expiry(&text) {
            Some(expiry) => Ok((principal, expiry)),
            None => Err(serde::de::Error::custom(format!(
                "invalid expiry for `{principal}`: {text:?} is not an RFC 3339 timestamp"
            ))),
        })
        .collect()
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// Every field a profile may have.
pub const PROFILE_FIELDS: [&str; 9] = [
    "scope",
    "owners",
    "writers",
    "viewers",
    "read_access",
    "download_access",
    "write_access",
    "inherit",
    "expires",
];

/// How `POST /projects` sets up a new project's profile (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Owners only (`read_access: owners`).
    Private,
    /// Owners and the viewers it is shared with (`read_access: viewers`).
    Shared,
    /// Anyone reads the metadata; only viewers download (`download_access: viewers`).
    Public,
}

impl Profile {
    /// Parses a profile from JSON bytes, with the precise error of the first problem found.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| ProfileError::InvalidJson(error.to_string()))?;
        Self::from_value(value)
    }

    /// Parses a profile from a JSON value (see [`from_json`](Self::from_json)).
    pub fn from_value(value: Value) -> Result<Self> {
        check_fields(&value)?;
        serde_json::from_value(value)
            .map_err(|error| ProfileError::InvalidProfile(error.to_string()))
    }

    /// Serializes the profile (as stored).
    #[must_use]
    pub fn to_json_value(&self) -> Value {
        // Serializing plain enums, strings and maps with string keys cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The new profile of a project created with `visibility`, owned by `owner`.
    #[must_use]
    pub fn for_visibility(visibility: Visibility, owner: PrincipalRef) -> Self {
        let (read, download) = match visibility {
            Visibility::Private => (AccessRule::Owners, None),
            Visibility::Shared => (AccessRule::Viewers, None),
            Visibility::Public => (AccessRule::Public, Some(AccessRule::Viewers)),
        };
        Self {
            scope: Some(ProfileScope::Project),
            owners: vec![owner],
            read_access: Some(read),
            download_access: download,
            write_access: Some(AccessRule::Owners),
            ..Self::default()
        }
    }

    /// `read_access`, defaulting to `viewers` (ArtifactDB's default).
    #[must_use]
    pub fn read_rule(&self) -> AccessRule {
        self.read_access.unwrap_or(AccessRule::Viewers)
    }

    /// `download_access`, defaulting to the effective `read_access`.
    #[must_use]
    pub fn download_rule(&self) -> AccessRule {
        self.download_access.unwrap_or_else(|| self.read_rule())
    }

    /// `write_access`, defaulting to `owners` (ArtifactDB's default).
    #[must_use]
    pub fn write_rule(&self) -> AccessRule {
        self.write_access.unwrap_or(AccessRule::Owners)
    }

    /// ArtifactDB's partial update (PUT of a profile): every field present in `patch` replaces
    /// the stored one (`null` resets it to its default); absent fields are kept. The result is
    /// validated as a whole, and `self` is left unchanged on error. A `scope` in the patch that
    /// differs from the stored scope is an [`ProfileError::InvalidScope`].
    pub fn merge_partial(&mut self, patch: Value) -> Result<()> {
        let Value::Object(patch) = patch else {
            return Err(ProfileError::InvalidProfile(
                "a profile update must be a JSON object".to_owned(),
            ));
        };
        check_fields(&Value::Object(patch.clone()))?;
        if let (Some(current), Some(Value::String(requested))) = (self.scope, patch.get("scope"))
            && requested != current.as_str()
        {
            return Err(ProfileError::InvalidScope(format!(
                "this profile is at scope {current}, not {requested:?}"
            )));
        }
        let Value::Object(mut merged) = self.to_json_value() else {
            return Err(ProfileError::InvalidProfile(
                "stored profile is not an object".to_owned(),
            ));
        };
        merged.extend(patch);
        *self = Self::from_value(Value::Object(merged))?;
        Ok(())
    }

    /// Sets the scope the API stores the profile at. A different `scope` given by the client
    /// is an [`ProfileError::InvalidScope`].
    pub fn set_scope(&mut self, scope: ProfileScope) -> Result<()> {
        match self.scope {
            Some(given) if given != scope => Err(ProfileError::InvalidScope(format!(
                "a profile stored at scope {scope} cannot say scope {given}"
            ))),
            _ => {
                self.scope = Some(scope);
                Ok(())
            }
        }
    }

    /// The entries of one level: each listed principal with its expiry (`None` = never).
    #[must_use]
    pub fn entries(&self, level: Level) -> BTreeMap<PrincipalRef, Option<DateTime<Utc>>> {
        let list = match level {
            Level::Owner => &self.owners,
            Level::Writer => &self.writers,
            Level::Viewer => &self.viewers,
        };
        list.iter()
            .map(|principal| (principal.clone(), self.expires.get(principal).copied()))
            .collect()
    }

    /// Checks that no account is listed above what its role may be granted (SPEC §3: granting
    /// `owner` to a developer is a `422`). `role_of` answers the role of a user or machine
    /// principal, `None` when unknown (unknown accounts are not checked here). Only the
    /// highest level a principal is listed at matters.
    pub fn validate_grants(&self, role_of: impl Fn(&PrincipalRef) -> Option<Role>) -> Result<()> {
        for level in [Level::Owner, Level::Writer, Level::Viewer] {
            for principal in self.entries(level).keys().filter(|p| p.is_account()) {
                if let Some(role) = role_of(principal)
                    && !role.may_be_granted(level)
                {
                    return Err(ProfileError::GrantExceedsRole {
                        principal: principal.to_string(),
                        role,
                        level,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Walks a candidate profile before serde sees it, so that each kind of mistake gets its own
/// error code (serde would report them all as one opaque message).
fn check_fields(value: &Value) -> Result<()> {
    let Value::Object(fields) = value else {
        return Err(ProfileError::InvalidProfile(
            "a profile must be a JSON object".to_owned(),
        ));
    };
    for (field, value) in fields {
        match field.as_str() {
            "scope" => match value {
                Value::Null => {}
                Value::String(scope) => {
                    scope.parse::<ProfileScope>()?;
                }
                other => {
                    return Err(ProfileError::InvalidScope(format!(
                        "{other} is not a string"
                    )));
                }
            },
            "owners" | "writers" | "viewers" => match value {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        check_principal(item)?;
                    }
                }
                other => {
                    return Err(ProfileError::InvalidProfile(format!(
                        "`{field}` must be a list of principals, not {other}"
                    )));
                }
            },
            "read_access" | "download_access" | "write_access" => match value {
                Value::Null => {}
                Value::String(rule) if rule.parse::<AccessRule>().is_ok() => {}
                other => {
                    return Err(ProfileError::InvalidAccessRule {
                        field: field.clone(),
                        value: other.to_string(),
                    });
                }
            },
            "inherit" => {
                if !matches!(value, Value::Null | Value::Bool(_)) {
                    return Err(ProfileError::InvalidProfile(format!(
                        "`inherit` must be true or false, not {value}"
                    )));
                }
            }
            "expires" => match value {
                Value::Null => {}
                Value::Object(expiries) => {
                    for (principal, expiry) in expiries {
                        PrincipalRef::parse(principal)?;
                        let valid = expiry
                            .as_str()
                            .is_some_and(|text| parse_expiry(text).is_some());
                        if !valid {
                            return Err(ProfileError::InvalidExpiry {
                                principal: principal.clone(),
                                value: expiry.to_string(),
                            });
                        }
                    }
                }
                other => {
                    return Err(ProfileError::InvalidProfile(format!(
                        "`expires` must map principals to timestamps, not {other}"
                    )));
                }
            },
            _ => {
                return Err(ProfileError::UnknownField {
                    field: field.clone(),
                });
            }
        }
    }
    Ok(())
}

fn check_principal(item: &Value) -> Result<()> {
    match item {
        Value::String(text) => PrincipalRef::parse(text).map(drop),
        other => Err(ProfileError::InvalidPrincipal {
            value: other.to_string(),
            reason: "a principal is a string".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: Value) -> Result<Profile> {
        Profile::from_value(value)
    }

    #[test]
    fn artifactdb_profile_gets_artifactdb_defaults() {
        let profile =
            parse(json!({"scope": "project", "owners": ["alice"], "viewers": ["bob"]})).unwrap();
        assert_eq!(profile.read_rule(), AccessRule::Viewers);
        assert_eq!(profile.write_rule(), AccessRule::Owners);
        assert_eq!(profile.download_rule(), AccessRule::Viewers);
        let public = parse(json!({"owners": ["alice"], "read_access": "public"})).unwrap();
        assert_eq!(public.download_rule(), AccessRule::Public);
    }

    #[test]
    fn artifactdb_null_lists_read_as_empty() {
        let profile =
            parse(json!({"owners": ["alice"], "viewers": null, "read_access": "public"})).unwrap();
        assert!(profile.viewers.is_empty());
    }

    #[test]
    fn errors_carry_their_codes() {
        let cases = [
            (
                json!({"owners": ["alice"], "colour": "red"}),
                "unknown_field",
            ),
            (json!({"read_access": "everyone"}), "invalid_access_rule"),
            (json!({"write_access": 3}), "invalid_access_rule"),
            (json!({"download_access": "Viewers"}), "invalid_access_rule"),
            (json!({"owners": ["Alice"]}), "invalid_principal"),
            (json!({"owners": ["team:x"]}), "invalid_principal"),
            (json!({"owners": ["@public"]}), "invalid_principal"),
            (json!({"owners": ["group:"]}), "invalid_principal"),
            (json!({"owners": ["CN="]}), "invalid_principal"),
            (json!({"viewers": [7]}), "invalid_principal"),
            (json!({"expires": {"carol": "tomorrow"}}), "invalid_expiry"),
            (
                json!({"expires": {"carol": "2026-12-31T00:00:00"}}),
                "invalid_expiry",
            ),
            (json!({"expires": {"carol": 1}}), "invalid_expiry"),
            (
                json!({"expires": {"carol": "2026-12-31 00:00:00Z"}}),
                "invalid_expiry",
            ),
            (
                json!({"expires": {"Carol": "2026-12-31T00:00:00Z"}}),
                "invalid_principal",
            ),
            (json!({"scope": "galaxy"}), "invalid_scope"),
            (json!({"owners": "alice"}), "invalid_profile"),
            (json!({"inherit": "yes"}), "invalid_profile"),
            (json!(["alice"]), "invalid_profile"),
        ];
        for (value, code) in cases {
            let error = parse(value.clone()).unwrap_err();
            assert_eq!(error.code(), code, "{value}: {error}");
        }
        assert_eq!(
            Profile::from_json(b"{not json").unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn principals_round_trip_through_their_string_form() {
        for text in [
            "alice",
            "group:ml-platform",
            "CN=ML-Admins,OU=Groups,DC=corp",
            "machine:ci-bot",
        ] {
            let principal = PrincipalRef::parse(text).unwrap();
            assert_eq!(principal.to_string(), text);
        }
        assert_eq!(
            PrincipalRef::parse("group:x").unwrap(),
            PrincipalRef::Group("x".into())
        );
        assert!(
            PrincipalRef::parse("a").is_err(),
            "usernames have at least two characters"
        );
        assert!(PrincipalRef::parse("CN=a\u{0}b").is_err());
        assert!(PrincipalRef::parse(&format!("CN={}", "x".repeat(1100))).is_err());
    }

    #[test]
    fn expiry_keeps_the_instant_of_any_offset() {
        let profile =
            parse(json!({"viewers": ["carol"], "expires": {"carol": "2026-12-31T02:00:00+02:00"}}))
                .unwrap();
        let expiry = profile.expires[&PrincipalRef::User("carol".into())];
        assert_eq!(expiry.to_rfc3339(), "2026-12-31T00:00:00+00:00");
    }

    #[test]
    fn merge_partial_replaces_given_fields_only() {
        let mut profile = parse(json!({"scope": "project", "owners": ["alice"], "viewers": ["bob"], "read_access": "viewers"})).unwrap();
        profile
            .merge_partial(json!({"read_access": "public", "viewers": ["carol"]}))
            .unwrap();
        assert_eq!(profile.owners, vec![PrincipalRef::User("alice".into())]);
        assert_eq!(profile.viewers, vec![PrincipalRef::User("carol".into())]);
        assert_eq!(profile.read_access, Some(AccessRule::Public));
        profile.merge_partial(json!({"read_access": null})).unwrap();
        assert_eq!(profile.read_access, None);
        assert_eq!(profile.read_rule(), AccessRule::Viewers);
    }

    #[test]
    fn merge_partial_rejects_bad_patches_and_keeps_the_profile() {
        let original = parse(json!({"scope": "project", "owners": ["alice"]})).unwrap();
        let mut profile = original.clone();
        assert_eq!(
            profile
                .merge_partial(json!({"read_access": "all"}))
                .unwrap_err()
                .code(),
            "invalid_access_rule"
        );
        assert_eq!(
            profile
                .merge_partial(json!({"scope": "global"}))
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
        assert_eq!(
            profile
                .merge_partial(json!({"nope": 1}))
                .unwrap_err()
                .code(),
            "unknown_field"
        );
        assert_eq!(
            profile.merge_partial(json!([1])).unwrap_err().code(),
            "invalid_profile"
        );
        assert_eq!(profile, original);
        profile.merge_partial(json!({"scope": "project"})).unwrap();
    }

    #[test]
    fn set_scope_refuses_a_different_client_scope() {
        let mut profile = parse(json!({"scope": "global", "owners": ["mallory"]})).unwrap();
        assert_eq!(
            profile.set_scope(ProfileScope::Project).unwrap_err().code(),
            "invalid_scope"
        );
        let mut profile = parse(json!({"owners": ["alice"]})).unwrap();
        profile.set_scope(ProfileScope::Version).unwrap();
        assert_eq!(profile.scope, Some(ProfileScope::Version));
    }

    #[test]
    fn serialization_round_trips() {
        let profile = parse(json!({
            "scope": "project", "owners": ["alice"], "writers": ["group:w"], "viewers": ["machine:ci"],
            "read_access": "authenticated", "download_access": "viewers", "write_access": "writers",
            "inherit": true, "expires": {"machine:ci": "2030-01-01T00:00:00Z"}
        }))
        .unwrap();
        assert_eq!(parse(profile.to_json_value()).unwrap(), profile);
        // ArtifactDB's fields are always written.
        let minimal = Profile::default().to_json_value();
        assert_eq!(minimal, json!({"owners": [], "viewers": []}));
    }

    #[test]
    fn grants_above_the_role_are_refused() {
        let profile = parse(json!({"owners": ["dev"], "viewers": ["guest", "group:g"]})).unwrap();
        let roles = |p: &PrincipalRef| match p.to_string().as_str() {
            "dev" => Some(Role::Developer),
            "guest" => Some(Role::Guest),
            _ => None,
        };
        let error = profile.validate_grants(roles).unwrap_err();
        assert_eq!(error.code(), "grant_exceeds_role");
        let ok = parse(json!({"writers": ["dev"], "viewers": ["guest"]})).unwrap();
        ok.validate_grants(roles).unwrap();
    }

    #[test]
    fn visibility_presets_follow_the_spec() {
        let owner = PrincipalRef::User("alice".into());
        let public = Profile::for_visibility(Visibility::Public, owner.clone());
        assert_eq!(
            (public.read_rule(), public.download_rule()),
            (AccessRule::Public, AccessRule::Viewers)
        );
        let private = Profile::for_visibility(Visibility::Private, owner);
        assert_eq!(private.download_rule(), AccessRule::Owners);
    }
}
