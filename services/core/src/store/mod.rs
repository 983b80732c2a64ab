//! The backend contract. A store offers a consistent read view ([`Store::view`]), an
//! atomic apply of a [`ChangeSet`] ([`Store::apply`]) and blob staging for loads
//! ([`Store::stage`]). Stores never decide semantics: the planners of this crate do.

mod memory;

pub use memory::MemoryStore;

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::catalog::{Applied, Catalog, ChangeSet};
use crate::digest::Digest;
use crate::error::Result;

/// Static facts about a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `memory`, `local`, ...
    pub kind: &'static str,
    /// The directory holding the blobs (what CRI `ImageFsInfo` reports as mountpoint).
    pub root: PathBuf,
    /// Container records come from the store's engine and cannot be written.
    pub containers_read_only: bool,
}

/// Space used by the store's blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsUsage {
    /// Bytes of all blobs.
    pub used_bytes: u64,
    /// Files (inodes) used by the blobs and metadata.
    pub inodes_used: u64,
}

/// Capacity and free space of a filesystem (`statvfs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes in all.
    pub capacity: u64,
    /// Bytes free for unprivileged users.
    pub available: u64,
}

impl FsSpace {
    /// Bytes in use.
    pub fn used(&self) -> u64 {
        self.capacity.saturating_sub(self.available)
    }
}

/// What a consistency check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Images checked.
    pub images_checked: usize,
    /// Blobs checked.
    pub blobs_checked: usize,
    /// Problems, one line each (`image <id>: blob <digest> missing`).
    pub problems: Vec<String>,
    /// Images whose blobs are missing or corrupt.
    pub broken_images: Vec<Digest>,
    /// Images dropped (with `repair`).
    pub repaired_images: Vec<Digest>,
    /// Unreferenced blobs removed.
    pub orphans_removed: usize,
}

/// Whether a store can currently write (loads, tags, container records). Reads and
/// removals are not covered: a store keeps serving them while it cannot write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteHealth {
    /// Writes are expected to succeed.
    Writable,
    /// Writes fail or are refused (e.g. the disk is full or below the store's free-space
    /// reserve); the reason is for logs and operators. The store recovers by itself once
    /// the cause is gone (e.g. space was freed).
    Unwritable(String),
}

/// A storage backend.
pub trait Store: Send + Sync + 'static {
    /// Static facts.
    fn info(&self) -> StoreInfo;

    /// The current consistent view. Cheap; never waits for a writer's I/O.
    fn view(&self) -> Arc<Catalog>;

    /// Persists `change` as one transaction, then publishes the new view. Blobs released by
    /// the change are deleted after the commit (except those held by a running staging).
    /// On error nothing changed.
    fn apply(&self, change: &ChangeSet) -> Result<Applied>;

    /// [`Store::apply`] of a change whose outcome the engine already computed: `planned`
    /// is what applying `change` to `base` (a view this store gave) gives. A store whose
    /// view is still `base` when it commits may publish `planned.catalog` instead of
    /// applying the change a second time; otherwise (another write came first, or a
    /// store other programs write too) it applies `change` as [`Store::apply`] does.
    fn apply_planned(
        &self,
        change: &ChangeSet,
        base: &Catalog,
        planned: Applied,
    ) -> Result<Applied> {
        let _ = (base, planned);
        self.apply(change)
    }

    /// Starts staging blobs for a load. Blobs written or held through the staging survive
    /// until it is dropped; dropping it deletes the blobs it wrote that no image refers to.
    fn stage(&self) -> Result<Box<dyn Staging + '_>>;

    /// The bytes of a stored blob, `None` when missing.
    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>>;

    /// Space used.
    fn fs_usage(&self) -> Result<FsUsage>;

    /// Verifies that every referenced blob exists with the right digest and size;
    /// with `repair`, drops images whose blobs are missing and removes unreferenced blobs.
    fn check(&self, repair: bool) -> Result<CheckReport>;

    /// Capacity and free space of the filesystem holding the store (`statvfs`); `None`
    /// for a store on no filesystem (memory). GC thresholds are measured on it.
    fn fs_space(&self) -> Result<Option<FsSpace>> {
        Ok(None)
    }

    /// Whether the store can write now (the daemon's health reports it; SPEC §10). May do
    /// a little I/O (e.g. `statvfs`, re-opening a database after an I/O error) and may
    /// block briefly: call it off the async runtime. The default: always writable.
    fn write_health(&self) -> WriteHealth {
        WriteHealth::Writable
    }
}

/// Blob writes of one load.
pub trait Staging: Send {
    /// Stores the bytes of `data`, computing their digest. With `expected`, a different
    /// digest is an [`crate::error::ErrorKind::InvalidArchive`] error and nothing is kept.
    fn put(&mut self, data: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)>;

    /// Keeps an already stored blob until the staging ends; `false` when it is not stored.
    fn hold(&mut self, digest: &Digest) -> Result<bool>;
}

/// Blobs held by running stagings; a backend never deletes a held blob.
#[derive(Debug, Default)]
pub struct Leases(Mutex<HashMap<Digest, u32>>);

impl Leases {
    /// Holds `digest` once more.
    pub fn acquire(&self, digest: Digest) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(digest).or_insert(0) += 1;
    }

    /// Releases one hold of `digest`.
    pub fn release(&self, digest: &Digest) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                m.remove(digest);
            }
        }
    }

    /// Whether any staging holds `digest`.
    pub fn is_held(&self, digest: &Digest) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(digest)
    }
}
