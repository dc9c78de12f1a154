//! Loading and storing profiles through the storage trait, with a short-lived cache.
//!
//! The rules themselves are pure; this is the one piece of the permission module that reads
//! storage. Profiles are cached per key for a short TTL (30 s by default), because other
//! replicas may write them directly; a write or delete through this loader invalidates its
//! key at once, and a generation counter keeps a load that raced with a write from putting the
//! stale profile back. [`ProfileLoader::load_uncached`] and
//! [`ProfileLoader::load_chain_uncached`] bypass the cache (the sync check, read-modify-write).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::TtlCache;

use super::profile::{PrincipalRef, Profile, ProfileError, ProfileScope};
use super::resolve::ScopeChain;
use crate::storage::{ObjectStore, ObjectStoreExt, PutCondition, PutOptions, StorageError, keys};

/// Result alias of the loader.
pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

/// Why loading or storing a profile failed.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// Storage failed (unreachable, precondition failed, ...).
    #[error("storage error for a permission profile: {0}")]
    Storage(#[from] StorageError),
    /// The profile is invalid: stored badly by someone writing the bucket directly (the caller
    /// should fail closed), or rejected on write.
    #[error("invalid permission profile at {key}: {source}")]
    Profile {
        /// The storage key.
        key: String,
        /// What is wrong with it.
        #[source]
        source: ProfileError,
    },
}

/// Where a profile lives: one of the four scopes of SPEC §3, with the ids that name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProfileLocation {
    /// `..meta/permissions.json`.
    Global,
    /// `..meta/namespaces/<ns>/permissions.json`.
    Namespace(String),
    /// `<project>/..meta/permissions.json`.
    Project(String),
    /// `<project>/<version>/..meta/permissions.json`.
    Version {
        /// The project id.
        project: String,
        /// The version.
        version: String,
    },
}

impl ProfileLocation {
    /// The storage key of the profile.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Self::Global => keys::global_permissions(),
            Self::Namespace(namespace) => keys::namespace_permissions(namespace),
            Self::Project(project) => keys::project_permissions(project),
            Self::Version { project, version } => keys::version_permissions(project, version),
        }
    }

    /// The scope a profile stored here has.
    #[must_use]
    pub fn scope(&self) -> ProfileScope {
        match self {
            Self::Global => ProfileScope::Global,
            Self::Namespace(_) => ProfileScope::Namespace,
            Self::Project(_) => ProfileScope::Project,
            Self::Version { .. } => ProfileScope::Version,
        }
    }
}

/// A profile read straight from storage, with the ETag to update it with `If-Match`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProfile {
    /// The parsed profile.
    pub profile: Profile,
    /// The object's ETag.
    pub etag: String,
}

/// Loads profiles of a resource's chain from storage, caching them briefly.
#[derive(Debug)]
pub struct ProfileLoader {
    store: Arc<dyn ObjectStore>,
    cache: TtlCache<Option<Profile>>,
}

impl ProfileLoader {
    /// How long a cached profile is trusted: other replicas may write profiles, and a change
    /// must take effect quickly everywhere.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

    /// A loader with the default TTL.
    #[must_use]
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self::with_ttl(store, Self::DEFAULT_TTL)
    }

    /// A loader with a given TTL (`Duration::ZERO` disables caching).
    #[must_use]
    pub fn with_ttl(store: Arc<dyn ObjectStore>, ttl: Duration) -> Self {
        Self {
            store,
            cache: TtlCache::new(ttl),
        }
    }

    /// The profile at `location` (`None` when absent), from the cache when fresh.
    pub async fn load(&self, location: &ProfileLocation) -> Result<Option<Profile>> {
        let key = location.key();
        let (cached, generation) = self.cache.get(&key);
        if let Some(profile) = cached {
            return Ok(profile);
        }
        let profile = self
            .load_uncached(location)
            .await?
            .map(|stored| stored.profile);
        self.cache.insert(key, profile.clone(), generation);
        Ok(profile)
    }

    /// The profile at `location` read from storage now, with its ETag.
    pub async fn load_uncached(&self, location: &ProfileLocation) -> Result<Option<StoredProfile>> {
        let key = location.key();
        let (bytes, meta) = match self.store.get_bytes(&key).await {
            Ok(found) => found,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let profile =
            Profile::from_json(&bytes).map_err(|source| LoaderError::Profile { key, source })?;
        Ok(Some(StoredProfile {
            profile,
            etag: meta.etag,
        }))
    }

    /// The chain of a resource: `project` and `version` when given (a version without a
    /// project is ignored), the namespace when the project has one, and the global profile.
    pub async fn load_chain(
        &self,
        namespace: Option<&str>,
        project: Option<&str>,
        version: Option<&str>,
    ) -> Result<ScopeChain> {
        let locations = chain_locations(namespace, project, version);
        let [version, project, namespace, global] = locations.map(|location| async move {
            match location {
                Some(location) => self.load(&location).await,
                None => Ok(None),
            }
        });
        let (version, project, namespace, global) =
            futures::join!(version, project, namespace, global);
        Ok(ScopeChain {
            version: version?,
            project: project?,
            namespace: namespace?,
            global: global?,
        })
    }

    /// [`load_chain`](Self::load_chain) bypassing the cache (for the sync check).
    pub async fn load_chain_uncached(
        &self,
        namespace: Option<&str>,
        project: Option<&str>,
        version: Option<&str>,
    ) -> Result<ScopeChain> {
        let locations = chain_locations(namespace, project, version);
        let [version, project, namespace, global] = locations.map(|location| async move {
            match location {
                Some(location) => self
                    .load_uncached(&location)
                    .await
                    .map(|stored| stored.map(|stored| stored.profile)),
                None => Ok(None),
            }
        });
        let (version, project, namespace, global) =
            futures::join!(version, project, namespace, global);
        Ok(ScopeChain {
            version: version?,
            project: project?,
            namespace: namespace?,
            global: global?,
        })
    }

    /// Stores `profile` at `location` unconditionally (see
    /// [`write_profile_if`](Self::write_profile_if)).
    pub async fn write_profile(
        &self,
        location: &ProfileLocation,
        profile: Profile,
    ) -> Result<Profile> {
        self.write_profile_if(location, profile, PutCondition::None)
            .await
    }

    /// Stores `profile` at `location` subject to `condition` (`IfMatch` with the ETag of
    /// [`load_uncached`](Self::load_uncached) for a read-modify-write), setting its `scope` to
    /// the location's (a different `scope` given by the client is an `invalid_scope` error),
    /// and invalidates the cached copy. Returns the profile as stored.
    pub async fn write_profile_if(
        &self,
        location: &ProfileLocation,
        mut profile: Profile,
        condition: PutCondition,
    ) -> Result<Profile> {
        let key = location.key();
        if let Err(source) = profile.set_scope(location.scope()) {
            return Err(LoaderError::Profile { key, source });
        }
        let body = serde_json::to_vec_pretty(&profile).map_err(|error| LoaderError::Profile {
            key: key.clone(),
            source: ProfileError::InvalidProfile(error.to_string()),
        })?;
        let options = PutOptions {
            content_type: Some("application/json".to_owned()),
            condition,
            ..PutOptions::default()
        };
        let outcome = self.store.put_bytes(&key, Bytes::from(body), options).await;
        // Invalidate even on failure: the write may have landed before the error surfaced.
        self.invalidate(location);
        outcome?;
        Ok(profile)
    }

    /// Deletes the profile at `location` so resolution falls through to the scope above, and
    /// invalidates the cached copy.
    pub async fn delete_profile(&self, location: &ProfileLocation) -> Result<()> {
        let outcome = self.store.delete(&location.key()).await;
        self.invalidate(location);
        Ok(outcome?)
    }

    /// Forgets the cached profile at `location` (e.g. after another component wrote it).
    pub fn invalidate(&self, location: &ProfileLocation) {
        self.cache.invalidate(&location.key());
    }

    /// Forgets every cached profile.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Every place a profile may be stored: the global one, each namespace's, each project's
    /// and each version's. One listing per project: for rare admin operations only.
    pub async fn all_locations(&self) -> Result<Vec<ProfileLocation>> {
        let mut locations = vec![ProfileLocation::Global];
        let namespaces = keys::namespaces_prefix();
        for prefix in self.store.list_prefixes(&namespaces).await? {
            if let Some(namespace) = prefix
                .strip_prefix(&namespaces)
                .and_then(|rest| rest.strip_suffix('/'))
            {
                locations.push(ProfileLocation::Namespace(namespace.to_owned()));
            }
        }
        for prefix in self.store.list_prefixes("").await? {
            let Some(project) = prefix.strip_suffix('/') else {
                continue;
            };
            if project == keys::META {
                continue;
            }
            locations.push(ProfileLocation::Project(project.to_owned()));
            for version in self.store.list_prefixes(&prefix).await? {
                if let Some(version) = version
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix('/'))
                    && version != keys::META
                {
                    locations.push(ProfileLocation::Version {
                        project: project.to_owned(),
                        version: version.to_owned(),
                    });
                }
            }
        }
        Ok(locations)
    }

    /// Removes `principal` from every stored profile (its lists and its expiry), each with a
    /// read-modify-write under `If-Match`; answers the locations changed. Unparseable profiles
    /// are skipped with a warning (they already fail closed).
    pub async fn remove_principal_everywhere(
        &self,
        principal: &PrincipalRef,
    ) -> Result<Vec<ProfileLocation>> {
        let mut changed = Vec::new();
        for location in self.all_locations().await? {
            if self.remove_principal_at(&location, principal).await? {
                changed.push(location);
            }
        }
        Ok(changed)
    }

    /// Removes `principal` from the profile at `location`; whether anything changed.
    async fn remove_principal_at(
        &self,
        location: &ProfileLocation,
        principal: &PrincipalRef,
    ) -> Result<bool> {
        for _ in 0..5 {
            let stored = match self.load_uncached(location).await {
                Ok(Some(stored)) => stored,
                Ok(None) => return Ok(false),
                Err(LoaderError::Profile { key, source }) => {
                    tracing::warn!(%key, error = %source, "skipping an invalid profile");
                    return Ok(false);
                }
                Err(error) => return Err(error),
            };
            let mut profile = stored.profile;
            let before = (
                profile.owners.len() + profile.writers.len() + profile.viewers.len(),
                profile.expires.len(),
            );
            profile.owners.retain(|entry| entry != principal);
            profile.writers.retain(|entry| entry != principal);
            profile.viewers.retain(|entry| entry != principal);
            profile.expires.remove(principal);
            let after = (
                profile.owners.len() + profile.writers.len() + profile.viewers.len(),
                profile.expires.len(),
            );
            if before == after {
                return Ok(false);
            }
            match self
                .write_profile_if(location, profile, PutCondition::IfMatch(stored.etag))
                .await
            {
                Ok(_) => return Ok(true),
                Err(LoaderError::Storage(StorageError::PreconditionFailed { .. })) => {}
                Err(error) => return Err(error),
            }
        }
        Err(LoaderError::Storage(StorageError::PreconditionFailed {
            key: location.key(),
        }))
    }
}

/// The locations of a chain, most specific first: version, project, namespace, global.
fn chain_locations(
    namespace: Option<&str>,
    project: Option<&str>,
    version: Option<&str>,
) -> [Option<ProfileLocation>; 4] {
    [
        project
            .zip(version)
            .map(|(project, version)| ProfileLocation::Version {
                project: project.to_owned(),
                version: version.to_owned(),
            }),
        project.map(|project| ProfileLocation::Project(project.to_owned())),
        namespace.map(|namespace| ProfileLocation::Namespace(namespace.to_owned())),
        Some(ProfileLocation::Global),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use chrono::Utc;
    use futures::TryStreamExt;
    use serde_json::json;

    use super::*;
    use crate::permissions::profile::AccessRule;
    use crate::storage::{
        ByteRange, ByteStream, GetObject, ListPage, ListRequest, ObjectMeta, PresignMethod,
        PutOutcome, StorageKind, bytes_stream,
    };

    /// A tiny in-memory store, counting reads so the cache can be observed.
    #[derive(Debug, Default)]
    struct MemoryStore {
        objects: Mutex<BTreeMap<String, (Bytes, u64)>>,
        reads: AtomicUsize,
        next_etag: AtomicUsize,
    }

    impl MemoryStore {
        fn meta(key: &str, body: &Bytes, etag: u64) -> ObjectMeta {
            ObjectMeta {
                key: key.to_owned(),
                size: body.len() as u64,
                etag: etag.to_string(),
                last_modified: Utc::now(),
                content_type: None,
            }
        }

        fn raw_put(&self, key: &str, body: &str) {
            let etag = self.next_etag.fetch_add(1, Ordering::SeqCst) as u64;
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_owned(), (Bytes::from(body.to_owned()), etag));
        }
    }

    #[async_trait]
    impl ObjectStore for MemoryStore {
        fn kind(&self) -> StorageKind {
            StorageKind::Local
        }

        async fn head(&self, key: &str) -> crate::storage::Result<ObjectMeta> {
            let objects = self.objects.lock().unwrap();
            let (body, etag) = objects.get(key).ok_or_else(|| StorageError::NotFound {
                key: key.to_owned(),
            })?;
            Ok(Self::meta(key, body, *etag))
        }

        async fn get(
            &self,
            key: &str,
            _range: Option<ByteRange>,
        ) -> crate::storage::Result<GetObject> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let objects = self.objects.lock().unwrap();
            let (body, etag) = objects.get(key).ok_or_else(|| StorageError::NotFound {
                key: key.to_owned(),
            })?;
            Ok(GetObject {
                meta: Self::meta(key, body, *etag),
                range: None,
                body: bytes_stream(body.clone()),
            })
        }

        async fn put(
            &self,
            key: &str,
            body: ByteStream,
            options: PutOptions,
        ) -> crate::storage::Result<PutOutcome> {
            let chunks: Vec<Bytes> = body.try_collect().await.map_err(StorageError::Body)?;
            let body = Bytes::from(chunks.concat());
            let mut objects = self.objects.lock().unwrap();
            match (&options.condition, objects.get(key)) {
                (PutCondition::IfAbsent, Some(_)) => {
                    return Err(StorageError::AlreadyExists {
                        key: key.to_owned(),
                    });
                }
                (PutCondition::IfMatch(expected), Some((_, etag)))
                    if *expected != etag.to_string() =>
                {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
                (PutCondition::IfMatch(_), None) => {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_owned(),
                    });
                }
                _ => {}
            }
            let etag = self.next_etag.fetch_add(1, Ordering::SeqCst) as u64;
            objects.insert(key.to_owned(), (body.clone(), etag));
            Ok(PutOutcome {
                meta: Self::meta(key, &body, etag),
                md5_hex: String::new(),
                sha256_hex: String::new(),
            })
        }

        async fn delete(&self, key: &str) -> crate::storage::Result<()> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }

        async fn list(&self, _request: &ListRequest) -> crate::storage::Result<ListPage> {
            Ok(ListPage::default())
        }

        async fn presign(
            &self,
            _method: PresignMethod,
            _key: &str,
            _expires_in: Duration,
            _content_md5: Option<[u8; 16]>,
        ) -> crate::storage::Result<String> {
            Err(StorageError::Backend("not supported".to_owned()))
        }

        async fn check(&self) -> crate::storage::Result<()> {
            Ok(())
        }
    }

    fn profile(value: serde_json::Value) -> Profile {
        Profile::from_value(value).unwrap()
    }

    #[test]
    fn locations_use_the_layout_keys() {
        assert_eq!(ProfileLocation::Global.key(), "..meta/permissions.json");
        assert_eq!(
            ProfileLocation::Namespace("nlp".into()).key(),
            "..meta/namespaces/nlp/permissions.json"
        );
        assert_eq!(
            ProfileLocation::Project("bert".into()).key(),
            "bert/..meta/permissions.json"
        );
        let version = ProfileLocation::Version {
            project: "bert".into(),
            version: "v1".into(),
        };
        assert_eq!(version.key(), "bert/v1/..meta/permissions.json");
        assert_eq!(version.scope(), ProfileScope::Version);
    }

    #[tokio::test]
    async fn loads_the_chain_and_resolves_it() {
        let store = Arc::new(MemoryStore::default());
        store.raw_put(
            "bert/..meta/permissions.json",
            r#"{"owners": ["alice"], "inherit": true}"#,
        );
        store.raw_put(
            "..meta/namespaces/nlp/permissions.json",
            r#"{"owners": ["nsowner"], "read_access": "authenticated"}"#,
        );
        let loader = ProfileLoader::new(store.clone());
        let chain = loader
            .load_chain(Some("nlp"), Some("bert"), Some("v1"))
            .await
            .unwrap();
        assert!(chain.version.is_none());
        assert!(chain.global.is_none());
        let resolved = chain.resolve();
        assert_eq!(resolved.owners.len(), 2);
        assert_eq!(resolved.read_access, AccessRule::Authenticated);
    }

    #[tokio::test]
    async fn cache_serves_repeated_loads_and_writes_invalidate_it() {
        let store = Arc::new(MemoryStore::default());
        let loader = ProfileLoader::new(store.clone());
        let location = ProfileLocation::Project("bert".into());
        assert_eq!(loader.load(&location).await.unwrap(), None);
        assert_eq!(loader.load(&location).await.unwrap(), None);
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            1,
            "absence is cached too"
        );

        let written = loader
            .write_profile(&location, profile(json!({"owners": ["alice"]})))
            .await
            .unwrap();
        assert_eq!(written.scope, Some(ProfileScope::Project));
        let loaded = loader.load(&location).await.unwrap().unwrap();
        assert_eq!(loaded, written);
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);

        // A write by another replica is seen after explicit invalidation.
        store.raw_put(&location.key(), r#"{"owners": ["bob"]}"#);
        assert_eq!(
            loader.load(&location).await.unwrap().unwrap(),
            written,
            "still cached"
        );
        loader.invalidate(&location);
        let reloaded = loader.load(&location).await.unwrap().unwrap();
        assert_eq!(reloaded.owners[0].to_string(), "bob");

        loader.delete_profile(&location).await.unwrap();
        assert_eq!(loader.load(&location).await.unwrap(), None);
    }

    #[tokio::test]
    async fn zero_ttl_always_reads_storage() {
        let store = Arc::new(MemoryStore::default());
        let loader = ProfileLoader::with_ttl(store.clone(), Duration::ZERO);
        let location = ProfileLocation::Global;
        loader.load(&location).await.unwrap();
        loader.load(&location).await.unwrap();
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_different_client_scope_is_refused() {
        let store = Arc::new(MemoryStore::default());
        let loader = ProfileLoader::new(store.clone());
        let error = loader
            .write_profile(
                &ProfileLocation::Project("bert".into()),
                profile(json!({"scope": "global", "owners": ["mallory"]})),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, LoaderError::Profile { source, .. } if source.code() == "invalid_scope")
        );
        assert!(store.objects.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalid_stored_profiles_are_reported_not_ignored() {
        let store = Arc::new(MemoryStore::default());
        store.raw_put(
            "bert/..meta/permissions.json",
            r#"{"owners": ["alice"], "read_access": "everyone"}"#,
        );
        let loader = ProfileLoader::new(store);
        let error = loader
            .load(&ProfileLocation::Project("bert".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, LoaderError::Profile { source, .. } if source.code() == "invalid_access_rule")
        );
    }

    #[tokio::test]
    async fn conditional_writes_use_the_etag() {
        let store = Arc::new(MemoryStore::default());
        let loader = ProfileLoader::new(store.clone());
        let location = ProfileLocation::Project("bert".into());
        loader
            .write_profile(&location, profile(json!({"owners": ["alice"]})))
            .await
            .unwrap();
        let stored = loader.load_uncached(&location).await.unwrap().unwrap();
        let mut updated = stored.profile.clone();
        updated
            .merge_partial(json!({"read_access": "public"}))
            .unwrap();
        loader
            .write_profile_if(
                &location,
                updated.clone(),
                PutCondition::IfMatch(stored.etag.clone()),
            )
            .await
            .unwrap();
        let stale = loader
            .write_profile_if(&location, updated, PutCondition::IfMatch(stored.etag))
            .await
            .unwrap_err();
        assert!(matches!(
            stale,
            LoaderError::Storage(StorageError::PreconditionFailed { .. })
        ));
        let chain = loader
            .load_chain_uncached(None, Some("bert"), None)
            .await
            .unwrap();
        assert_eq!(chain.project.unwrap().read_access, Some(AccessRule::Public));
    }
}
