//! What readers and writers of the store share: the lock files, the records read from
//! the store and the catalog built from them, and the last published catalog.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};

use imaged_core::catalog::Catalog;
use imaged_core::error::Result;

use crate::snapshot::{Locks, Snapshot};

#[derive(Debug)]
pub(crate) struct View {
    pub(crate) locks: Locks,
    /// The records and catalog; held by one refresh or one apply at a time.
    snap: Mutex<Snapshot>,
    /// The last published catalog (served while an apply holds `snap`).
    current: RwLock<Arc<Catalog>>,
    /// Serialises readers' refreshes: a reader waits for another reader's refresh (reads
    /// only, short) rather than serve a catalog older than a change that finished before
    /// its call; it never waits for an apply.
    refreshing: Mutex<()>,
}

impl View {
    pub(crate) fn new(locks: Locks, snap: Snapshot) -> Self {
        Self {
            locks,
            snap: Mutex::new(snap),
            current: RwLock::new(Arc::new(Catalog::new())),
            refreshing: Mutex::new(()),
        }
    }

    pub(crate) fn lock_snap(&self) -> MutexGuard<'_, Snapshot> {
        self.snap.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn publish(&self, snap: &Snapshot) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&snap.catalog);
    }

    pub(crate) fn current(&self) -> Arc<Catalog> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Refreshes the snapshot if the store moved, and publishes it. Waits only for another
    /// reader's refresh (or the watcher's read-ahead), never for an apply (its catalog is
    /// served until it publishes) nor for another process's write lock (the published
    /// catalog is served and the next call retries).
    ///
    /// What is published is always the store as it was at a moment when this call could
    /// take the read locks: a snapshot the watcher read ahead ([`View::read_ahead`]) is
    /// published only if the files have not moved since and no writer holds a lock now,
    /// exactly as if this call had read it.
    pub(crate) fn refresh(&self) -> Arc<Catalog> {
        let _one_reader = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut snap = match self.snap.try_lock() {
            Ok(s) => s,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return self.current(),
        };
        let published = Arc::ptr_eq(&snap.catalog, &self.current());
        if published && snap.is_current(&snap.probe(&self.locks)) {
            return Arc::clone(&snap.catalog);
        }
        match self.catch_up(&mut snap) {
            Ok(true) => {
                self.publish(&snap);
                return Arc::clone(&snap.catalog);
            }
            // A writer holds a lock: serve the published catalog, retry next time.
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "containers-storage: refresh failed"),
        }
        self.current()
    }

    /// Reads what moved into the snapshot without publishing it (the watcher, after
    /// another program's write): the next [`View::refresh`] publishes it if nothing moved
    /// since, so the reading is off the request's path but what a request sees is
    /// unchanged. Gives up when a writer holds a lock or the snapshot is busy.
    pub(crate) fn read_ahead(&self) {
        let _one_reader = self
            .refreshing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Ok(mut snap) = self.snap.try_lock() else {
            return;
        };
        if let Err(e) = self.catch_up(&mut snap) {
            tracing::debug!(error = %e, "containers-storage: reading ahead failed");
        }
    }

    /// Brings `snap` up to date with the store under its read locks, taken without
    /// waiting; `false` when a writer holds one (nothing read).
    fn catch_up(&self, snap: &mut Snapshot) -> Result<bool> {
        let Some(locks) = self.locks.try_read()? else {
            return Ok(false);
        };
        // Under the locks what is read is consistent.
        let probe = snap.probe(&self.locks);
        if !snap.is_current(&probe) {
            snap.reload(probe)?;
        }
        drop(locks);
        // Usage data the reading recorded (a container gone, a new one): imaged's own
        // file, written outside c/storage's locks.
        snap.usage.save();
        Ok(true)
    }
}
