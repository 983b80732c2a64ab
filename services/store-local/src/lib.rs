//! TEMPORARY stub: the local store is being written (issue 4). `LocalStore::open` has its
//! final signature; until the real store lands it serves from memory.

use std::path::Path;

pub use imaged_core::MemoryStore as LocalStore;

/// Opens (or creates) the store in `root`.
pub fn open(root: &Path) -> imaged_core::Result<LocalStore> {
    Ok(LocalStore::with_root(root.to_path_buf()))
}
