//! The domain vocabulary: names, ArtifactDB ids, and the records stored for projects,
//! versions and files.

pub mod id;
pub mod names;
pub mod records;
