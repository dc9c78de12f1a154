//! Validation of project ids, versions, namespaces, usernames, group names and file paths
//! (SPEC §1).
//!
//! Every name that reaches storage goes through one of these functions first; the storage layer
//! re-checks keys with [`crate::storage::validate_key`] as a last line of defence. A failure is a
//! [`NameError`], which the API answers with `400` and the code from [`NameError::code`]
//! (`invalid_name` or `invalid_path`) — never a `500`.
//!
//! Rules:
//!
//! * project ids and versions: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, and not `latest` (compared
//!   ASCII case-insensitively, so `Latest` can never be confused with the `latest` selector);
//! * namespaces: `[a-z0-9][a-z0-9-]{0,63}`;
//! * usernames: `[a-z0-9][a-z0-9._-]{1,63}`;
//! * local group names: the username rule (`[a-z0-9][a-z0-9._-]{1,63}`), so a group name never
//!   contains `:` and `group:<name>` principals stay unambiguous;
//! * paths: see [`validate_path`].

use std::fmt;

/// Maximum length of a file path in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// The version selector that names the latest readable completed version.
pub const LATEST: &str = "latest";

/// Which kind of name failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A project id.
    Project,
    /// A version name.
    Version,
    /// A namespace name.
    Namespace,
    /// A username.
    Username,
    /// A local group name.
    Group,
    /// A file path inside a version.
    Path,
    /// An ArtifactDB id `project:path@version`.
    ArtifactId,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Project => "project id",
            Self::Version => "version",
            Self::Namespace => "namespace",
            Self::Username => "username",
            Self::Group => "group name",
            Self::Path => "path",
            Self::ArtifactId => "artifactdb id",
        })
    }
}

/// A name or path that does not follow the rules of SPEC §1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An invalid project id.
    #[error("invalid project id {value:?}: {reason}")]
    Project {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An invalid version name.
    #[error("invalid version {value:?}: {reason}")]
    Version {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An invalid namespace name.
    #[error("invalid namespace {value:?}: {reason}")]
    Namespace {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An invalid username.
    #[error("invalid username {value:?}: {reason}")]
    Username {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An invalid group name.
    #[error("invalid group name {value:?}: {reason}")]
    Group {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An invalid file path.
    #[error("invalid path {value:?}: {reason}")]
    Path {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A malformed ArtifactDB id (missing `:` or `@`).
    #[error("invalid artifactdb id {value:?}: {reason}")]
    ArtifactId {
        /// The rejected value (truncated to 80 characters).
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
}

impl NameError {
    /// Builds the error of `kind` for `value`, truncating the value so that error messages
    /// stay short whatever a client sent.
    #[must_use]
    pub fn new(kind: NameKind, value: &str, reason: &'static str) -> Self {
        let value: String = value.chars().take(80).collect();
        match kind {
            NameKind::Project => Self::Project { value, reason },
            NameKind::Version => Self::Version { value, reason },
            NameKind::Namespace => Self::Namespace { value, reason },
            NameKind::Username => Self::Username { value, reason },
            NameKind::Group => Self::Group { value, reason },
            NameKind::Path => Self::Path { value, reason },
            NameKind::ArtifactId => Self::ArtifactId { value, reason },
        }
    }

    /// Which kind of name was rejected.
    #[must_use]
    pub fn kind(&self) -> NameKind {
        match self {
            Self::Project { .. } => NameKind::Project,
            Self::Version { .. } => NameKind::Version,
            Self::Namespace { .. } => NameKind::Namespace,
            Self::Username { .. } => NameKind::Username,
            Self::Group { .. } => NameKind::Group,
            Self::Path { .. } => NameKind::Path,
            Self::ArtifactId { .. } => NameKind::ArtifactId,
        }
    }

    /// The API error code: `invalid_path` for paths, `invalid_name` for everything else.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Path { .. } => "invalid_path",
            _ => "invalid_name",
        }
    }
}

/// Result alias of this module.
pub type Result<T, E = NameError> = std::result::Result<T, E>;

/// Checks `value` against `[first][rest]{min_rest,max_rest}` with ASCII character classes.
fn check_pattern(
    kind: NameKind,
    value: &str,
    first: fn(u8) -> bool,
    rest: fn(u8) -> bool,
    max_len: usize,
    min_len: usize,
) -> Result<()> {
    let bytes = value.as_bytes();
    let Some(&head) = bytes.first() else {
        return Err(NameError::new(kind, value, "must not be empty"));
    };
    if bytes.len() < min_len {
        return Err(NameError::new(kind, value, "too short"));
    }
    if bytes.len() > max_len {
        return Err(NameError::new(kind, value, "too long"));
    }
    if !first(head) {
        return Err(NameError::new(
            kind,
            value,
            "must start with an allowed letter or digit",
        ));
    }
    if !bytes[1..].iter().all(|&byte| rest(byte)) {
        return Err(NameError::new(
            kind,
            value,
            "contains a character not allowed",
        ));
    }
    Ok(())
}

fn is_alnum(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

fn is_id_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')
}

fn is_lower_alnum(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

fn is_namespace_char(byte: u8) -> bool {
    is_lower_alnum(byte) || byte == b'-'
}

fn is_username_char(byte: u8) -> bool {
    is_lower_alnum(byte) || matches!(byte, b'.' | b'_' | b'-')
}

/// Validates a project id: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, not `latest`.
pub fn validate_project_id(value: &str) -> Result<()> {
    check_pattern(NameKind::Project, value, is_alnum, is_id_char, 128, 1)?;
    if value.eq_ignore_ascii_case(LATEST) {
        return Err(NameError::new(
            NameKind::Project,
            value,
            "`latest` is reserved",
        ));
    }
    Ok(())
}

/// Validates a version name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, not `latest` (the selector
/// of the latest version, in any letter case).
pub fn validate_version(value: &str) -> Result<()> {
    check_pattern(NameKind::Version, value, is_alnum, is_id_char, 128, 1)?;
    if value.eq_ignore_ascii_case(LATEST) {
        return Err(NameError::new(
            NameKind::Version,
            value,
            "`latest` is reserved",
        ));
    }
    Ok(())
}

/// Validates a namespace name: `[a-z0-9][a-z0-9-]{0,63}`.
pub fn validate_namespace(value: &str) -> Result<()> {
    check_pattern(
        NameKind::Namespace,
        value,
        is_lower_alnum,
        is_namespace_char,
        64,
        1,
    )
}

/// Validates a username: `[a-z0-9][a-z0-9._-]{1,63}` (2 to 64 characters).
pub fn validate_username(value: &str) -> Result<()> {
    check_pattern(
        NameKind::Username,
        value,
        is_lower_alnum,
        is_username_char,
        64,
        2,
    )
}

/// Validates a local group name with the username rule `[a-z0-9][a-z0-9._-]{1,63}`: lower case,
/// no `:` (so `group:<name>` is unambiguous), safe as a storage key segment.
pub fn validate_group_name(value: &str) -> Result<()> {
    check_pattern(
        NameKind::Group,
        value,
        is_lower_alnum,
        is_username_char,
        64,
        2,
    )
}

/// Whether `c` is a Unicode format (`Cf`), line/paragraph separator or other invisible character
/// that can disguise a path: bidi overrides and isolates, zero-width characters, the BOM, soft
/// hyphen, tag characters, interlinear annotations.
fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

/// A segment with dot look-alikes (fullwidth `．`, one-dot leader `․`, small full stop `﹒`,
/// two-dot leader `‥`, ellipsis `…`) spelled as ASCII dots, as NFKC normalisation would. Used
/// only to check the dot rules, so `．．` can't pass as something other than `..` somewhere
/// else.
fn dots_normalised(segment: &str) -> String {
    let mut normalised = String::with_capacity(segment.len());
    for c in segment.chars() {
        match c {
            '\u{FF0E}' | '\u{2024}' | '\u{FE52}' => normalised.push('.'),
            '\u{2025}' => normalised.push_str(".."),
            '\u{2026}' => normalised.push_str("..."),
            other => normalised.push(other),
        }
    }
    normalised
}

/// Validates a file path inside a version.
///
/// A valid path is relative and `/`-separated, 1 to 1024 bytes, and each segment:
///
/// * is not empty (so no leading `/`, trailing `/` or `//`), not `.` and not `..`;
/// * does not start with `..` (so `..meta` is reserved for Trove's records);
/// * does not start or end with whitespace (and is not whitespace only);
/// * contains no NUL, control character, backslash (a Windows separator that some tools would
///   follow), or Unicode format character (bidi overrides like U+202E, zero-width characters,
///   BOM, line separators) that could make a name display as something it is not;
/// * with dot look-alikes (fullwidth `．` and friends) read as `.`, still obeys the dot rules,
///   so `．．` is rejected like `..`.
pub fn validate_path(value: &str) -> Result<()> {
    let invalid = |reason| Err(NameError::new(NameKind::Path, value, reason));
    if value.is_empty() {
        return invalid("must not be empty");
    }
    if value.len() > MAX_PATH_BYTES {
        return invalid("longer than 1024 bytes");
    }
    if value.starts_with('/') {
        return invalid("must be relative");
    }
    if value.chars().any(char::is_control) {
        return invalid("contains a control character");
    }
    if value.contains('\\') {
        return invalid("contains a backslash");
    }
    if value.chars().any(is_format_char) {
        return invalid("contains an invisible or bidi control character");
    }
    for segment in value.split('/') {
        if segment.is_empty() {
            return invalid("contains an empty segment");
        }
        if segment.starts_with(char::is_whitespace) || segment.ends_with(char::is_whitespace) {
            return invalid("a segment starts or ends with whitespace");
        }
        let normalised = dots_normalised(segment);
        if normalised == "." || normalised == ".." {
            return invalid("contains a '.' or '..' segment");
        }
        if normalised.starts_with("..") {
            return invalid("a segment starts with '..' (reserved)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_and_versions_follow_the_pattern() {
        for ok in [
            "bert-base",
            "A",
            "v1",
            "2026-11-01",
            "a.b_c-d",
            &"a".repeat(128),
        ] {
            assert!(validate_project_id(ok).is_ok(), "{ok}");
            assert!(validate_version(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "a/b",
            "a b",
            "..",
            "..meta",
            "a:b",
            "a@b",
            "é",
            "latest",
            "LATEST",
            &"a".repeat(129),
            "a\0",
            "a\n",
        ] {
            assert!(validate_project_id(bad).is_err(), "{bad:?}");
            assert!(validate_version(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            validate_version("latest"),
            Err(NameError::Version { .. })
        ));
    }

    #[test]
    fn namespaces_are_lower_case_with_dashes() {
        for ok in ["nlp", "a", "team-1", &"a".repeat(64)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "NLP", "-a", "a_b", "a.b", "a/b", &"a".repeat(65), ".."] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn usernames_and_groups_follow_the_username_rule() {
        for ok in ["al", "alice", "bob.smith", "ci_bot-2", &"a".repeat(64)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
            assert!(validate_group_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Alice",
            ".alice",
            "-a",
            "a:b",
            "group:x",
            "a/b",
            "..",
            &"a".repeat(65),
            "al\u{202e}",
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
            assert!(validate_group_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_accept_ordinary_relative_paths() {
        for ok in [
            "file.csv",
            "data/train/part-0001.parquet",
            ".adbignore",
            "a.b/c..d",
            "résumé/ü.json",
            "name with spaces.txt",
            "a/.hidden",
            "x:y@z",
        ] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        assert!(validate_path(&"a".repeat(1024)).is_ok());
    }

    #[test]
    fn paths_reject_hostile_inputs() {
        for bad in [
            "",
            "..",
            ".",
            "..meta",
            "..meta/version.json",
            "a/..meta",
            "a/../b",
            "a/./b",
            "../etc/passwd",
            "/etc/passwd",
            "/abs",
            "a//b",
            "a/",
            "a\0b",
            "a\nb",
            "a\rb",
            "a\tb",
            "a\u{7f}b",
            "a\\b",
            "..\\x",
            "evil\u{202e}txt.exe",
            "a\u{200b}b",
            "\u{feff}a",
            "a\u{2066}b",
            "\u{ff0e}\u{ff0e}",
            "a/\u{ff0e}\u{ff0e}/b",
            "\u{ff0e}",
            "\u{2025}",
            "\u{2025}meta",
            " ",
            " a",
            "a /b",
            "a/ ",
        ] {
            let error = validate_path(bad).expect_err(bad);
            assert_eq!(error.code(), "invalid_path", "{bad:?}");
        }
        assert!(validate_path(&"a".repeat(1025)).is_err());
        assert!(validate_path(&"ab/".repeat(400)).is_err());
    }

    #[test]
    fn errors_map_to_codes_and_truncate_values() {
        let error = validate_project_id(&"!".repeat(1000)).expect_err("invalid");
        assert_eq!(error.code(), "invalid_name");
        assert_eq!(error.kind(), NameKind::Project);
        assert!(error.to_string().len() < 200);
    }
}
