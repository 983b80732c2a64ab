//! The [`imaged_core::Store`] implementation.

use std::sync::{Arc, MutexGuard};

use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::digest::Digest;
use imaged_core::error::{Error, ErrorKind, Result};
use imaged_core::store::{CheckReport, FsUsage, Staging, Store, StoreInfo, WriteHealth};

use crate::config::StoreOptions;
use crate::driver::Paths;
use crate::load::Loads;
use crate::reaper::Reaper;
use crate::snapshot::{Locks, Snapshot, ro_paths};
use crate::view::View;
use crate::watch::{self, Watcher};

/// A containers-storage store managed in place.
#[derive(Debug)]
pub struct CStorageStore {
    pub(crate) opts: StoreOptions,
    pub(crate) paths: Paths,
    /// The lock files, the records and the published catalog (shared with the watcher).
    pub(crate) view: Arc<View>,
    pub(crate) loads: Arc<Loads>,
    /// Empties the trash after removals, off the call path.
    pub(crate) reaper: Reaper,
    /// Reads another program's changes ahead of the next request (`None`: no inotify
    /// here; the requests read them, as they always can).
    watcher: Option<Watcher>,
}

impl CStorageStore {
    /// Opens the store: creates c/storage's directories and lock files when missing,
    /// finishes removals a previous run (or podman) left incomplete, and reads it.
    pub fn open(opts: StoreOptions) -> Result<Self> {
        Self::open_mode(opts, false)
    }

    /// Opens the store for inspection (`imaged fsck` without `--repair`): like
    /// [`CStorageStore::open`] but nothing interrupted is finished and the trash is left
    /// alone, so [`imaged_core::Store::check`] reports what is there.
    pub fn open_for_inspection(opts: StoreOptions) -> Result<Self> {
        Self::open_mode(opts, true)
    }

    fn open_mode(opts: StoreOptions, inspect: bool) -> Result<Self> {
        let paths = Paths {
            root: opts.graph_root.clone(),
            run: Some(opts.run_root.clone()),
            driver: opts.driver,
        };
        let ro: Vec<Paths> = opts
            .additional_image_stores
            .iter()
            .map(|r| ro_paths(&paths, r))
            .collect();
        let locks = Locks::open(&paths, &ro)?;
        let snap = Snapshot::new(paths.clone(), ro, opts.libpod_db.clone());
        let loads = Arc::new(Loads::new(opts.graph_root.join("imaged-staging")));
        let mut store = Self {
            paths,
            view: Arc::new(View::new(locks, snap)),
            loads,
            reaper: Reaper::default(),
            watcher: None,
            opts,
        };
        {
            let mut snap = store.lock_snap();
            if inspect {
                snap.usage.set_read_only();
                drop(snap);
                store.refresh();
                return Ok(store);
            }
            crate::recover::recover(&store, &mut snap)?;
            if let Err(e) = store.loads.sweep() {
                tracing::warn!(error = %e, "containers-storage: removing stale load stagings");
            }
            if let Err(e) = store.paths.empty_trash() {
                tracing::warn!(error = %e, "containers-storage: emptying imaged-trash");
            }
            store.publish(&snap);
            snap.usage.save();
        }
        store.watcher = Watcher::spawn(
            Arc::downgrade(&store.view),
            &watch::watched_dirs(&store.paths),
        );
        Ok(store)
    }

    /// Waits until the data of removed images, layers and containers is deleted from
    /// disk (removals return once it is out of c/storage's directories; the rest happens
    /// in the background).
    pub fn settle(&self) {
        self.reaper.wait_idle();
    }

    /// Where the store is.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    pub(crate) fn lock_snap(&self) -> MutexGuard<'_, Snapshot> {
        self.view.lock_snap()
    }

    pub(crate) fn publish(&self, snap: &Snapshot) {
        self.view.publish(snap);
    }

    pub(crate) fn current(&self) -> Arc<Catalog> {
        self.view.current()
    }

    /// See [`View::refresh`].
    pub(crate) fn refresh(&self) -> Arc<Catalog> {
        self.view.refresh()
    }
}

impl Store for CStorageStore {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            kind: "containers-storage",
            root: self.opts.graph_root.clone(),
            containers_read_only: true,
        }
    }

    fn view(&self) -> Arc<Catalog> {
        self.refresh()
    }

    fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        crate::write::apply(self, change)
    }

    fn stage(&self) -> Result<Box<dyn Staging + '_>> {
        // Space a removal freed is free before a load writes.
        self.reaper.wait_idle();
        self.loads.stage(self.current())
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        self.read_blob_impl(digest)
    }

    fn fs_usage(&self) -> Result<FsUsage> {
        self.fs_usage_impl()
    }

    fn check(&self, repair: bool) -> Result<CheckReport> {
        crate::recover::check(self, repair)
    }

    fn write_health(&self) -> WriteHealth {
        self.write_health_impl()
    }

    /// The filesystem of the graph root (where podman keeps the layers), once the trash
    /// of earlier removals is emptied (a GC run right after another must not take more
    /// images for space that is already freed).
    fn fs_space(&self) -> Result<Option<imaged_core::store::FsSpace>> {
        self.reaper.wait_idle();
        let root = &self.opts.graph_root;
        let st = nix::sys::statvfs::statvfs(root).map_err(|e| {
            imaged_core::Error::new(
                imaged_core::ErrorKind::Internal,
                format!("{}: statvfs: {e}", root.display()),
            )
        })?;
        Ok(Some(imaged_core::store::FsSpace {
            capacity: st.blocks().saturating_mul(st.fragment_size()),
            available: st.blocks_available().saturating_mul(st.fragment_size()),
        }))
    }
}

impl CStorageStore {
    /// Manifests and configs from the images' big-data files, else a running load's blob.
    fn read_blob_impl(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let want = digest.to_string();
        let hex = digest.hex();
        let mut candidates: Vec<std::path::PathBuf> = Vec::new();
        {
            let snap = self.lock_snap();
            let mut stores = vec![(&snap.paths, &snap.images.records)];
            for r in &snap.ro {
                stores.push((&r.paths, &r.images.records));
            }
            for (paths, recs) in stores {
                for rec in recs.iter() {
                    if rec.id == hex && rec.big_data_names.contains(&want) {
                        candidates.push(paths.image_big_data(&rec.id, &want));
                    }
                    for (k, d) in &rec.big_data_digests {
                        if k.starts_with("manifest") && *d == want {
                            candidates.push(paths.image_big_data(&rec.id, k));
                        }
                    }
                }
            }
        }
        for p in candidates {
            match std::fs::read(&p) {
                Ok(b) if Digest::of(&b) == *digest => return Ok(Some(b)),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&format!("reading {}", p.display()), &e)),
            }
        }
        Ok(self.loads.read_blob(digest))
    }

    /// Σ `diff-size` of the layers plus Σ big-data sizes of the images (the primary
    /// store); inodes: one per record and big-data item (best effort: the layers' own
    /// files are not counted).
    fn fs_usage_impl(&self) -> Result<FsUsage> {
        let _ = self.refresh();
        let snap = self.lock_snap();
        let mut bytes: u64 = 0;
        let mut inodes: u64 = 4;
        for l in snap.layers.records.iter() {
            bytes = bytes.saturating_add(u64::try_from(l.diff_size).unwrap_or(0));
            inodes += 1;
        }
        for i in snap.images.records.iter() {
            for s in i.big_data_sizes.values() {
                bytes = bytes.saturating_add(u64::try_from(*s).unwrap_or(0));
            }
            inodes += 1 + i.big_data_names.len() as u64;
        }
        Ok(FsUsage {
            used_bytes: bytes,
            inodes_used: inodes,
        })
    }

    /// Unwritable on a read-only filesystem or with less than 1 MiB available.
    fn write_health_impl(&self) -> WriteHealth {
        const RESERVE: u64 = 1 << 20;
        match nix::sys::statvfs::statvfs(&self.opts.graph_root) {
            Ok(s) => {
                if s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
                    return WriteHealth::Unwritable(format!(
                        "{}: read-only filesystem",
                        self.opts.graph_root.display()
                    ));
                }
                let avail = s.blocks_available().saturating_mul(s.fragment_size());
                if avail < RESERVE {
                    WriteHealth::Unwritable(format!(
                        "{}: {avail} bytes available",
                        self.opts.graph_root.display()
                    ))
                } else {
                    WriteHealth::Writable
                }
            }
            Err(e) => {
                WriteHealth::Unwritable(format!("{}: statvfs: {e}", self.opts.graph_root.display()))
            }
        }
    }
}

impl Drop for CStorageStore {
    fn drop(&mut self) {
        self.watcher = None;
        self.reaper.wait_idle();
    }
}

/// The error for a lock that could not be taken.
pub(crate) fn lock_error(what: &str, e: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::ConcurrentModification,
        format!("locking {what}: {e}"),
    )
}
