//! Disk space: what the filesystem of the root has available, and the reserve file.
//!
//! redb needs free pages to commit even a deletion, so on a full disk a removal (the way
//! out of disk pressure) would fail like everything else. `<root>/reserve` is a
//! pre-allocated file of [`Options::reserve_bytes`](crate::Options) that the store
//! deletes to make room when a removal's commit fails for lack of space, and re-creates
//! when space is back (at the next write or health check).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use imaged_core::{Error, ErrorKind, Result};

use crate::fsutil::{io_err, remove_file, sync_dir};
use crate::layout::Layout;

/// Bytes available to unprivileged users on the filesystem holding `path` (`statvfs`
/// `f_bavail * f_frsize`: the conservative figure; root may write a little more).
pub(crate) fn available(path: &Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| io_err("statvfs", path, &io::Error::from(e)))?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

/// Capacity and available bytes of the filesystem holding `path` (GC thresholds).
pub(crate) fn fs_space(path: &Path) -> Result<imaged_core::store::FsSpace> {
    let st = nix::sys::statvfs::statvfs(path)
        .map_err(|e| io_err("statvfs", path, &io::Error::from(e)))?;
    Ok(imaged_core::store::FsSpace {
        capacity: st.blocks().saturating_mul(st.fragment_size()),
        available: st.blocks_available().saturating_mul(st.fragment_size()),
    })
}

/// Whether the reserve file is there with its full size.
pub(crate) fn reserve_present(layout: &Layout, bytes: u64) -> bool {
    bytes == 0 || fs::metadata(&layout.reserve).is_ok_and(|m| m.is_file() && m.len() >= bytes)
}

/// Creates the reserve file (allocated, not sparse) unless it is there: written as
/// `reserve.partial`, allocated with `posix_fallocate` (glibc writes zeros where the
/// filesystem cannot allocate), fsynced, renamed. Fails with `NoSpace` on a full disk,
/// leaving nothing behind.
pub(crate) fn ensure_reserve(layout: &Layout, bytes: u64) -> Result<()> {
    if reserve_present(layout, bytes) {
        return Ok(());
    }
    let tmp = &layout.reserve_partial;
    let made = (|| {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(|e| io_err("creating", tmp, &e))?;
        let len = i64::try_from(bytes)
            .map_err(|_| Error::internal(format!("reserve of {bytes} bytes is too large")))?;
        nix::fcntl::posix_fallocate(&f, 0, len)
            .map_err(|e| io_err("allocating", tmp, &io::Error::from(e)))?;
        f.sync_all().map_err(|e| io_err("syncing", tmp, &e))?;
        fs::rename(tmp, &layout.reserve).map_err(|e| io_err("renaming", tmp, &e))?;
        sync_dir(&layout.root)
    })();
    if made.is_err() {
        let _ = remove_file(tmp);
    }
    made
}

/// Deletes the reserve file; whether there was one to delete.
pub(crate) fn release_reserve(layout: &Layout) -> bool {
    let _ = remove_file(&layout.reserve_partial);
    match remove_file(&layout.reserve) {
        Ok(existed) => existed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot release the space reserve");
            false
        }
    }
}

/// `NoSpace` when less than `min_free` bytes are available under `root`.
pub(crate) fn check_available(root: &Path, min_free: u64) -> Result<()> {
    if min_free == 0 {
        return Ok(());
    }
    let free = available(root)?;
    if free < min_free {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "{free} bytes available on the filesystem of {}, below the store's \
                 min_free_bytes ({min_free}): remove or prune images to make room",
                root.display()
            ),
        ));
    }
    Ok(())
}
