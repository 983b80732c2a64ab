//! The on-disk layout under the store root:
//!
//! ```text
//! <root>/meta.redb            metadata (redb): images, containers, meta
//! <root>/blobs/sha256/<hex>   blobs, content-addressed (OCI image layout style)
//! <root>/ingest/<random>      blobs being written (temporary)
//! <root>/clean-shutdown       present only between a clean close and the next open
//! <root>/reserve              pre-allocated space released for removals on a full disk
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use imaged_core::{Digest, Result};

use crate::fsutil::{ensure_dir, io_err, remove_file, sync_dir};

/// Mode of the store root when imaged creates it.
const ROOT_MODE: u32 = 0o700;
/// Mode of the directories under the root.
const DIR_MODE: u32 = 0o750;

/// Paths of one store.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
    pub(crate) meta: PathBuf,
    pub(crate) blobs: PathBuf,
    pub(crate) ingest: PathBuf,
    pub(crate) clean: PathBuf,
    pub(crate) reserve: PathBuf,
    pub(crate) reserve_partial: PathBuf,
}

impl Layout {
    /// The layout under `root` (nothing is created).
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            meta: root.join("meta.redb"),
            blobs: root.join("blobs").join("sha256"),
            ingest: root.join("ingest"),
            clean: root.join("clean-shutdown"),
            reserve: root.join("reserve"),
            reserve_partial: root.join("reserve.partial"),
        }
    }

    /// Creates the missing directories.
    pub(crate) fn create(&self) -> Result<()> {
        ensure_dir(&self.root, ROOT_MODE)?;
        ensure_dir(&self.root.join("blobs"), DIR_MODE)?;
        ensure_dir(&self.blobs, DIR_MODE)?;
        ensure_dir(&self.ingest, DIR_MODE)
    }

    /// Consumes the clean-shutdown marker: whether it was there. It is removed durably
    /// before anything else happens, so a crash after this open leaves none.
    pub(crate) fn take_clean_marker(&self) -> Result<bool> {
        match fs::remove_file(&self.clean) {
            Ok(()) => {
                sync_dir(&self.root)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("removing", &self.clean, &e)),
        }
    }

    /// Writes the clean-shutdown marker durably (file, then directory).
    pub(crate) fn write_clean_marker(&self) -> Result<()> {
        let mut f =
            fs::File::create(&self.clean).map_err(|e| io_err("creating", &self.clean, &e))?;
        io::Write::write_all(&mut f, b"imaged closed this store cleanly\n")
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("writing", &self.clean, &e))?;
        sync_dir(&self.root)
    }

    /// Where the blob `digest` lives.
    pub(crate) fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Every entry of the blob directory: the digest when the name is one, the path and
    /// the entry's type (from the directory listing: no `stat` per file).
    pub(crate) fn blob_files(&self) -> Result<Vec<(Option<Digest>, PathBuf, fs::FileType)>> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.blobs).map_err(|e| io_err("listing", &self.blobs, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("listing", &self.blobs, &e))?;
            let path = entry.path();
            let kind = match entry.file_type() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("inspecting", &path, &e)),
            };
            let digest = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::from_hex(n).ok());
            out.push((digest, path, kind));
        }
        Ok(out)
    }

    /// The files of `ingest/` (not directories).
    pub(crate) fn ingest_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| io_err("listing", &self.ingest, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("listing", &self.ingest, &e))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(entry.path());
            }
        }
        Ok(out)
    }

    /// Removes every file of `ingest/` (leftovers of interrupted writes). Only safe while no
    /// staging runs (at open). Returns how many were removed.
    pub(crate) fn sweep_ingest(&self) -> Result<usize> {
        let mut removed = 0;
        let entries =
            fs::read_dir(&self.ingest).map_err(|e| io_err("listing", &self.ingest, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_err("listing", &self.ingest, &e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                tracing::warn!(path = %path.display(), "unexpected directory in ingest/, left alone");
                continue;
            }
            if remove_file(&path)? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}
