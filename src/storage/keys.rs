//! Typed builders for every storage key of the layout in SPEC §2.
//!
//! ```text
//! ..meta/permissions.json                       global profile
//! ..meta/users/<username>.json                  accounts
//! ..meta/groups/<group>.json                    local groups
//! ..meta/api-keys/<key-id>.json                 machine credentials
//! ..meta/namespaces/<ns>/namespace.json         namespace record
//! ..meta/namespaces/<ns>/permissions.json       namespace profile
//! ..meta/namespace-projects/<ns>/<project>/<id>.json  claims: a project created in a namespace
//! ..meta/audit/...                              audit events
//! ..meta/audit-checkpoints/<writer>.json        signed checkpoint of a writer's chain
//! ..meta/feed/<sequence>                        change feed (20-digit sequence numbers)
//! ..meta/jobs/<job-id>.json                     background jobs, readable by every replica
//! ..meta/leases/<name>.json                     leases: scheduled tasks, the admin guard
//! ..meta/staging-sweeps/<upload-id>.json        uploads whose URLs may still write staging
//! <project>/..meta/project.json                 project record
//! <project>/..meta/permissions.json             project profile
//! <project>/<version>/..meta/version.json       version record
//! <project>/<version>/..meta/permissions.json   version profile
//! <project>/<version>/..meta/links.json         links
//! <project>/<version>/..meta/files/<path>.json  file records (size, checksums, uploader)
//! <project>/<version>/..meta/staging/...         uploads not yet accepted (never visible)
//! <project>/<version>/.adbignore                paths not to index
//! <project>/<version>/<path>                    data files and metadata documents
//! ```
//!
//! The builders only concatenate: callers validate names first with [`crate::model::names`]
//! (a project id or version can never be `..meta`, a path never has a segment starting with
//! `..`), and every backend re-checks the final key with [`super::validate_key`].

/// The reserved segment under which Trove keeps its own records. No project id, version or path
/// segment can take this value (they can't start with `.`/`..`).
pub const META: &str = "..meta";

/// File name of every permission profile.
const PERMISSIONS: &str = "permissions.json";

/// `..meta/permissions.json`: the global permission profile.
#[must_use]
pub fn global_permissions() -> String {
    format!("{META}/{PERMISSIONS}")
}

/// `..meta/users/`: prefix of every account record.
#[must_use]
pub fn users_prefix() -> String {
    format!("{META}/users/")
}

/// `..meta/users/<username>.json`: one account.
#[must_use]
pub fn user(username: &str) -> String {
    format!("{META}/users/{username}.json")
}

/// `..meta/groups/`: prefix of every local group record.
#[must_use]
pub fn groups_prefix() -> String {
    format!("{META}/groups/")
}

/// `..meta/groups/<group>.json`: one local group.
#[must_use]
pub fn group(group: &str) -> String {
    format!("{META}/groups/{group}.json")
}

/// `..meta/api-keys/`: prefix of every API key record.
#[must_use]
pub fn api_keys_prefix() -> String {
    format!("{META}/api-keys/")
}

/// `..meta/api-keys/<key-id>.json`: one API key (hashed secret, scopes, expiry).
#[must_use]
pub fn api_key(key_id: &str) -> String {
    format!("{META}/api-keys/{key_id}.json")
}

/// `..meta/namespaces/`: prefix under which every namespace has a directory.
#[must_use]
pub fn namespaces_prefix() -> String {
    format!("{META}/namespaces/")
}

/// `..meta/namespaces/<ns>/namespace.json`: one namespace record.
#[must_use]
pub fn namespace_record(namespace: &str) -> String {
    format!("{META}/namespaces/{namespace}/namespace.json")
}

/// `..meta/namespaces/<ns>/permissions.json`: one namespace's permission profile.
#[must_use]
pub fn namespace_permissions(namespace: &str) -> String {
    format!("{META}/namespaces/{namespace}/{PERMISSIONS}")
}

/// `..meta/namespace-projects/<ns>/`: the claims of the projects created in one namespace
/// (apart from the namespace records, so listing the namespaces never lists them).
#[must_use]
pub fn namespace_claims_prefix(namespace: &str) -> String {
    format!("{META}/namespace-projects/{namespace}/")
}

/// `..meta/namespace-projects/<ns>/<project>/<id>.json`: one creation's claim of `project` in
/// `namespace`, written before the project record (each creation its own `id`).
#[must_use]
pub fn namespace_claim(namespace: &str, project: &str, id: &str) -> String {
    format!("{META}/namespace-projects/{namespace}/{project}/{id}.json")
}

/// `..meta/audit-checkpoints/`: prefix of the signed checkpoints of the audit chains (apart
/// from the events, so listings of events never see them).
#[must_use]
pub fn audit_checkpoint_prefix() -> String {
    format!("{META}/audit-checkpoints/")
}

/// `..meta/audit-checkpoints/<writer>.json`: the last checkpoint of one writer's chain.
#[must_use]
pub fn audit_checkpoint(writer: &str) -> String {
    format!("{}{writer}.json", audit_checkpoint_prefix())
}

/// `..meta/feed/`: prefix of the change feed.
#[must_use]
pub fn feed_prefix() -> String {
    format!("{META}/feed/")
}

/// `..meta/feed/<sequence>`: one change record; the sequence is zero-padded to 20 digits so
/// that byte order is sequence order.
#[must_use]
pub fn feed_entry(sequence: u64) -> String {
    format!("{}{sequence:020}", feed_prefix())
}

/// The sequence number of a feed key, `None` for anything else.
#[must_use]
pub fn parse_feed_entry(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(&feed_prefix())?;
    if digits.len() != 20 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `..meta/jobs/`: prefix of the job records.
#[must_use]
pub fn jobs_prefix() -> String {
    format!("{META}/jobs/")
}

/// `..meta/jobs/<job-id>.json`: one job's record.
#[must_use]
pub fn job(job_id: &str) -> String {
    format!("{}{job_id}.json", jobs_prefix())
}

/// `..meta/leases/<name>.json`: a lease (scheduled tasks, the guard of admin changes).
#[must_use]
pub fn lease(name: &str) -> String {
    format!("{META}/leases/{name}.json")
}

/// `..meta/staging-sweeps/`: one record per upload with presigned URLs, until the last of
/// them expires (see [`staging_sweep`]).
#[must_use]
pub fn staging_sweeps_prefix() -> String {
    format!("{META}/staging-sweeps/")
}

/// `..meta/staging-sweeps/<upload-id>.json`: an upload whose presigned URLs may still write
/// its staging area; once the upload has ended, whatever they write there is removed by the
/// scheduled purge, until they have all expired.
#[must_use]
pub fn staging_sweep(upload_id: &str) -> String {
    format!("{META}/staging-sweeps/{upload_id}.json")
}

/// `<project>/<version>/..meta/staging/<upload-id>/`: everything upload `upload_id`'s
/// presigned URLs write.
#[must_use]
pub fn upload_staging_prefix(project: &str, version: &str, upload_id: &str) -> String {
    format!("{project}/{version}/{META}/staging/{upload_id}/")
}

/// `..meta/audit/`: prefix of the append-only audit events.
#[must_use]
pub fn audit_prefix() -> String {
    format!("{META}/audit/")
}

/// `<project>/`: prefix of everything belonging to one project.
#[must_use]
pub fn project_prefix(project: &str) -> String {
    format!("{project}/")
}

/// `<project>/..meta/project.json`: one project record.
#[must_use]
pub fn project_record(project: &str) -> String {
    format!("{project}/{META}/project.json")
}

/// `<project>/..meta/permissions.json`: one project's permission profile.
#[must_use]
pub fn project_permissions(project: &str) -> String {
    format!("{project}/{META}/{PERMISSIONS}")
}

/// `<project>/<version>/`: prefix of everything belonging to one version.
#[must_use]
pub fn version_prefix(project: &str, version: &str) -> String {
    format!("{project}/{version}/")
}

/// `<project>/<version>/..meta/version.json`: one version record.
#[must_use]
pub fn version_record(project: &str, version: &str) -> String {
    format!("{project}/{version}/{META}/version.json")
}

/// `<project>/<version>/..meta/permissions.json`: one version's permission profile.
#[must_use]
pub fn version_permissions(project: &str, version: &str) -> String {
    format!("{project}/{version}/{META}/{PERMISSIONS}")
}

/// `<project>/..meta/revision.json`: the project's revision counter (the last revision
/// number a completed upload took).
#[must_use]
pub fn revision_counter(project: &str) -> String {
    format!("{project}/{META}/revision.json")
}

/// `..meta/revoked-tokens/`: every revoked access token.
#[must_use]
pub fn revoked_tokens_prefix() -> String {
    format!("{META}/revoked-tokens/")
}

/// `..meta/revoked-tokens/<jti>.json`: a revoked access token, until it would have expired.
#[must_use]
pub fn revoked_token(jti: &str) -> String {
    format!("{META}/revoked-tokens/{jti}.json")
}

/// `..meta/tombstones/<folder>/`: the retired names of one kind (`users` or `groups`).
#[must_use]
pub fn tombstones_prefix(folder: &str) -> String {
    format!("{META}/tombstones/{folder}/")
}

/// `..meta/tombstones/<folder>/<name>.json`: one retired name.
#[must_use]
pub fn tombstone(folder: &str, name: &str) -> String {
    format!("{META}/tombstones/{folder}/{name}.json")
}

/// `<project>/<version>/..meta/links.json`: the version's links to other artifacts.
#[must_use]
pub fn version_links(project: &str, version: &str) -> String {
    format!("{project}/{version}/{META}/links.json")
}

/// `<project>/<version>/.adbignore`: paths of the version not to index.
#[must_use]
pub fn version_adbignore(project: &str, version: &str) -> String {
    format!("{project}/{version}/.adbignore")
}

/// `<project>/<version>/<path>`: one data file or metadata document.
#[must_use]
pub fn version_file(project: &str, version: &str, path: &str) -> String {
    format!("{project}/{version}/{path}")
}

/// `<project>/<version>/..meta/files/<path>.json`: the record of one uploaded file.
#[must_use]
pub fn file_record(project: &str, version: &str, path: &str) -> String {
    format!("{project}/{version}/{META}/files/{path}.json")
}

/// `<project>/<version>/..meta/staging/`: where uploads of a version land before they are
/// accepted. Nothing under it is visible, listed as a file or indexed.
#[must_use]
pub fn version_staging_prefix(project: &str, version: &str) -> String {
    format!("{project}/{version}/{META}/staging/")
}

/// `<project>/<version>/..meta/staging/<upload-id>/<path>`: the only key a presigned upload
/// URL of upload `upload_id` may write. Completion moves it to [`version_file`].
#[must_use]
pub fn upload_staging(project: &str, version: &str, upload_id: &str, path: &str) -> String {
    format!("{project}/{version}/{META}/staging/{upload_id}/{path}")
}

/// `<project>/<version>/..meta/staging/direct/<id>`: a direct upload's body while it streams,
/// moved to [`version_file`] only once the version is known to still accept it.
#[must_use]
pub fn direct_staging(project: &str, version: &str, id: &str) -> String {
    format!("{project}/{version}/{META}/staging/direct/{id}")
}

/// A staged upload key split into (project, version, upload id, path), `None` for any other
/// key (direct staging included).
#[must_use]
pub fn parse_upload_staging(key: &str) -> Option<(&str, &str, &str, &str)> {
    let mut parts = key.splitn(6, '/');
    let project = parts.next()?;
    let version = parts.next()?;
    if parts.next()? != META || parts.next()? != "staging" {
        return None;
    }
    let upload_id = parts.next()?;
    let path = parts.next()?;
    if upload_id == "direct" || upload_id.is_empty() || path.is_empty() {
        return None;
    }
    Some((project, version, upload_id, path))
}

/// Whether a key lies in Trove's reserved space (a `..meta` segment anywhere), i.e. is a
/// record rather than a data file.
#[must_use]
pub fn is_meta_key(key: &str) -> bool {
    key.split('/').any(|segment| segment == META)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::validate_key;

    #[test]
    fn keys_once_built_by_hand_keep_their_layout() {
        assert_eq!(revision_counter("p"), "p/..meta/revision.json");
        assert_eq!(revoked_token("abc"), "..meta/revoked-tokens/abc.json");
        assert_eq!(tombstones_prefix("users"), "..meta/tombstones/users/");
        assert_eq!(
            tombstone("groups", "ml"),
            "..meta/tombstones/groups/ml.json"
        );
    }

    #[test]
    fn staging_keys_round_trip_and_nothing_else_parses() {
        let key = upload_staging("p", "v1", "abc", "dir/model.json");
        assert_eq!(key, "p/v1/..meta/staging/abc/dir/model.json");
        assert!(is_meta_key(&key));
        assert_eq!(
            parse_upload_staging(&key),
            Some(("p", "v1", "abc", "dir/model.json"))
        );
        assert_eq!(parse_upload_staging(&direct_staging("p", "v1", "x")), None);
        assert_eq!(
            parse_upload_staging(&version_file("p", "v1", "a/b/c/d")),
            None
        );
        assert_eq!(parse_upload_staging("p/v1/..meta/staging/abc"), None);
        assert_eq!(parse_upload_staging(&file_record("p", "v1", "a")), None);
    }

    #[test]
    fn global_keys_follow_the_layout() {
        assert_eq!(global_permissions(), "..meta/permissions.json");
        assert_eq!(user("alice"), "..meta/users/alice.json");
        assert_eq!(group("ml"), "..meta/groups/ml.json");
        assert_eq!(api_key("k1"), "..meta/api-keys/k1.json");
        assert_eq!(
            namespace_record("nlp"),
            "..meta/namespaces/nlp/namespace.json"
        );
        assert_eq!(
            namespace_permissions("nlp"),
            "..meta/namespaces/nlp/permissions.json"
        );
        assert_eq!(audit_prefix(), "..meta/audit/");
        assert_eq!(users_prefix(), "..meta/users/");
        assert_eq!(groups_prefix(), "..meta/groups/");
        assert_eq!(api_keys_prefix(), "..meta/api-keys/");
        assert_eq!(namespaces_prefix(), "..meta/namespaces/");
        assert_eq!(
            namespace_claim("nlp", "p1", "0a"),
            "..meta/namespace-projects/nlp/p1/0a.json"
        );
        assert!(namespace_claim("nlp", "p1", "0a").starts_with(&namespace_claims_prefix("nlp")));
    }

    #[test]
    fn project_and_version_keys_follow_the_layout() {
        assert_eq!(project_prefix("p"), "p/");
        assert_eq!(project_record("p"), "p/..meta/project.json");
        assert_eq!(project_permissions("p"), "p/..meta/permissions.json");
        assert_eq!(version_prefix("p", "v1"), "p/v1/");
        assert_eq!(version_record("p", "v1"), "p/v1/..meta/version.json");
        assert_eq!(
            version_permissions("p", "v1"),
            "p/v1/..meta/permissions.json"
        );
        assert_eq!(version_links("p", "v1"), "p/v1/..meta/links.json");
        assert_eq!(version_adbignore("p", "v1"), "p/v1/.adbignore");
        assert_eq!(version_file("p", "v1", "a/b.csv"), "p/v1/a/b.csv");
    }

    #[test]
    fn every_built_key_is_a_valid_storage_key() {
        for key in [
            global_permissions(),
            user("alice"),
            group("ml"),
            api_key("k1"),
            namespace_record("nlp"),
            namespace_permissions("nlp"),
            project_record("p"),
            project_permissions("p"),
            version_record("p", "v1"),
            version_permissions("p", "v1"),
            version_links("p", "v1"),
            version_adbignore("p", "v1"),
            version_file("p", "v1", "a/b.csv"),
        ] {
            assert!(validate_key(&key).is_ok(), "{key}");
        }
    }

    #[test]
    fn meta_keys_are_recognised() {
        assert!(is_meta_key(&version_record("p", "v1")));
        assert!(is_meta_key(&global_permissions()));
        assert!(!is_meta_key(&version_file("p", "v1", "x/..metadata")));
        assert!(!is_meta_key(&version_adbignore("p", "v1")));
    }
}
