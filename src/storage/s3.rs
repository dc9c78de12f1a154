//! The S3 backend (aws-sdk-s3): AWS S3, MinIO or any S3-compatible server.
