//! Lifecycle states of namespaces, projects and versions (SPEC §3 "Lifecycle states").
//!
//! The effective state of a resource is the most restrictive along its chain
//! (namespace → project → version): a version in a deprecated project is deprecated, anything
//! in a disabled namespace is disabled. `deprecated` allows reads and downloads only;
//! `disabled` hides the resource from everyone but admins.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The lifecycle state of one resource, ordered from least to most restrictive
/// (`Active < Deprecated < Disabled`), so the effective state is the maximum.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleState {
    /// Normal operation.
    #[default]
    Active,
    /// Read and download only; every write except changing the state back is a `409`.
    Deprecated,
    /// Invisible to everyone but admins (`404`, absent from search).
    Disabled,
}

/// The text of an unknown state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown state {0:?}: expected active, deprecated or disabled")]
pub struct UnknownState(pub String);

impl LifecycleState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Active, Self::Deprecated, Self::Disabled];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Disabled => "disabled",
        }
    }
}

impl fmt::Display for LifecycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LifecycleState {
    type Err = UnknownState;

    fn from_str(value: &str) -> Result<Self, UnknownState> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| UnknownState(value.to_owned()))
    }
}

/// The effective state of a resource: the most restrictive of the states along its chain.
/// Absent levels (a project without namespace, a project-level target without version) count as
/// `active`.
#[must_use]
pub fn effective_state(
    namespace: Option<LifecycleState>,
    project: Option<LifecycleState>,
    version: Option<LifecycleState>,
) -> LifecycleState {
    [namespace, project, version]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::{Active, Deprecated, Disabled};
    use super::*;

    #[test]
    fn most_restrictive_state_wins() {
        assert_eq!(effective_state(None, None, None), Active);
        assert_eq!(
            effective_state(None, Some(Deprecated), Some(Active)),
            Deprecated
        );
        assert_eq!(
            effective_state(Some(Disabled), Some(Active), Some(Deprecated)),
            Disabled
        );
        assert_eq!(
            effective_state(Some(Active), Some(Active), Some(Deprecated)),
            Deprecated
        );
        for a in LifecycleState::ALL {
            for b in LifecycleState::ALL {
                for c in LifecycleState::ALL {
                    let state = effective_state(Some(a), Some(b), Some(c));
                    assert!(state >= a && state >= b && state >= c);
                    assert!(state == a || state == b || state == c);
                }
            }
        }
    }

    #[test]
    fn states_parse_their_wire_names() {
        for state in LifecycleState::ALL {
            assert_eq!(state.as_str().parse::<LifecycleState>().unwrap(), state);
        }
        assert!("Active".parse::<LifecycleState>().is_err());
    }
}
