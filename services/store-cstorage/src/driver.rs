//! Where c/storage keeps things (design doc §1) and how imaged removes layer, image and
//! container data: renamed into a trash directory outside every driver home
//! (`<graph_root>/imaged-trash/`), emptied after the locks are released (and at open).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::bigdata;
use crate::config::Driver;

/// The paths of one store (the primary one or an additional image store).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// The graph root.
    pub(crate) root: PathBuf,
    /// The run root (`None` for additional image stores).
    pub(crate) run: Option<PathBuf>,
    /// The driver.
    pub(crate) driver: Driver,
}

impl Paths {
    fn dir(&self, what: &str) -> PathBuf {
        self.root.join(format!("{}-{what}", self.driver.name()))
    }

    /// `<root>/<d>-images`.
    pub(crate) fn images_dir(&self) -> PathBuf {
        self.dir("images")
    }

    /// `<root>/<d>-layers`.
    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.dir("layers")
    }

    /// `<root>/<d>-containers`.
    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.dir("containers")
    }

    /// `<run>/<d>-layers` (mountpoints).
    pub(crate) fn run_layers_dir(&self) -> Option<PathBuf> {
        self.run
            .as_ref()
            .map(|r| r.join(format!("{}-layers", self.driver.name())))
    }

    /// The big-data file `key` of image `id`.
    pub(crate) fn image_big_data(&self, id: &str, key: &str) -> PathBuf {
        self.images_dir().join(id).join(bigdata::base_name(key))
    }

    /// `<root>/imaged-trash`.
    pub(crate) fn trash(&self) -> PathBuf {
        self.root.join("imaged-trash")
    }

    /// `<root>/imaged` (imaged's own state: the intent journal).
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join("imaged")
    }

    /// The driver's data directory of layer `id`.
    pub(crate) fn layer_data(&self, id: &str) -> PathBuf {
        match self.driver {
            Driver::Overlay => self.root.join("overlay").join(id),
            Driver::Vfs => self.root.join("vfs").join("dir").join(id),
        }
    }

    /// Moves `path` (if it exists) into the trash. Falls back to deleting it in place when
    /// it is on another filesystem. One `rename` in the common case (a prune moves
    /// thousands of directories): the trash directory is created only when missing.
    pub(crate) fn to_trash(&self, path: &Path) -> io::Result<()> {
        let trash = self.trash();
        let target = self.trash_entry(path);
        let mut created = false;
        loop {
            match fs::rename(path, &target) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Either `path` is gone (fine) or the trash does not exist yet.
                    if created || fs::symlink_metadata(path).is_err() {
                        return Ok(());
                    }
                    fs::create_dir_all(&trash)?;
                    created = true;
                }
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return remove_all(path),
                Err(e) => return Err(e),
            }
        }
    }

    /// A fresh name in the trash for `path`: its file name and a random suffix.
    pub(crate) fn trash_entry(&self, path: &Path) -> PathBuf {
        self.trash().join(format!(
            "{}-{:016x}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            fastrand::u64(..)
        ))
    }

    /// Removes the data of layer `id` as the driver's `Remove` does, then its tar-split
    /// and big-data directory (`deleteInternal`). Missing pieces are fine (a previous
    /// attempt may have removed them).
    pub(crate) fn remove_layer_data(&self, id: &str) -> io::Result<()> {
        let data = self.layer_data(id);
        if self.driver == Driver::Overlay {
            // The link first, so `overlay/l/` never points into a half-removed layer.
            // Moved, not unlinked: a rename frees no inode, so it is the cheaper of the two
            // for thousands of layers; the reaper deletes it with the rest.
            if let Ok(link) = fs::read_to_string(data.join("link")) {
                let link = link.trim();
                if !link.is_empty() && !link.contains('/') && link != ".." && link != "." {
                    self.to_trash(&self.root.join("overlay").join("l").join(link))?;
                }
            }
        }
        self.to_trash(&data)?;
        let layers = self.layers_dir();
        self.to_trash(&layers.join(format!("{id}.tar-split.gz")))?;
        self.to_trash(&layers.join(id))
    }

    /// Deletes everything in the trash.
    pub(crate) fn empty_trash(&self) -> io::Result<()> {
        self.empty_trash_pausing(|| {})
    }

    /// Deletes everything in the trash, calling `pause` before each entry (it may wait).
    pub(crate) fn empty_trash_pausing(&self, pause: impl Fn()) -> io::Result<()> {
        let trash = self.trash();
        let entries = match fs::read_dir(&trash) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for e in entries {
            pause();
            remove_all(&e?.path())?;
        }
        Ok(())
    }
}

/// `rm -rf path`; a missing path is fine.
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let r = if md.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn overlay_removal_drops_link_then_moves_data_to_trash() {
        let d = tempfile::tempdir().unwrap();
        let p = Paths {
            root: d.path().to_path_buf(),
            run: None,
            driver: Driver::Overlay,
        };
        let data = p.layer_data("abc");
        fs::create_dir_all(data.join("diff/x")).unwrap();
        fs::write(data.join("link"), "LINKNAME\n").unwrap();
        fs::create_dir_all(d.path().join("overlay/l")).unwrap();
        std::os::unix::fs::symlink("../abc/diff", d.path().join("overlay/l/LINKNAME")).unwrap();
        fs::create_dir_all(p.layers_dir()).unwrap();
        fs::write(p.layers_dir().join("abc.tar-split.gz"), b"x").unwrap();
        p.remove_layer_data("abc").unwrap();
        assert!(fs::symlink_metadata(d.path().join("overlay/l/LINKNAME")).is_err());
        assert!(!data.exists());
        assert!(!p.layers_dir().join("abc.tar-split.gz").exists());
        // The link, the directory and the tar-split.
        assert_eq!(fs::read_dir(p.trash()).unwrap().count(), 3);
        // Again: nothing left to remove is fine.
        p.remove_layer_data("abc").unwrap();
        p.empty_trash().unwrap();
        assert_eq!(fs::read_dir(p.trash()).unwrap().count(), 0);
    }
}
