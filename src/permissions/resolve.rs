//! Resolution of the profile that governs a resource (SPEC §3 "Resolution").
//!
//! Walk version → project → namespace → global and take the **first profile found, whole**
//! (ArtifactDB's rule: scopes are not merged). If that profile says `"inherit": true`, its
//! principal lists (with their expiries) are unioned with the resolved profile of the scope
//! above, and its access rules override the parent's only where it sets them. When no profile
//! exists anywhere, the built-in default grants nothing to anyone but admins.
//!
//! An `inherit: true` profile with no profile above it resolves as a standalone profile (its own
//! defaults apply): there is no parent to inherit from, so nothing is unioned.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::identity::Level;
use super::profile::{AccessRule, PrincipalRef, Profile, ProfileScope};

/// The entries of one level: principal → expiry (`None` = never expires).
pub type Entries = BTreeMap<PrincipalRef, Option<DateTime<Utc>>>;

/// The profiles found along one resource's chain; `None` where no profile is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeChain {
    /// `<project>/<version>/..meta/permissions.json`, for version-level resources.
    pub version: Option<Profile>,
    /// `<project>/..meta/permissions.json`.
    pub project: Option<Profile>,
    /// The namespace's profile, when the project has a namespace.
    pub namespace: Option<Profile>,
    /// `..meta/permissions.json`.
    pub global: Option<Profile>,
}

impl ScopeChain {
    /// The chain's profiles from the most specific scope to the global one.
    fn levels(&self) -> [(ProfileScope, Option<&Profile>); 4] {
        [
            (ProfileScope::Version, self.version.as_ref()),
            (ProfileScope::Project, self.project.as_ref()),
            (ProfileScope::Namespace, self.namespace.as_ref()),
            (ProfileScope::Global, self.global.as_ref()),
        ]
    }

    /// Resolves the chain (see the module documentation).
    #[must_use]
    pub fn resolve(&self) -> ResolvedProfile {
        let levels = self.levels();
        resolve_from(&levels)
    }
}

/// Resolves a chain: the first profile found from the version up wins whole, `inherit: true`
/// unions it with the resolved profile above, and nothing at all yields the built-in default.
#[must_use]
pub fn resolve(chain: &ScopeChain) -> ResolvedProfile {
    chain.resolve()
}

fn resolve_from(levels: &[(ProfileScope, Option<&Profile>)]) -> ResolvedProfile {
    let Some(position) = levels.iter().position(|(_, profile)| profile.is_some()) else {
        return ResolvedProfile::built_in_default();
    };
    let (scope, Some(profile)) = levels[position] else {
        return ResolvedProfile::built_in_default();
    };
    let above = &levels[position + 1..];
    let has_parent = above.iter().any(|(_, profile)| profile.is_some());
    if !profile.inherit || !has_parent {
        return ResolvedProfile::standalone(scope, profile);
    }
    let parent = resolve_from(above);
    let mut resolved = ResolvedProfile {
        scope: Some(scope),
        inherited_from: parent
            .scope
            .into_iter()
            .chain(parent.inherited_from.iter().copied())
            .collect(),
        owners: parent.owners,
        writers: parent.writers,
        viewers: parent.viewers,
        read_access: profile.read_access.unwrap_or(parent.read_access),
        download_access: profile.download_access.unwrap_or(parent.download_access),
        write_access: profile.write_access.unwrap_or(parent.write_access),
    };
    union_into(&mut resolved.owners, profile.entries(Level::Owner));
    union_into(&mut resolved.writers, profile.entries(Level::Writer));
    union_into(&mut resolved.viewers, profile.entries(Level::Viewer));
    resolved
}

/// Unions entries as a union of grants: a principal granted by both sides keeps the later
/// expiry (`None`, never, beats any date).
fn union_into(target: &mut Entries, source: Entries) {
    for (principal, expiry) in source {
        target
            .entry(principal)
            .and_modify(|current| *current = later(*current, expiry))
            .or_insert(expiry);
    }
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

/// The profile that governs a resource after resolution: concrete access rules and, per level,
/// the granted principals with their expiries. This is what evaluation and the search-side
/// documents are computed from, and (serialized) what the index stores as
/// `_extra.permissions` for the sync check to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProfile {
    /// The scope of the profile that won; `None` for the built-in default.
    pub scope: Option<ProfileScope>,
    /// The scopes whose principals were unioned in through `inherit: true`, nearest first.
    pub inherited_from: Vec<ProfileScope>,
    /// Owner-level entries.
    pub owners: Entries,
    /// Writer-level entries (owners are writers too, through level nesting at evaluation).
    pub writers: Entries,
    /// Viewer-level entries.
    pub viewers: Entries,
    /// Who reads metadata and finds it in search.
    pub read_access: AccessRule,
    /// Who downloads file bytes.
    pub download_access: AccessRule,
    /// Who creates versions and uploads files.
    pub write_access: AccessRule,
}

impl Default for ResolvedProfile {
    fn default() -> Self {
        Self::built_in_default()
    }
}

impl ResolvedProfile {
    /// The built-in default used when no profile exists anywhere: no principals, every rule
    /// `none`, so only admins (who bypass rules) can do anything.
    #[must_use]
    pub fn built_in_default() -> Self {
        Self {
            scope: None,
            inherited_from: Vec::new(),
            owners: Entries::new(),
            writers: Entries::new(),
            viewers: Entries::new(),
            read_access: AccessRule::None,
            download_access: AccessRule::None,
            write_access: AccessRule::None,
        }
    }

    /// One profile on its own, with the defaults of a standalone profile for absent rules.
    #[must_use]
    pub fn standalone(scope: ProfileScope, profile: &Profile) -> Self {
        Self {
            scope: Some(scope),
            inherited_from: Vec::new(),
            owners: profile.entries(Level::Owner),
            writers: profile.entries(Level::Writer),
            viewers: profile.entries(Level::Viewer),
            read_access: profile.read_rule(),
            download_access: profile.download_rule(),
            write_access: profile.write_rule(),
        }
    }

    /// The entries listed exactly at `level`.
    #[must_use]
    pub fn entries(&self, level: Level) -> &Entries {
        match level {
            Level::Owner => &self.owners,
            Level::Writer => &self.writers,
            Level::Viewer => &self.viewers,
        }
    }

    /// The highest level at which any principal that `is_caller` accepts holds an entry still
    /// valid at `now`: the best of [`level_of`](Self::level_of) over those principals.
    #[must_use]
    pub fn best_level_where(
        &self,
        mut is_caller: impl FnMut(&PrincipalRef) -> bool,
        now: DateTime<Utc>,
    ) -> Option<Level> {
        [Level::Owner, Level::Writer, Level::Viewer]
            .into_iter()
            .find(|level| {
                self.entries(*level)
                    .iter()
                    .any(|(principal, expiry)| is_valid_at(*expiry, now) && is_caller(principal))
            })
    }

    /// The highest level at which `principal` holds an entry still valid at `now` (an entry
    /// counts while `now < expiry`).
    #[must_use]
    pub fn level_of(&self, principal: &PrincipalRef, now: DateTime<Utc>) -> Option<Level> {
        [Level::Owner, Level::Writer, Level::Viewer]
            .into_iter()
            .find(|level| {
                self.entries(*level)
                    .get(principal)
                    .is_some_and(|expiry| is_valid_at(*expiry, now))
            })
    }

    /// The serialized form: ArtifactDB's shape (`owners`, `writers`, `viewers` as lists of
    /// strings, the three rules), plus `scope`, `inherited_from` and `expires` per level.
    #[must_use]
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Whether an entry with this expiry counts at `now`.
#[must_use]
pub fn is_valid_at(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expiry.is_none_or(|expiry| now < expiry)
}

impl Serialize for ResolvedProfile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            scope: Option<ProfileScope>,
            #[serde(skip_serializing_if = "<[ProfileScope]>::is_empty")]
            inherited_from: &'a [ProfileScope],
            owners: Vec<String>,
            writers: Vec<String>,
            viewers: Vec<String>,
            read_access: AccessRule,
            download_access: AccessRule,
            write_access: AccessRule,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            expires: BTreeMap<&'static str, BTreeMap<String, DateTime<Utc>>>,
        }
        let names = |entries: &Entries| entries.keys().map(ToString::to_string).collect();
        let mut expires = BTreeMap::new();
        for level in [Level::Owner, Level::Writer, Level::Viewer] {
            let dated: BTreeMap<String, DateTime<Utc>> = self
                .entries(level)
                .iter()
                .filter_map(|(principal, expiry)| {
                    expiry.map(|expiry| (principal.to_string(), expiry))
                })
                .collect();
            if !dated.is_empty() {
                expires.insert(level.as_str(), dated);
            }
        }
        Wire {
            scope: self.scope,
            inherited_from: &self.inherited_from,
            owners: names(&self.owners),
            writers: names(&self.writers),
            viewers: names(&self.viewers),
            read_access: self.read_access,
            download_access: self.download_access,
            write_access: self.write_access,
            expires,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ResolvedProfile {
    /// Reads back the serialized form (what the index stores as `_extra.permissions`), so a
    /// search hit can be evaluated without going back to storage. Unknown principals are
    /// refused rather than dropped.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            scope: Option<ProfileScope>,
            #[serde(default)]
            inherited_from: Vec<ProfileScope>,
            owners: Vec<String>,
            writers: Vec<String>,
            viewers: Vec<String>,
            read_access: AccessRule,
            download_access: AccessRule,
            write_access: AccessRule,
            #[serde(default)]
            expires: BTreeMap<String, BTreeMap<String, DateTime<Utc>>>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let entries = |names: Vec<String>, level: Level| -> Result<Entries, D::Error> {
            let dated = wire.expires.get(level.as_str());
            names
                .into_iter()
                .map(|name| {
                    let expiry = dated.and_then(|dated| dated.get(&name)).copied();
                    PrincipalRef::parse(&name)
                        .map(|principal| (principal, expiry))
                        .map_err(serde::de::Error::custom)
                })
                .collect()
        };
        Ok(Self {
            owners: entries(wire.owners, Level::Owner)?,
            writers: entries(wire.writers, Level::Writer)?,
            viewers: entries(wire.viewers, Level::Viewer)?,
            scope: wire.scope,
            inherited_from: wire.inherited_from,
            read_access: wire.read_access,
            download_access: wire.download_access,
            write_access: wire.write_access,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn profile(value: serde_json::Value) -> Profile {
        Profile::from_value(value).unwrap()
    }

    fn user(name: &str) -> PrincipalRef {
        PrincipalRef::User(name.to_owned())
    }

    #[test]
    fn nothing_anywhere_grants_nothing() {
        let resolved = ScopeChain::default().resolve();
        assert_eq!(resolved, ResolvedProfile::built_in_default());
        assert_eq!(resolved.read_access, AccessRule::None);
        assert_eq!(resolved.scope, None);
    }

    #[test]
    fn first_profile_found_wins_whole() {
        let chain = ScopeChain {
            version: None,
            project: Some(profile(json!({"owners": ["alice"]}))),
            namespace: Some(profile(
                json!({"owners": ["nsowner"], "read_access": "public"}),
            )),
            global: Some(profile(json!({"owners": ["root"]}))),
        };
        let resolved = chain.resolve();
        assert_eq!(resolved.scope, Some(ProfileScope::Project));
        assert_eq!(resolved.owners.keys().collect::<Vec<_>>(), [&user("alice")]);
        assert_eq!(
            resolved.read_access,
            AccessRule::Viewers,
            "the namespace's rule is not merged"
        );
    }

    #[test]
    fn version_profile_overrides_project() {
        let chain = ScopeChain {
            version: Some(profile(json!({"owners": ["vo"], "read_access": "public"}))),
            project: Some(profile(json!({"owners": ["po"]}))),
            ..ScopeChain::default()
        };
        let resolved = chain.resolve();
        assert_eq!(resolved.scope, Some(ProfileScope::Version));
        assert_eq!(resolved.read_access, AccessRule::Public);
        assert!(!resolved.owners.contains_key(&user("po")));
    }

    #[test]
    fn inherit_unions_principals_and_overrides_only_set_rules() {
        let chain = ScopeChain {
            version: None,
            project: Some(profile(
                json!({"owners": ["alice"], "viewers": ["carol"], "inherit": true, "read_access": "writers"}),
            )),
            namespace: Some(profile(
                json!({"owners": ["nsowner"], "writers": ["group:team"], "write_access": "writers", "download_access": "owners"}),
            )),
            global: Some(profile(json!({"owners": ["root"]}))),
        };
        let resolved = chain.resolve();
        assert_eq!(resolved.scope, Some(ProfileScope::Project));
        assert_eq!(resolved.inherited_from, [ProfileScope::Namespace]);
        assert!(resolved.owners.contains_key(&user("alice")));
        assert!(resolved.owners.contains_key(&user("nsowner")));
        assert!(
            !resolved.owners.contains_key(&user("root")),
            "the namespace did not inherit"
        );
        assert!(
            resolved
                .writers
                .contains_key(&PrincipalRef::Group("team".into()))
        );
        assert_eq!(resolved.read_access, AccessRule::Writers);
        assert_eq!(resolved.write_access, AccessRule::Writers);
        assert_eq!(resolved.download_access, AccessRule::Owners);
    }

    #[test]
    fn inherit_chains_recursively() {
        let chain = ScopeChain {
            version: Some(profile(json!({"viewers": ["vv"], "inherit": true}))),
            project: Some(profile(json!({"viewers": ["pv"], "inherit": true}))),
            namespace: None,
            global: Some(profile(
                json!({"owners": ["root"], "read_access": "authenticated"}),
            )),
        };
        let resolved = chain.resolve();
        assert_eq!(
            resolved.inherited_from,
            [ProfileScope::Project, ProfileScope::Global]
        );
        assert_eq!(resolved.viewers.len(), 2);
        assert!(resolved.owners.contains_key(&user("root")));
        assert_eq!(resolved.read_access, AccessRule::Authenticated);
    }

    #[test]
    fn inherit_without_parent_is_standalone() {
        let chain = ScopeChain {
            project: Some(profile(json!({"owners": ["alice"], "inherit": true}))),
            ..ScopeChain::default()
        };
        let resolved = chain.resolve();
        assert_eq!(resolved.read_access, AccessRule::Viewers);
        assert!(resolved.inherited_from.is_empty());
    }

    #[test]
    fn union_keeps_the_later_expiry() {
        let chain = ScopeChain {
            project: Some(profile(
                json!({"viewers": ["carol", "dave"], "inherit": true,
                "expires": {"carol": "2030-01-01T00:00:00Z", "dave": "2030-01-01T00:00:00Z"}}),
            )),
            namespace: Some(profile(
                json!({"viewers": ["carol", "dave"], "expires": {"carol": "2031-01-01T00:00:00Z"}}),
            )),
            ..ScopeChain::default()
        };
        let resolved = chain.resolve();
        assert_eq!(
            resolved.viewers[&user("carol")].unwrap().to_rfc3339(),
            "2031-01-01T00:00:00+00:00"
        );
        assert_eq!(resolved.viewers[&user("dave")], None);
    }

    #[test]
    fn expired_entries_stop_counting_at_their_instant() {
        let resolved = ResolvedProfile::standalone(
            ProfileScope::Project,
            &profile(
                json!({"owners": ["alice"], "viewers": ["alice"], "expires": {"alice": "2030-01-01T00:00:00Z"}}),
            ),
        );
        let expiry: DateTime<Utc> = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            resolved.level_of(&user("alice"), expiry - chrono::Duration::seconds(1)),
            Some(Level::Owner)
        );
        assert_eq!(resolved.level_of(&user("alice"), expiry), None);
    }

    #[test]
    fn serialized_form_is_artifactdb_shaped() {
        let resolved = ResolvedProfile::standalone(
            ProfileScope::Project,
            &profile(
                json!({"owners": ["alice"], "viewers": ["carol"], "expires": {"carol": "2030-01-01T00:00:00Z"}}),
            ),
        );
        assert_eq!(
            resolved.to_json_value(),
            json!({
                "scope": "project", "owners": ["alice"], "writers": [], "viewers": ["carol"],
                "read_access": "viewers", "download_access": "viewers", "write_access": "owners",
                "expires": {"viewer": {"carol": "2030-01-01T00:00:00Z"}}
            })
        );
    }
}
