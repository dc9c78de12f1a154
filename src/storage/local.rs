//! The local backend: a directory with the same keys as the bucket.
