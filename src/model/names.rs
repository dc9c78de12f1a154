//! Validation of project ids, versions, namespaces, usernames and file paths (SPEC §1).
