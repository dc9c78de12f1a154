//! The local backend: a directory with the same keys as the bucket.
// TEMPORARY STUB (replaced by the storage branch)
#![allow(missing_docs, clippy::all)]
use super::*;
use std::path::PathBuf;
#[derive(Debug)]
pub struct LocalStore;
impl LocalStore {
    pub fn open(_o: PathBuf, _t: PathBuf, _p: super::presign::LocalPresigner) -> Result<Self> {
        Ok(Self)
    }
}
#[async_trait]
impl ObjectStore for LocalStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Local
    }
    async fn head(&self, _k: &str) -> Result<ObjectMeta> {
        todo!()
    }
    async fn get(&self, _k: &str, _r: Option<ByteRange>) -> Result<GetObject> {
        todo!()
    }
    async fn put(&self, _k: &str, _b: ByteStream, _o: PutOptions) -> Result<PutOutcome> {
        todo!()
    }
    async fn delete(&self, _k: &str) -> Result<()> {
        todo!()
    }
    async fn list(&self, _r: &ListRequest) -> Result<ListPage> {
        todo!()
    }
    async fn presign(
        &self,
        _m: PresignMethod,
        _k: &str,
        _e: Duration,
        _c: Option<[u8; 16]>,
    ) -> Result<String> {
        todo!()
    }
    async fn check(&self) -> Result<()> {
        Ok(())
    }
}
