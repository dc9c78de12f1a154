//! Seeding storage with projects, versions and metadata documents for the benchmarks, and
//! building Trove instances over local storage or an in-process S3 server.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;
use trove::app::{App, AppState};
use trove::config::Settings;
use trove::storage::{ObjectStore, ObjectStoreExt as _, PutOptions, StorageKind, keys};

use super::corpus::{Generator, ProjectAccess};

/// Settings of an instance on `data_dir` with local storage.
#[must_use]
pub fn local_settings(data_dir: &Path) -> Settings {
    Settings {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("address"),
        log: "warn".to_owned(),
        ..Settings::default()
    }
}

/// Settings of an instance on `data_dir` storing into bucket `bucket` of the S3 server at
/// `endpoint` (path style, static credentials).
#[must_use]
pub fn s3_settings(
    data_dir: &Path,
    endpoint: &str,
    bucket: &str,
    access_key: &str,
    secret_key: &str,
) -> Settings {
    let mut settings = local_settings(data_dir);
    settings.storage = StorageKind::S3;
    settings.storage_timeout_ms = 30_000;
    settings.s3.bucket = Some(bucket.to_owned());
    settings.s3.endpoint = Some(endpoint.to_owned());
    settings.s3.region = Some("us-east-1".to_owned());
    settings.s3.path_style = true;
    settings.s3.access_key_id = Some(access_key.to_owned());
    settings.s3.secret_access_key = Some(trove::config::Secret::new(secret_key));
    settings
}

/// Builds an instance.
pub async fn app(settings: Settings) -> anyhow::Result<AppState> {
    settings.validate()?;
    App::build(settings).await
}

/// What was seeded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seeded {
    /// Projects.
    pub projects: usize,
    /// Versions.
    pub versions: usize,
    /// Metadata documents.
    pub documents: usize,
}

/// Writes `documents` metadata documents into `storage`: projects of `versions` completed
/// versions with `files_per_version` metadata documents each, with random profiles.
pub async fn seed(
    storage: Arc<dyn ObjectStore>,
    documents: usize,
    versions: usize,
    files_per_version: usize,
    concurrency: usize,
) -> anyhow::Result<Seeded> {
    let per_project = versions * files_per_version;
    let projects = documents.div_ceil(per_project);
    let mut generator = Generator::new(7);
    let mut objects: Vec<(String, Bytes)> = Vec::new();
    let mut seeded = Seeded::default();
    for project_index in 0..projects {
        let project = super::corpus::project_id(project_index);
        let access = ProjectAccess::random(generator.rng());
        objects.push((
            keys::project_record(&project),
            Bytes::from(
                json!({
                    "project_id": project, "title": format!("project {project_index}"),
                    "type": "MODEL", "created_at": "2026-11-01T00:00:00Z", "created_by": access.owners[0],
                    "state": if access.disabled { "disabled" } else { "active" },
                })
                .to_string(),
            ),
        ));
        objects.push((
            keys::project_permissions(&project),
            Bytes::from(access.profile_json().to_string()),
        ));
        seeded.projects += 1;
        for version in 1..=versions {
            let name = format!("v{version}");
            objects.push((
                keys::version_record(&project, &name),
                Bytes::from(
                    json!({
                        "project_id": project, "version": name, "created_at": "2026-11-01T00:00:00Z",
                        "created_by": access.owners[0], "status": "completed",
                        "revision": format!("NUM-{version}"), "numerical_revision": version,
                    })
                    .to_string(),
                ),
            ));
            seeded.versions += 1;
            for file in 0..files_per_version {
                if seeded.documents == documents {
                    break;
                }
                let metadata = generator.metadata(file);
                let path = format!("{}.json", metadata["path"].as_str().unwrap_or_default());
                objects.push((
                    keys::version_file(&project, &name, &path),
                    Bytes::from(metadata.to_string()),
                ));
                seeded.documents += 1;
            }
        }
    }
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let storage = storage.clone();
            async move {
                storage
                    .put_bytes(&key, body, PutOptions::default())
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    Ok(seeded)
}
