//! Atomic file replacement as c/storage's `ioutils.AtomicWriteFile` does it (design doc
//! §3.4): a temporary `.tmp-<base><digits>` in the same directory, written, `fdatasync`ed,
//! `chmod`ed, then renamed over the target. Readers see the old or the new file, never a
//! partial one; c/storage ignores leftover temporaries. An apply stages all its files
//! first ([`stage`]) and renames them afterwards, in its protocol's order.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A replacement written and synced to its temporary, not yet renamed over its target;
/// dropped uncommitted, the temporary is removed.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the temporary over the target, whose old contents are first linked as
    /// `old` (in a directory on the same filesystem that is emptied later, created when
    /// missing), so that freeing a file of megabytes is not part of the rename. Without
    /// the link (another filesystem) the rename frees it.
    pub(crate) fn commit_keeping_old(self, old: &Path) -> io::Result<()> {
        if let Err(e) = fs::hard_link(&self.target, old)
            && e.kind() == io::ErrorKind::NotFound
            && old.parent().is_some_and(|d| fs::create_dir_all(d).is_ok())
        {
            let _ = fs::hard_link(&self.target, old);
        }
        self.commit()
    }

    /// Renames the temporary over the target.
    pub(crate) fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Whether `name` is one of the temporaries [`stage`] (or c/storage) makes for a file
/// named `base`: `.tmp-<base><digits>`.
pub(crate) fn is_temporary(name: &str, base: &str) -> bool {
    name.strip_prefix(".tmp-")
        .and_then(|n| n.strip_prefix(base))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Writes `data` (mode `perm`) to a temporary next to `path` and syncs it. Several files
/// staged at once share the filesystem's journal commits; renaming them afterwards, in a
/// chosen order, makes them visible (and durable: a journaling filesystem commits the
/// renames in that order) one by one.
pub(crate) fn stage(path: &Path, data: &[u8], perm: u32) -> io::Result<Staged> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let base = path
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, mut f) = loop {
        let tmp: PathBuf = dir.join(format!(".tmp-{base}{}", fastrand::u32(..)));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    };
    // From here on a failure removes the temporary (the drop).
    let staged = Staged {
        tmp,
        target: path.to_path_buf(),
        committed: false,
    };
    f.write_all(data)?;
    f.sync_data()?;
    drop(f);
    fs::set_permissions(&staged.tmp, fs::Permissions::from_mode(perm))?;
    Ok(staged)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_mode_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("images.json");
        fs::write(&p, b"old").unwrap();
        stage(&p, b"[]", 0o600).unwrap().commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"[]");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn temporaries_are_recognised_by_name() {
        let d = tempfile::tempdir().unwrap();
        let staged = stage(&d.path().join("images.json"), b"[]", 0o600).unwrap();
        let name = staged.tmp.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(is_temporary(&name, "images.json"), "{name}");
        assert!(!is_temporary(&name, "layers.json"));
        assert!(!is_temporary(".tmp-images.json", "images.json"));
        assert!(!is_temporary(".tmp-images.json-notes", "images.json"));
        assert!(!is_temporary("images.json", "images.json"));
    }

    #[test]
    fn a_staged_file_shows_only_when_committed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("layers.json");
        fs::write(&p, b"old").unwrap();
        let count = || fs::read_dir(d.path()).unwrap().count();
        let a = stage(&p, b"[1]", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(count(), 2);
        drop(a);
        assert_eq!(count(), 1, "an uncommitted temporary is removed");
        stage(&p, b"[2]", 0o600).unwrap().commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"[2]");
        assert_eq!(count(), 1);
        // The old contents kept aside (the directory created when missing).
        let keep = d.path().join("trash");
        for n in 3..5 {
            let data = format!("[{n}]");
            stage(&p, data.as_bytes(), 0o600)
                .unwrap()
                .commit_keeping_old(&keep.join(format!("old{n}")))
                .unwrap();
            assert_eq!(fs::read(&p).unwrap(), data.as_bytes());
        }
        let mut kept: Vec<Vec<u8>> = fs::read_dir(&keep)
            .unwrap()
            .map(|e| fs::read(e.unwrap().path()).unwrap())
            .collect();
        kept.sort();
        assert_eq!(kept, [b"[2]".to_vec(), b"[3]".to_vec()]);
    }
}
