//! [`LocalStore`]: opening (migrate, load, sweep), the read view and `apply`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::store::{CheckReport, FsUsage, Staging, Store, StoreInfo, WriteHealth};
use imaged_core::{Digest, Error, Result};

use crate::deleter::Deleter;
use crate::fsutil::{io_err, remove_file};
use crate::inner::{Inner, Writer, lock};
use crate::layout::Layout;
use crate::meta;
use crate::migrate;
use crate::migrate::SCHEMA_VERSION;

/// What the start-up sweep found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Blob files no image refers to, removed.
    pub orphan_blobs: usize,
    /// Temporary files of `ingest/`, removed.
    pub ingest_files: usize,
    /// Blobs images refer to that have no file (run `imaged fsck`).
    pub missing_blobs: usize,
}

/// Settings of a [`LocalStore`] (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Loads are refused (`NO_SPACE`) before they start while the filesystem of the root
    /// has less than this many bytes available; removals never are. Default 64 MiB.
    pub min_free_bytes: u64,
    /// Size of `<root>/reserve`, a pre-allocated file released to let a removal commit on
    /// a full disk (and re-created afterwards). Default 8 MiB; 0 disables it.
    pub reserve_bytes: u64,
    /// Open for inspection (`imaged fsck` without `--repair`): the store must exist and be
    /// of the current schema; nothing is swept, created or migrated, the clean-shutdown
    /// marker is neither consumed nor written, and [`Store::check`] also reports the
    /// leftovers a start-up sweep would remove. Default `false`.
    pub inspect: bool,
}

impl Options {
    /// Default of [`Options::min_free_bytes`].
    pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;
    /// Default of [`Options::reserve_bytes`].
    pub const DEFAULT_RESERVE_BYTES: u64 = 8 << 20;
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_free_bytes: Self::DEFAULT_MIN_FREE_BYTES,
            reserve_bytes: Self::DEFAULT_RESERVE_BYTES,
            inspect: false,
        }
    }
}

/// The embedded default store: metadata in redb, blobs content-addressed on disk.
///
/// Readers use an in-memory [`Catalog`] snapshot; writers are serialised, commit to redb
/// and only then publish the new snapshot and hand the blobs it released to the background
/// deleter (`src/deleter.rs`).
pub struct LocalStore {
    // Declared first, so dropped first: queued deletions finish while `inner` lives.
    deleter: Option<Deleter>,
    inner: Arc<Inner>,
}

impl Drop for LocalStore {
    /// Finishes the queued deletions, then marks the store cleanly closed when no blob
    /// file can be left unreferenced (the next open then skips the blob sweep). A store
    /// opened for inspection leaves the marker as it found it.
    fn drop(&mut self) {
        drop(self.deleter.take());
        let inner = &self.inner;
        let clean = !inner.options.inspect
            && !inner.uncertain.load(Ordering::SeqCst)
            && !inner.left_behind.load(Ordering::SeqCst)
            && lock(&inner.deferred).is_empty();
        if clean && let Err(e) = inner.layout.write_clean_marker() {
            tracing::warn!("{e}; the next start sweeps the blobs");
        }
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.inner.layout.root)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Opens (or creates) the store in `root`: creates the directories, opens the database,
    /// runs migrations, loads the catalog (blobs are not read) and sweeps orphan blobs and
    /// leftover temporary files.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, Options::default())
    }

    /// [`LocalStore::open`] with `options`.
    pub fn open_with(root: &Path, options: Options) -> Result<Self> {
        let started = std::time::Instant::now();
        let layout = Layout::new(root);
        if options.inspect {
            if !layout.meta.is_file() {
                return Err(Error::internal(format!(
                    "no store in {}: {} is missing",
                    root.display(),
                    layout.meta.display()
                )));
            }
            let db = meta::open_db(&layout.meta)?;
            migrate::prepare(&db, &layout.meta, true)?;
            let (schema_version, created_at) = migrate::facts(&db, &layout.meta)?;
            let catalog = crate::load::catalog(&db, &layout.meta)?;
            let inner = Arc::new(Inner::new(
                layout,
                options,
                db,
                catalog,
                schema_version,
                created_at,
                SweepReport::default(),
            ));
            let deleter = Deleter::spawn(Arc::downgrade(&inner));
            return Ok(Self { deleter, inner });
        }
        layout.create()?;
        let mut db = meta::open_db(&layout.meta)?;
        if migrate::prepare(&db, &layout.meta, false)?.is_some_and(|v| v < SCHEMA_VERSION) {
            // A migration rewrites every record in one transaction: the file holds the old
            // and the new pages (3× its size at 100k images) until compacted.
            meta::compact(&mut db, &layout.meta);
        }
        let (schema_version, created_at) = migrate::facts(&db, &layout.meta)?;
        let ingest_files = layout.sweep_ingest()?;
        // After a clean close no blob file can be unreferenced (stagings and the deleter
        // remove theirs, and the marker is only written when none was left behind): the
        // listing of a blob directory of 400k files (~0.5 s, and the memory of its
        // entries) is only needed after a crash.
        let clean = layout.take_clean_marker()?;
        let prepared = started.elapsed();
        let (catalog, listing) = std::thread::scope(|s| {
            let listing = (!clean).then(|| s.spawn(|| layout.blob_files()));
            let catalog = crate::load::catalog(&db, &layout.meta);
            let listing = match listing {
                Some(t) => Some(t.join().map_err(|_| {
                    Error::internal(format!(
                        "listing {}: thread panicked",
                        layout.blobs.display()
                    ))
                })??),
                None => None,
            };
            Ok::<_, Error>((catalog?, listing))
        })?;
        let loaded = started.elapsed();
        let swept = match listing {
            Some(listing) => sweep(&layout, &catalog, listing, ingest_files)?,
            None => {
                tracing::debug!("the store was closed cleanly: no blob sweep");
                SweepReport {
                    ingest_files,
                    ..SweepReport::default()
                }
            }
        };
        tracing::debug!(
            images = catalog.len(),
            prepared_ms = prepared.as_millis(),
            loaded_ms = loaded.as_millis(),
            swept_ms = started.elapsed().as_millis(),
            "store open"
        );
        if swept != SweepReport::default() {
            tracing::info!(
                orphan_blobs = swept.orphan_blobs,
                ingest_files = swept.ingest_files,
                missing_blobs = swept.missing_blobs,
                "store start-up sweep"
            );
        }
        if swept.missing_blobs > 0 {
            tracing::warn!(
                missing = swept.missing_blobs,
                "images refer to missing blobs; run `imaged fsck --repair`"
            );
        }
        if let Err(e) = crate::space::ensure_reserve(&layout, options.reserve_bytes) {
            tracing::warn!(error = %e, "cannot create the space reserve; removals on a full disk may fail");
        }
        let inner = Arc::new(Inner::new(
            layout,
            options,
            db,
            catalog,
            schema_version,
            created_at,
            swept,
        ));
        let deleter = Deleter::spawn(Arc::downgrade(&inner));
        Ok(Self { deleter, inner })
    }

    /// `apply` with the writer lock held: commits, then queues the released blobs for
    /// deletion.
    pub(crate) fn apply_locked(
        &self,
        w: &mut Writer,
        change: &ChangeSet,
        planned: Option<(&Catalog, Applied)>,
    ) -> Result<Applied> {
        let applied = self.inner.commit_locked(w, change, planned)?;
        let released: Vec<Digest> = applied.released.iter().map(|(d, _)| *d).collect();
        let bytes = applied.released.iter().map(|(_, s)| s).sum();
        match &self.deleter {
            Some(d) => {
                if let Err(batch) = d.submit(released, bytes) {
                    self.inner.delete_unused(batch);
                }
            }
            None => self.inner.delete_unused(released),
        }
        Ok(applied)
    }

    /// The shared state (for the staging, the check and the deleter).
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.layout.root
    }

    /// The schema version of the database (after migrations).
    pub fn schema_version(&self) -> u64 {
        self.inner.schema_version
    }

    /// When the store was created (Unix nanoseconds; for a migrated v1 store, when it was
    /// migrated).
    pub fn created_at(&self) -> Option<u64> {
        self.inner.created_at
    }

    /// What the start-up sweep of this open removed.
    pub fn sweep_report(&self) -> SweepReport {
        self.inner.swept
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.layout.blob(digest)
    }

    /// Waits until the blob files released by every change applied so far are deleted
    /// (or kept because something refers to them again).
    pub fn wait_for_deletions(&self) {
        if let Some(d) = &self.deleter {
            d.wait_idle();
        }
    }
}

/// Removes the blob files of `listing` no image refers to; counts missing blobs.
fn sweep(
    layout: &Layout,
    catalog: &Catalog,
    listing: Vec<(Option<Digest>, PathBuf, fs::FileType)>,
    ingest_files: usize,
) -> Result<SweepReport> {
    let mut report = SweepReport {
        ingest_files,
        ..SweepReport::default()
    };
    let (present, unreferenced) = classify(catalog, &listing);
    for i in unreferenced {
        let Some((_, path, kind)) = listing.get(i) else {
            continue;
        };
        if !kind.is_file() {
            tracing::warn!(path = %path.display(), "unexpected entry in blobs/sha256, left alone");
            continue;
        }
        if remove_file(path)? {
            report.orphan_blobs += 1;
        }
    }
    let referenced = usize::try_from(catalog.blob_usage().1).unwrap_or(usize::MAX);
    report.missing_blobs = referenced.saturating_sub(present);
    if report.orphan_blobs > 0 || report.ingest_files > 0 {
        crate::fsutil::sync_dir(&layout.blobs)?;
        crate::fsutil::sync_dir(&layout.ingest)?;
    }
    Ok(report)
}

/// Listings at least this long are looked up on every core.
const PARALLEL_SWEEP_MIN: usize = 16_384;

/// How many files of `listing` are blobs the catalog refers to, and the positions of
/// the others (unreferenced or unparsable names, and entries that are not files). One
/// persistent-map lookup per file: after a crash at 100k images that is ~250k lookups,
/// split over the cores (the catalog is shared read-only).
fn classify(
    catalog: &Catalog,
    listing: &[(Option<Digest>, PathBuf, fs::FileType)],
) -> (usize, Vec<usize>) {
    let part = |start: usize, entries: &[(Option<Digest>, PathBuf, fs::FileType)]| {
        let mut present = 0usize;
        let mut others = Vec::new();
        for (i, (digest, _, kind)) in entries.iter().enumerate() {
            match digest {
                Some(d) if kind.is_file() && catalog.blob(d).is_some() => present += 1,
                _ => others.push(start + i),
            }
        }
        (present, others)
    };
    let threads = crate::load::open_threads();
    if threads == 1 || listing.len() < PARALLEL_SWEEP_MIN {
        return part(0, listing);
    }
    let chunk = listing.len().div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = listing
            .chunks(chunk)
            .enumerate()
            .map(|(n, entries)| {
                let start = n * chunk;
                (start, entries, s.spawn(move || part(start, entries)))
            })
            .collect();
        let mut present = 0;
        let mut others = Vec::new();
        for (start, entries, worker) in workers {
            // A lookup cannot panic; if a thread did, its part is done again here.
            let (p, o) = worker.join().unwrap_or_else(|_| part(start, entries));
            present += p;
            others.extend(o);
        }
        (present, others)
    })
}

impl Store for LocalStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "local",
            root: self.inner.layout.root.clone(),
            containers_read_only: false,
        }
    }

    fn view(&self) -> Arc<Catalog> {
        self.inner.view()
    }

    fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        let _writing = self.inner.writing();
        let mut w = self.inner.write_lock();
        self.apply_locked(&mut w, change, None)
    }

    /// The planner's result is published as is when the view is still the one it was
    /// planned on (the writer lock is held: nothing else can change it meanwhile).
    fn apply_planned(
        &self,
        change: &ChangeSet,
        base: &Catalog,
        planned: Applied,
    ) -> Result<Applied> {
        let _writing = self.inner.writing();
        let mut w = self.inner.write_lock();
        self.apply_locked(&mut w, change, Some((base, planned)))
    }

    fn stage(&self) -> Result<Box<dyn Staging + '_>> {
        self.inner.check_space_for_load()?;
        Ok(Box::new(crate::staging::LocalStaging::new(&self.inner)))
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let path = self.inner.layout.blob(digest);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path, &e)),
        }
    }

    /// The blobs the catalog refers to (each once) and their files, plus the directory:
    /// O(1), no directory walk. Files of released blobs not yet deleted, and orphans a
    /// sweep will remove, are not counted: they are already freed as far as imaged is
    /// concerned.
    fn fs_usage(&self) -> Result<FsUsage> {
        let (used_bytes, blobs) = self.view().blob_usage();
        Ok(FsUsage {
            used_bytes,
            inodes_used: blobs + 1,
        })
    }

    fn check(&self, repair: bool) -> Result<CheckReport> {
        crate::check::check(self, repair)
    }

    /// The root's filesystem, with the blobs released and not yet deleted counted as
    /// available (a GC run right after another must not take more images for them).
    fn fs_space(&self) -> Result<Option<imaged_core::store::FsSpace>> {
        let mut fs = crate::space::fs_space(&self.inner.layout.root)?;
        let pending = self.deleter.as_ref().map_or(0, Deleter::pending_bytes);
        fs.available = fs.available.saturating_add(pending).min(fs.capacity);
        Ok(Some(fs))
    }

    /// Unwritable while the filesystem has less than `min_free_bytes` available, and after
    /// a write failed for lack of space until enough is available again (see the README).
    fn write_health(&self) -> WriteHealth {
        self.inner.write_health()
    }
}
