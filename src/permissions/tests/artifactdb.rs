//! ArtifactDB's read rules × callers: a profile with only ArtifactDB's fields behaves exactly as
//! in ArtifactDB, directly and in search.

use serde_json::json;

use crate::permissions::{
    AccessScope, Action, Caller, Denial, DocumentAccess, Role, can_download, can_read, can_write,
    decide,
};

use super::{now, version_target};

/// The callers of the table, in column order.
fn callers() -> [(&'static str, Caller); 5] {
    [
        ("owner", Caller::account("alice", Role::Maintainer)),
        ("viewer", Caller::account("victor", Role::Maintainer)),
        ("other", Caller::account("olga", Role::Maintainer)),
        ("anonymous", Caller::Anonymous),
        ("admin", Caller::account("root", Role::Admin)),
    ]
}

#[test]
fn artifactdb_read_rules_by_caller() {
    // read_access → can_read for owner, viewer, other account, anonymous, admin.
    let table = [
        ("owners", [true, false, false, false, true]),
        ("viewers", [true, true, false, false, true]),
        ("authenticated", [true, true, true, false, true]),
        ("public", [true, true, true, true, true]),
        ("none", [false, false, false, false, true]),
    ];
    for (rule, expected) in table {
        let target = version_target(json!({
            "scope": "project", "owners": ["alice"], "viewers": ["victor"], "read_access": rule
        }));
        let document = DocumentAccess::for_target(&target, now());
        for ((name, caller), expected) in callers().into_iter().zip(expected) {
            assert_eq!(
                can_read(&caller, &target, now()),
                expected,
                "read_access {rule}, {name}"
            );
            // ArtifactDB has no download rule: downloading follows reading.
            assert_eq!(
                can_download(&caller, &target, now()),
                expected,
                "download, {rule}, {name}"
            );
            assert_eq!(
                AccessScope::for_caller(&caller).matches(&document, now()),
                expected,
                "search, read_access {rule}, {name}"
            );
            let read = decide(&caller, Action::ReadMetadata, &target, now());
            assert_eq!(read.is_ok(), expected, "decide, {rule}, {name}");
            if !expected {
                assert_eq!(
                    read,
                    Err(Denial::NotFound),
                    "unreadable is 404, {rule}, {name}"
                );
            }
        }
    }
}

#[test]
fn artifactdb_write_rule_defaults_to_owners() {
    for rule in ["owners", "viewers", "authenticated", "public"] {
        let target = version_target(json!({
            "scope": "project", "owners": ["alice"], "viewers": ["victor"], "read_access": rule
        }));
        let expected = [true, false, false, false, true];
        for ((name, caller), expected) in callers().into_iter().zip(expected) {
            assert_eq!(
                can_write(&caller, &target, now()),
                expected,
                "write, {rule}, {name}"
            );
        }
    }
}

#[test]
fn artifactdb_write_access_viewers_lets_viewers_upload() {
    let target = version_target(json!({
        "scope": "project", "owners": ["alice"], "viewers": ["victor"],
        "read_access": "viewers", "write_access": "viewers"
    }));
    let viewer = Caller::account("victor", Role::Maintainer);
    assert_eq!(decide(&viewer, Action::UploadFile, &target, now()), Ok(()));
    assert_eq!(
        decide(&viewer, Action::ChangePermissions, &target, now()),
        Err(Denial::Forbidden)
    );
    let other = Caller::account("olga", Role::Maintainer);
    assert_eq!(
        decide(&other, Action::UploadFile, &target, now()),
        Err(Denial::NotFound)
    );
}
