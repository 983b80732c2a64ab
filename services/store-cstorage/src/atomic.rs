//! Atomic file replacement as c/storage's `ioutils.AtomicWriteFile` does it (design doc
//! §3.4): a temporary `.tmp-<base><digits>` in the same directory, written, `fdatasync`ed,
//! `chmod`ed, then renamed over the target. Readers see the old or the new file, never a
//! partial one; c/storage ignores leftover temporaries.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Replaces `path` with `data` (mode `perm`).
pub(crate) fn write_file(path: &Path, data: &[u8], perm: u32) -> io::Result<()> {
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
    let r = (|| {
        f.write_all(data)?;
        f.sync_data()?;
        drop(f);
        fs::set_permissions(&tmp, fs::Permissions::from_mode(perm))?;
        fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
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
        write_file(&p, b"[]", 0o600).unwrap();
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
}
