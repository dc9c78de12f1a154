//! ArtifactDB ids: `project:path@version`, where `version` may be `latest`.
//!
//! Parsing splits on the **first** `:` (project ids contain none) and the **last** `@`
//! (versions contain none), so a path may itself contain `:` and `@`. Each part is validated
//! with [`crate::model::names`].

use std::fmt;
use std::str::FromStr;

use super::names::{self, NameError, NameKind};

/// Which version an id points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    /// The completed version with the highest revision the caller can read.
    Latest,
    /// One named version.
    Exact(String),
}

impl VersionSelector {
    /// Parses a version part: `latest` (exactly) or a valid version name.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value == names::LATEST {
            return Ok(Self::Latest);
        }
        names::validate_version(value)?;
        Ok(Self::Exact(value.to_owned()))
    }

    /// The version as written in an id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Latest => names::LATEST,
            Self::Exact(version) => version,
        }
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, validated ArtifactDB id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactId {
    /// The project id.
    pub project: String,
    /// The file path inside the version.
    pub path: String,
    /// The version, or `latest`.
    pub version: VersionSelector,
}

impl ArtifactId {
    /// Builds an id from parts, validating each.
    pub fn new(project: &str, path: &str, version: &str) -> Result<Self, NameError> {
        names::validate_project_id(project)?;
        names::validate_path(path)?;
        let version = VersionSelector::parse(version)?;
        Ok(Self {
            project: project.to_owned(),
            path: path.to_owned(),
            version,
        })
    }

    /// Parses `project:path@version`, splitting on the first `:` and the last `@`.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let Some((project, rest)) = value.split_once(':') else {
            return Err(NameError::new(
                NameKind::ArtifactId,
                value,
                "expected project:path@version (missing ':')",
            ));
        };
        let Some((path, version)) = rest.rsplit_once('@') else {
            return Err(NameError::new(
                NameKind::ArtifactId,
                value,
                "expected project:path@version (missing '@')",
            ));
        };
        Self::new(project, path, version)
    }
}

impl FromStr for ArtifactId {
    type Err = NameError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.project, self.path, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_round_trip() {
        let id = ArtifactId::parse("bert-base:weights/model.bin@v1").expect("valid");
        assert_eq!(id.project, "bert-base");
        assert_eq!(id.path, "weights/model.bin");
        assert_eq!(id.version, VersionSelector::Exact("v1".into()));
        assert_eq!(id.to_string(), "bert-base:weights/model.bin@v1");
    }

    #[test]
    fn splits_on_first_colon_and_last_at() {
        let id: ArtifactId = "p:a:b@c/x@y.json@2026-11-01".parse().expect("valid");
        assert_eq!(id.project, "p");
        assert_eq!(id.path, "a:b@c/x@y.json");
        assert_eq!(id.version.as_str(), "2026-11-01");
        assert_eq!(id.to_string(), "p:a:b@c/x@y.json@2026-11-01");
    }

    #[test]
    fn latest_is_a_selector() {
        let id = ArtifactId::parse("p:f.csv@latest").expect("valid");
        assert_eq!(id.version, VersionSelector::Latest);
        assert_eq!(id.to_string(), "p:f.csv@latest");
        // Only the exact spelling selects; other casings are invalid version names.
        assert!(ArtifactId::parse("p:f.csv@LATEST").is_err());
    }

    #[test]
    fn rejects_malformed_and_hostile_ids() {
        for bad in [
            "",
            "p",
            "p:f.csv",
            "pf.csv@v1",
            ":f.csv@v1",
            "p:@v1",
            "p:f.csv@",
            "p:../x@v1",
            "p:..meta/version.json@v1",
            "p:/etc/passwd@v1",
            "../p:f@v1",
            "p:f\0@v1",
            "p:f@v/1",
            "p q:f@v1",
        ] {
            assert!(ArtifactId::parse(bad).is_err(), "{bad:?}");
        }
        let error = ArtifactId::parse("nothing").expect_err("invalid");
        assert_eq!(error.kind(), NameKind::ArtifactId);
        let error = ArtifactId::parse("p:../x@v1").expect_err("invalid");
        assert_eq!(error.code(), "invalid_path");
    }
}
