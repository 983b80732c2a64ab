//! [`Inner`]: the state of a [`LocalStore`](crate::LocalStore) shared with the background
//! deleter, and the commit and deletion paths that work on it.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::store::{Leases, WriteHealth};
use imaged_core::{Digest, Error, ErrorKind, Result};
use redb::Database;

use crate::fsutil::{io_err, remove_file};
use crate::layout::Layout;
use crate::meta;
use crate::space;
use crate::store::{Options, SweepReport};

/// Takes a mutex, ignoring poisoning (every guarded state stays consistent on panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state of a [`LocalStore`](crate::LocalStore) the background deleter shares.
pub(crate) struct Inner {
    pub(crate) layout: Layout,
    pub(crate) options: Options,
    view: RwLock<Arc<Catalog>>,
    /// The database and the write path; serialises `apply` and `check`.
    writer: Mutex<Writer>,
    /// Orders "is it leased? then delete" against "lease it, then look/rename".
    pub(crate) blob_lock: Mutex<()>,
    pub(crate) leases: Leases,
    /// Released blobs kept because a staging held them; deleted when it ends.
    pub(crate) deferred: Mutex<HashSet<Digest>>,
    /// A commit failed without knowing whether it reached the disk: the in-memory view may
    /// be behind the database, so no blob is deleted until the database is re-opened and
    /// the commit settled ([`Inner::recover`]).
    pub(crate) uncertain: AtomicBool,
    /// A blob deletion failed: the next open must sweep.
    pub(crate) left_behind: AtomicBool,
    /// A write failed for lack of space; cleared once space is back ([`Inner::write_health`]).
    pub(crate) no_space: AtomicBool,
    /// The database must be re-opened (an I/O error poisoned it); mirrors `Writer::db`.
    db_closed: AtomicBool,
    /// Writes waiting for the writer lock or committing ([`Inner::writing`]): the
    /// background deleter gives way to them.
    writers: AtomicUsize,
    pub(crate) schema_version: u64,
    pub(crate) created_at: Option<u64>,
    pub(crate) swept: SweepReport,
}

/// What the writer lock guards.
pub(crate) struct Writer {
    /// `None` after an I/O error, until [`Inner::recover`] re-opens it.
    db: Option<Database>,
    /// A commit that failed ambiguously, not settled yet: the change and what applying it
    /// to the then current view gave.
    unsettled: Option<(ChangeSet, Applied)>,
}

/// A change deleting at least this many images (and adding none) is applied to the
/// view while its records are written ([`Inner::delete_overlapped`]).
const OVERLAP_MIN: usize = 256;

/// Drops a prepared transaction without committing it.
fn abort(prepared: std::result::Result<redb::WriteTransaction, meta::WriteError>) {
    if let Ok(txn) = prepared
        && let Err(e) = txn.abort()
    {
        tracing::debug!(error = %e, "aborting a write transaction");
    }
}

/// Blob files the background deleter unlinks between two looks at the writers.
const DELETE_CHUNK: usize = 256;

/// The longest the background deleter waits for writes before a chunk: a steady stream
/// of writes slows deletion down but never stops it.
const YIELD_MAX: Duration = Duration::from_millis(50);

/// A write under way ([`Inner::writing`]).
pub(crate) struct Writing<'a>(&'a AtomicUsize);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `change` may use the space reserve: it adds no blobs and releases some or only
/// deletes (a removal, a prune, a container removal).
fn frees(change: &ChangeSet, applied: &Applied) -> bool {
    applied.added.is_empty()
        && (!applied.released.is_empty()
            || (change.put_images.is_empty() && change.put_containers.is_empty()))
}

/// Below this much available space a store that hit a full disk still reports itself
/// unwritable (with `min_free_bytes` and the reserve, whichever is largest).
const RECOVERY_BYTES: u64 = 1 << 20;

impl Inner {
    /// The state of a freshly opened store.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        layout: Layout,
        options: Options,
        db: Database,
        catalog: Catalog,
        schema_version: u64,
        created_at: Option<u64>,
        swept: SweepReport,
    ) -> Self {
        Self {
            layout,
            options,
            view: RwLock::new(Arc::new(catalog)),
            writer: Mutex::new(Writer {
                db: Some(db),
                unsettled: None,
            }),
            blob_lock: Mutex::new(()),
            leases: Leases::default(),
            deferred: Mutex::new(HashSet::new()),
            uncertain: AtomicBool::new(false),
            left_behind: AtomicBool::new(false),
            no_space: AtomicBool::new(false),
            db_closed: AtomicBool::new(false),
            writers: AtomicUsize::new(0),
            schema_version,
            created_at,
            swept,
        }
    }

    fn publish(&self, catalog: Catalog) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The current view.
    pub(crate) fn view(&self) -> Arc<Catalog> {
        Arc::clone(&self.view.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-opens the database after an I/O error and settles a commit that failed
    /// ambiguously: when the database holds it, its view is published and returned (the
    /// caller deletes the blobs it released). Errors (e.g. `NoSpace` while redb repairs the
    /// file) leave the store as it was, to retry at the next write or health check.
    pub(crate) fn recover(&self, w: &mut Writer) -> Result<Option<Applied>> {
        if w.db.is_none() {
            let db = meta::open_db(&self.layout.meta)?;
            tracing::info!(path = %self.layout.meta.display(), "database re-opened after an I/O error");
            w.db = Some(db);
            self.db_closed.store(false, Ordering::SeqCst);
        }
        let Some((change, applied)) = w.unsettled.take() else {
            return Ok(None);
        };
        let db =
            w.db.as_ref()
                .ok_or_else(|| Error::internal("database not open"))?;
        let held = match meta::holds(db, &self.layout.meta, &change) {
            Ok(held) => held,
            Err(e) => {
                w.unsettled = Some((change, applied));
                return Err(e);
            }
        };
        self.uncertain.store(false, Ordering::SeqCst);
        if held {
            tracing::warn!("a commit reported as failed did reach the database: publishing it");
            self.publish(applied.catalog.clone());
            Ok(Some(applied))
        } else {
            tracing::info!("the failed commit did not reach the database");
            Ok(None)
        }
    }

    /// Commits `change` to the database; on failure records what recovery needs.
    fn write(&self, w: &mut Writer, change: &ChangeSet, applied: &Applied) -> Result<()> {
        let db =
            w.db.as_ref()
                .ok_or_else(|| Error::internal("database not open"))?;
        let written = meta::write(db, &self.layout.meta, change);
        self.written(w, change, applied, written)
    }

    /// The outcome of a commit of `change` (`applied` to the view): on failure, records
    /// what recovery needs.
    fn written(
        &self,
        w: &mut Writer,
        change: &ChangeSet,
        applied: &Applied,
        written: std::result::Result<(), meta::WriteError>,
    ) -> Result<()> {
        let Err(e) = written else {
            return Ok(());
        };
        if e.error.kind == ErrorKind::NoSpace {
            self.no_space.store(true, Ordering::SeqCst);
        }
        if e.broken {
            // Closes the file (and its lock) so that `recover` can open it again.
            w.db = None;
            self.db_closed.store(true, Ordering::SeqCst);
        }
        if e.ambiguous {
            self.uncertain.store(true, Ordering::SeqCst);
            w.unsettled = Some((change.clone(), applied.clone()));
        }
        tracing::error!(error = %e.error, ambiguous = e.ambiguous, "commit failed");
        Err(e.error)
    }

    /// Checks the blobs a change adds, commits it and publishes the new view; deletes
    /// nothing but what settling an earlier failed commit released (see
    /// [`LocalStore::apply_locked`](crate::LocalStore)).
    ///
    /// After an I/O error the database is re-opened (here, or at the start of the next
    /// write). A change that adds nothing and releases blobs or only deletes (a removal, a
    /// prune) whose commit fails for lack of space is retried once after releasing the
    /// reserve file: removals are the way out of a full disk.
    pub(crate) fn commit_locked(
        &self,
        w: &mut Writer,
        change: &ChangeSet,
        planned: Option<(&Catalog, Applied)>,
    ) -> Result<Applied> {
        let settled = match self.recover(w) {
            Ok(settled) => settled,
            // redb may need pages to re-open (repair): a removal may use the reserve.
            Err(e)
                if e.kind == ErrorKind::NoSpace
                    && frees(change, &self.view().apply(change)?)
                    && space::release_reserve(&self.layout) =>
            {
                self.recover(w)?
            }
            Err(e) => return Err(e),
        };
        if let Some(settled) = settled {
            self.delete_unused(settled.released.iter().map(|(d, _)| *d));
        }
        let (applied, first) = if change.put_images.is_empty()
            && change.delete_images.len() >= OVERLAP_MIN
            && w.db.is_some()
        {
            self.ensure_reserve();
            self.delete_overlapped(w, change)?
        } else {
            // A recovery above may have published another view than the planned one.
            let applied = Applied::planned_or_apply(&self.view(), change, planned)?;
            self.check_added(&applied)?;
            if change.is_empty() {
                self.publish(applied.catalog.clone());
                return Ok(applied);
            }
            self.ensure_reserve();
            let first = self.write(w, change, &applied);
            (applied, first)
        };
        let Err(err) = first else {
            self.publish(applied.catalog.clone());
            return Ok(applied);
        };
        // Re-open right away and settle an ambiguous commit: it may have reached the disk.
        match self.recover(w) {
            Ok(Some(settled)) => return Ok(settled),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "re-opening the database failed"),
        }
        if !(err.kind == ErrorKind::NoSpace
            && frees(change, &applied)
            && space::release_reserve(&self.layout))
        {
            return Err(err);
        }
        tracing::warn!("disk full: released the space reserve for a removal");
        if let Some(settled) = self.recover(w)? {
            return Ok(settled);
        }
        self.write(w, change, &applied)?;
        self.publish(applied.catalog.clone());
        Ok(applied)
    }

    /// A change that deletes many images and adds none (a prune): the view is applied on
    /// a second thread while this one writes the records into a transaction, which is
    /// committed once the view applied (else aborted: nothing written). Adding nothing,
    /// it has no blob to check. Gives what applying it gave and how the commit went.
    fn delete_overlapped(
        &self,
        w: &mut Writer,
        change: &ChangeSet,
    ) -> Result<(Applied, Result<()>)> {
        let view = self.view();
        let db =
            w.db.as_ref()
                .ok_or_else(|| Error::internal("database not open"))?;
        let t0 = Instant::now();
        let (applied, prepared, t_apply, t_prepare) = std::thread::scope(|s| {
            let applying = s.spawn(|| (view.apply(change), t0.elapsed()));
            let prepared = meta::prepare(db, &self.layout.meta, change);
            let t_prepare = t0.elapsed();
            let (applied, t_apply) = match applying.join() {
                Ok((applied, t)) => (Ok(applied), t),
                Err(p) => (Err(p), t0.elapsed()),
            };
            (applied, prepared, t_apply, t_prepare)
        });
        let applied = match applied {
            Ok(Ok(applied)) => applied,
            Ok(Err(e)) => {
                abort(prepared);
                return Err(e);
            }
            Err(_) => {
                abort(prepared);
                return Err(Error::internal("applying a change: the thread panicked"));
            }
        };
        let t_joined = t0.elapsed();
        let written = prepared.and_then(|txn| meta::commit(txn, &self.layout.meta));
        tracing::debug!(
            images = change.delete_images.len(),
            apply_ms = t_apply.as_secs_f64() * 1e3,
            records_ms = t_prepare.as_secs_f64() * 1e3,
            commit_ms = (t0.elapsed() - t_joined).as_secs_f64() * 1e3,
            "bulk deletion written"
        );
        let first = self.written(w, change, &applied, written);
        Ok((applied, first))
    }

    /// Re-creates the space reserve when it is missing, if it can.
    fn ensure_reserve(&self) {
        if !space::reserve_present(&self.layout, self.options.reserve_bytes)
            && let Err(e) = space::ensure_reserve(&self.layout, self.options.reserve_bytes)
        {
            tracing::debug!(error = %e, "the space reserve cannot be re-created yet");
        }
    }

    /// Every blob the change adds must be in `blobs/sha256` with its recorded size.
    fn check_added(&self, applied: &Applied) -> Result<()> {
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
        Ok(())
    }

    /// `NoSpace` when the filesystem has less than `min_free_bytes` available (loads are
    /// refused before they start).
    pub(crate) fn check_space_for_load(&self) -> Result<()> {
        space::check_available(&self.layout.root, self.options.min_free_bytes)
    }

    /// Whether the store can write now. Cheap while healthy (one `statvfs`); after a
    /// failure it re-opens the database, re-creates the reserve and settles a failed commit
    /// when the writer lock is free (it never waits for a running write or check).
    pub(crate) fn write_health(&self) -> WriteHealth {
        let o = &self.options;
        let free = match space::available(&self.layout.root) {
            Ok(f) => f,
            Err(e) => return WriteHealth::Unwritable(e.message),
        };
        if free < o.min_free_bytes {
            return WriteHealth::Unwritable(format!(
                "{free} bytes available, below min_free_bytes ({})",
                o.min_free_bytes
            ));
        }
        let faulted = self.no_space.load(Ordering::SeqCst)
            || self.db_closed.load(Ordering::SeqCst)
            || self.uncertain.load(Ordering::SeqCst);
        if !faulted {
            return WriteHealth::Writable;
        }
        let mut w = match self.writer.try_lock() {
            Ok(w) => w,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return WriteHealth::Unwritable("recovering from a failed write".to_owned());
            }
        };
        match self.recover(&mut w) {
            Ok(Some(settled)) => self.delete_unused(settled.released.iter().map(|(d, _)| *d)),
            Ok(None) => {}
            Err(e) => return WriteHealth::Unwritable(e.message),
        }
        if self.no_space.load(Ordering::SeqCst) {
            if let Err(e) = space::ensure_reserve(&self.layout, o.reserve_bytes) {
                return WriteHealth::Unwritable(e.message);
            }
            let need = o.min_free_bytes.max(o.reserve_bytes).max(RECOVERY_BYTES);
            let free = space::available(&self.layout.root).unwrap_or(0);
            if free < need {
                return WriteHealth::Unwritable(format!(
                    "a write failed for lack of space; {free} bytes available, {need} needed"
                ));
            }
            self.no_space.store(false, Ordering::SeqCst);
            tracing::info!(available = free, "space is back: the store can write again");
        }
        WriteHealth::Writable
    }

    /// Marks a write as under way (waiting for the writer lock or committing) until the
    /// guard drops.
    pub(crate) fn writing(&self) -> Writing<'_> {
        self.writers.fetch_add(1, Ordering::SeqCst);
        Writing(&self.writers)
    }

    /// [`Inner::delete_unused`] a chunk at a time, giving way to writes: before each
    /// chunk it waits (up to [`YIELD_MAX`]) while a write is under way, so the unlinks of
    /// a large removal (346k files for a prune of 80k images, ~3 s) neither compete with
    /// a commit's fsync nor hold the blob lock for long.
    pub(crate) fn delete_unused_paced(&self, candidates: Vec<Digest>) {
        for chunk in candidates.chunks(DELETE_CHUNK) {
            let since = Instant::now();
            while self.writers.load(Ordering::SeqCst) > 0 && since.elapsed() < YIELD_MAX {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.delete_unused(chunk.iter().copied());
        }
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
    pub(crate) fn write_lock(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }
}
