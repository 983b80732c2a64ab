//! [`Inner`]: the state of a [`LocalStore`](crate::LocalStore) shared with the background
//! deleter, and the commit and deletion paths that work on it.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::store::Leases;
use imaged_core::{Digest, Error, Result};
use redb::Database;

use crate::fsutil::{io_err, remove_file};
use crate::layout::Layout;
use crate::meta::{self, WriteError};
use crate::store::SweepReport;

/// Takes a mutex, ignoring poisoning (every guarded state stays consistent on panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state of a [`LocalStore`] the background deleter shares.
pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) db: Database,
    pub(crate) view: RwLock<Arc<Catalog>>,
    /// Serialises `apply` and `check`.
    pub(crate) write: Mutex<()>,
    /// Orders "is it leased? then delete" against "lease it, then look/rename".
    pub(crate) blob_lock: Mutex<()>,
    pub(crate) leases: Leases,
    /// Released blobs kept because a staging held them; deleted when it ends.
    pub(crate) deferred: Mutex<HashSet<Digest>>,
    /// A commit failed without knowing whether it reached the disk: the in-memory view may
    /// be behind the database, so no blob is deleted until the next open re-reads it.
    pub(crate) uncertain: AtomicBool,
    /// A blob deletion failed: the next open must sweep.
    pub(crate) left_behind: AtomicBool,
    pub(crate) schema_version: u64,
    pub(crate) created_at: Option<u64>,
    pub(crate) swept: SweepReport,
}

impl Inner {
    fn publish(&self, catalog: Catalog) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The current view.
    pub(crate) fn view(&self) -> Arc<Catalog> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Checks the blobs a change adds, commits it and publishes the new view; deletes
    /// nothing (see [`LocalStore::apply_locked`](crate::LocalStore)).
    pub(crate) fn commit_locked(&self, change: &ChangeSet) -> Result<Applied> {
        let applied = self.view().apply(change)?;
        for (d, size) in &applied.added {
            let path = self.layout.blob(d);
            match fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() == *size => {}
                Ok(m) => {
                    return Err(Error::internal(format!(
                        "blob {d} has {} bytes on disk, the change says {size}",
                        m.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::internal(format!("blob {d} was never staged")));
                }
                Err(e) => return Err(io_err("inspecting", &path, &e)),
            }
        }
        if !change.is_empty() {
            meta::write(&self.db, &self.layout.meta, change).map_err(|e| match e {
                WriteError::Aborted(e) => e,
                WriteError::Ambiguous(e) => {
                    self.uncertain.store(true, Ordering::SeqCst);
                    tracing::error!(error = %e, "commit failed; blob deletion disabled until restart");
                    e
                }
            })?;
        }
        self.publish(applied.catalog.clone());
        Ok(applied)
    }

    /// Deletes the blob files of `candidates` that no staging holds and the current view does
    /// not refer to; held ones are remembered and deleted when their staging ends. Failures
    /// are logged: a file left behind is an orphan the next start-up sweep removes.
    pub(crate) fn delete_unused(&self, candidates: impl IntoIterator<Item = Digest>) {
        if self.uncertain.load(Ordering::SeqCst) {
            return;
        }
        let _b = lock(&self.blob_lock);
        let mut deferred = lock(&self.deferred);
        // Leases first, then the view: a blob released by a staging after it applied is
        // referenced by a view published before that release.
        let unheld: Vec<Digest> = candidates
            .into_iter()
            .filter(|d| {
                let held = self.leases.is_held(d);
                if held {
                    deferred.insert(*d);
                }
                !held
            })
            .collect();
        let view = self.view();
        for d in unheld {
            deferred.remove(&d);
            if view.blob(&d).is_some() {
                continue;
            }
            let path = self.layout.blob(&d);
            if let Err(e) = remove_file(&path) {
                self.left_behind.store(true, Ordering::SeqCst);
                tracing::warn!(error = %e, "blob left behind; the start-up sweep will remove it");
            }
        }
    }

    /// Blobs released while held, to retry when a staging ends.
    pub(crate) fn deferred(&self) -> Vec<Digest> {
        lock(&self.deferred).iter().copied().collect()
    }

    /// The writer lock.
    pub(crate) fn write_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.write)
    }
}
