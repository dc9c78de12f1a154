//! The S3 backend (aws-sdk-s3): AWS S3, MinIO or any S3-compatible server.
// TEMPORARY STUB (replaced by the storage branch)
#![allow(missing_docs, clippy::all)]
use super::*;
#[derive(Debug)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub prefix: String,
    pub path_style: bool,
    pub timeout: Duration,
    pub credentials: Option<(String, String)>,
}
#[derive(Debug)]
pub struct S3Store;
impl S3Store {
    pub async fn connect(_s: S3Settings) -> Result<Self> {
        todo!()
    }
}
#[async_trait]
impl ObjectStore for S3Store {
    fn kind(&self) -> StorageKind {
        StorageKind::S3
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
