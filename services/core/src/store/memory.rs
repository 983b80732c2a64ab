//! The in-memory store: the reference backend of the conformance suite and the store of
//! `imaged --store memory`. Blob bytes are kept in memory.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::catalog::{Applied, Catalog, ChangeSet};
use crate::digest::{Digest, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::store::{CheckReport, FsUsage, Leases, Staging, Store, StoreInfo};

/// A store that lives in memory only.
#[derive(Debug)]
pub struct MemoryStore {
    root: PathBuf,
    view: RwLock<Arc<Catalog>>,
    write: Mutex<()>,
    blobs: Mutex<HashMap<Digest, Arc<[u8]>>>,
    leases: Leases,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store reporting `/` as its filesystem.
    pub fn new() -> Self {
        Self::with_root(PathBuf::from("/"))
    }

    /// An empty store reporting `root` as its filesystem (CRI `ImageFsInfo`).
    pub fn with_root(root: PathBuf) -> Self {
        Self {
            root,
            view: RwLock::new(Arc::new(Catalog::new())),
            write: Mutex::new(()),
            blobs: Mutex::new(HashMap::new()),
            leases: Leases::default(),
        }
    }

    /// Number of stored blobs (for tests).
    pub fn blob_count(&self) -> usize {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Deletes a stored blob behind the catalog's back (for corruption tests).
    pub fn corrupt_remove_blob(&self, digest: &Digest) -> bool {
        self.blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest)
            .is_some()
    }

    fn publish(&self, catalog: Catalog) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// Applies `change`, or publishes `planned` when the view is still its base.
    fn apply_with(
        &self,
        change: &ChangeSet,
        planned: Option<(&Catalog, Applied)>,
    ) -> Result<Applied> {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let applied = Applied::planned_or_apply(&self.view(), change, planned)?;
        {
            let blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            for (d, _) in &applied.added {
                if !blobs.contains_key(d) {
                    return Err(Error::internal(format!("blob {d} was never staged")));
                }
            }
        }
        self.publish(applied.catalog.clone());
        let mut blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
        for (d, _) in &applied.released {
            if !self.leases.is_held(d) {
                blobs.remove(d);
            }
        }
        Ok(applied)
    }
}

impl Store for MemoryStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "memory",
            root: self.root.clone(),
            containers_read_only: false,
        }
    }

    fn view(&self) -> Arc<Catalog> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        self.apply_with(change, None)
    }

    fn apply_planned(
        &self,
        change: &ChangeSet,
        base: &Catalog,
        planned: Applied,
    ) -> Result<Applied> {
        self.apply_with(change, Some((base, planned)))
    }

    fn stage(&self) -> Result<Box<dyn Staging + '_>> {
        Ok(Box::new(MemoryStaging {
            store: self,
            held: Vec::new(),
            written: Vec::new(),
        }))
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        Ok(self
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .map(|b| b.to_vec()))
    }

    fn fs_usage(&self) -> Result<FsUsage> {
        let blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(FsUsage {
            used_bytes: blobs.values().map(|b| b.len() as u64).sum(),
            inodes_used: blobs.len() as u64,
        })
    }

    fn check(&self, repair: bool) -> Result<CheckReport> {
        let _w = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let view = self.view();
        let mut report = CheckReport {
            images_checked: view.len(),
            ..CheckReport::default()
        };
        {
            let blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            for (d, e) in view.blobs() {
                report.blobs_checked += 1;
                match blobs.get(d) {
                    None => report.problems.push(format!("blob {d} missing")),
                    Some(b) if Digest::of(b) != *d || b.len() as u64 != e.size => {
                        report.problems.push(format!("blob {d} corrupt"));
                    }
                    Some(_) => continue,
                }
                for img in view.images() {
                    if img.blobs().any(|b| b.digest == *d)
                        && !report.broken_images.contains(&img.id)
                    {
                        report.broken_images.push(img.id);
                    }
                }
            }
        }
        if repair {
            let change = crate::engine::repair::drop_broken(&view, &report.broken_images);
            let applied = view.apply(&change)?;
            self.publish(applied.catalog.clone());
            report.repaired_images = change.delete_images.clone();
            let mut blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            let before = blobs.len();
            blobs.retain(|d, _| applied.catalog.blob(d).is_some() || self.leases.is_held(d));
            report.orphans_removed = before - blobs.len();
        }
        Ok(report)
    }
}

struct MemoryStaging<'a> {
    store: &'a MemoryStore,
    held: Vec<Digest>,
    written: Vec<Digest>,
}

impl Staging for MemoryStaging<'_> {
    fn put(&mut self, data: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| Error::new(ErrorKind::InvalidArchive, format!("reading blob: {e}")))?;
        let mut h = Hasher::new();
        h.update(&buf);
        let digest = h.finish();
        if let Some(want) = expected
            && *want != digest
        {
            return Err(Error::new(
                ErrorKind::InvalidArchive,
                format!("blob digest mismatch: expected {want}, got {digest}"),
            ));
        }
        let size = buf.len() as u64;
        self.store.leases.acquire(digest);
        self.held.push(digest);
        let mut blobs = self
            .store
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let std::collections::hash_map::Entry::Vacant(e) = blobs.entry(digest) {
            e.insert(buf.into());
            self.written.push(digest);
        }
        Ok((digest, size))
    }

    fn hold(&mut self, digest: &Digest) -> Result<bool> {
        self.store.leases.acquire(*digest);
        self.held.push(*digest);
        Ok(self
            .store
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(digest))
    }
}

impl Drop for MemoryStaging<'_> {
    fn drop(&mut self) {
        for d in &self.held {
            self.store.leases.release(d);
        }
        let view = self.store.view();
        let mut blobs = self
            .store
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for d in &self.written {
            if view.blob(d).is_none() && !self.store.leases.is_held(d) {
                blobs.remove(d);
            }
        }
    }
}
