//! imaged's embedded default store (`--store local`): metadata in one redb database,
//! blobs content-addressed on disk, crash-safe (SPEC §9).
//!
//! ```text
//! <root>/meta.redb            images, containers, meta (schema_version, created_at)
//! <root>/blobs/sha256/<hex>   blobs (OCI image layout style)
//! <root>/ingest/              blobs being written
//! ```
//!
//! The model is containerd's: metadata changes commit atomically in one transaction; blob
//! files are written before the commit that refers to them and deleted after the commit
//! that releases them; whatever a crash leaves between the two (orphan blobs, partial
//! writes) is swept when the store opens. See the crate's README for the full argument.

mod blobs;
mod check;
pub mod codec;
mod deleter;
mod fsutil;
mod inner;
mod layout;
mod load;
mod meta;
mod migrate;
mod space;
mod staging;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::path::Path;

pub use migrate::SCHEMA_VERSION;
pub use store::{LocalStore, Options, SweepReport};

/// Opens (or creates) the store in `root`.
pub fn open(root: &Path) -> imaged_core::Result<LocalStore> {
    LocalStore::open(root)
}
