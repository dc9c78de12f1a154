//! Typed builders for every storage key of the layout in SPEC §2.
//!
//! Only the permission-profile keys live here on the `perm` branch; the full set is written on
//! another branch and replaces this file at merge.

/// Key of the global profile: `..meta/permissions.json` (admins only).
#[must_use]
pub fn global_permissions() -> String {
    "..meta/permissions.json".to_owned()
}

/// Key of a namespace profile: `..meta/namespaces/<ns>/permissions.json`.
#[must_use]
pub fn namespace_permissions(ns: &str) -> String {
    format!("..meta/namespaces/{ns}/permissions.json")
}

/// Key of a project profile: `<project>/..meta/permissions.json`.
#[must_use]
pub fn project_permissions(project: &str) -> String {
    format!("{project}/..meta/permissions.json")
}

/// Key of a version profile: `<project>/<version>/..meta/permissions.json`.
#[must_use]
pub fn version_permissions(project: &str, version: &str) -> String {
    format!("{project}/{version}/..meta/permissions.json")
}
