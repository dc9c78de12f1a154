//! Cross-module tests of the permission engine: the example profiles against their schema,
//! ArtifactDB's read rules, the roles × levels × rules × states × actions matrix, and property
//! tests tying the search side to evaluation.

mod artifactdb;
mod examples;
mod matrix;
mod properties;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Profile, ProfileScope, ResolvedProfile, Target};

/// The instant most tests evaluate at.
fn now() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

/// A version target of project `bert` in namespace `nlp` governed by one project profile.
fn version_target(profile: Value) -> Target {
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
