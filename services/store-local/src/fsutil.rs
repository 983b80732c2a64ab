//! Small filesystem helpers: errors with context, directory creation with modes, fsync of
//! directories.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use imaged_core::{Error, ErrorKind};

/// An error for a failed I/O `op` on `path`: `NoSpace` for a full disk or quota
/// (ENOSPC, EDQUOT), else `Internal`.
pub(crate) fn io_err(op: &str, path: &Path, err: &io::Error) -> Error {
    let e = Error::io(&format!("{op} {}", path.display()), err);
    if is_no_space(err) {
        Error::new(ErrorKind::NoSpace, e.message)
    } else {
        e
    }
}

/// Whether `err` says the filesystem (or the quota) is full.
pub(crate) fn is_no_space(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// An `Internal` error for a failed database `op`.
pub(crate) fn db_err(op: &str, path: &Path, err: impl std::fmt::Display) -> Error {
    Error::internal(format!("{op} {}: {err}", path.display()))
}

/// Creates `dir` (and missing parents) with `mode` unless it exists; an existing path that
/// is not a directory is an error. Existing directories keep their mode.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> imaged_core::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::internal(format!(
            "creating directory {}: exists and is not a directory",
            dir.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|e| io_err("creating directory", dir, &e)),
        Err(e) => Err(io_err("inspecting", dir, &e)),
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk, and
/// returns without waiting (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): a later `fsync`
/// then waits for what is still in flight, not for the whole file. Advisory: the `fsync`
/// that follows reports any I/O error, so this one is ignored.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(offset),
            libc::off64_t::try_from(len),
        ) else {
            return;
        };
        #[allow(unsafe_code)]
        // SAFETY: `sync_file_range` takes a file descriptor, which `file` keeps open for the
        // call, and plain integers; it reads or writes no memory of this process.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub(crate) fn sync_dir(dir: &Path) -> imaged_core::Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing directory", dir, &e))
}

/// Removes a file; a missing file is not an error. Returns whether it existed.
pub(crate) fn remove_file(path: &Path) -> imaged_core::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("removing", path, &e)),
    }
}
