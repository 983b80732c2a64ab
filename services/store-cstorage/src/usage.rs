//! imaged's usage data for the images of the store (SPEC §1 "Usage data", §9.1): when each
//! image was last used. containers-storage records no such thing, so imaged keeps it in
//! its own file, `<graph_root>/imaged/usage.json` (a JSON object: image ID → Unix
//! nanoseconds), never in podman's files; podman ignores the directory.
//!
//! An image's `last_used` is the newest of its record here, the time c/storage created the
//! image in the store (images.json `created`, which is also `added`) and the `created` time
//! of the newest container using it. A container's time is recorded here when a view sees
//! it, so that it outlives the container; when a view finds that an image which had
//! containers in the previous view has none now, the time of that view is recorded (the
//! moment imaged saw the container go). The engine's own uses (a load, a tag) arrive
//! through `apply`.
//!
//! The file is written atomically (temporary, `fdatasync`, rename) when a record changed,
//! after c/storage's locks are released, and then holds the images of the store only
//! (records of images that are gone are dropped). A missing file is an empty one; a file
//! that cannot be read or parsed is ignored with a warning and replaced at the next write;
//! a failed write is retried at the next change. Usage data never stops the store.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use foldhash::{HashMap, HashMapExt};

/// The file's name in imaged's state directory (`<graph_root>/imaged`).
pub(crate) const FILE: &str = "usage.json";

/// The last use of each image (by c/storage ID), as recorded by imaged.
#[derive(Debug)]
pub(crate) struct Usage {
    path: PathBuf,
    last_used: HashMap<String, i64>,
    /// Changed since the file was written.
    dirty: bool,
    /// The last write failed (warned once, not again until one succeeds).
    failing: bool,
    /// Never written (`imaged fsck` without `--repair` changes nothing).
    read_only: bool,
}

impl Usage {
    /// The records of the file at `path` (none when it is missing or unreadable).
    pub(crate) fn load(path: PathBuf) -> Self {
        let last_used = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<HashMap<String, i64>>(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "containers-storage: ignoring corrupt usage data");
                    HashMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "containers-storage: ignoring unreadable usage data");
                HashMap::new()
            }
        };
        Self {
            path,
            last_used,
            dirty: false,
            failing: false,
            read_only: false,
        }
    }

    /// Never writes the file from now on.
    pub(crate) fn set_read_only(&mut self) {
        self.read_only = true;
    }

    /// The recorded last use of image `id`.
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        self.last_used.get(id).copied()
    }

    /// Records a use of image `id` at `t` unless a later one is recorded; whether it was.
    pub(crate) fn stamp(&mut self, id: &str, t: i64) -> bool {
        match self.last_used.get_mut(id) {
            Some(old) if *old >= t => false,
            Some(old) => {
                *old = t;
                self.dirty = true;
                true
            }
            None => {
                self.last_used.insert(id.to_owned(), t);
                self.dirty = true;
                true
            }
        }
    }

    /// Drops the records of images `keep` rejects (images no longer in the store).
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.last_used.len();
        self.last_used.retain(|id, _| keep(id));
        if self.last_used.len() != before {
            self.dirty = true;
        }
    }

    /// Writes the file if a record changed since the last write. Never fails: an error is
    /// logged and the write is tried again at the next call.
    pub(crate) fn save(&mut self) {
        if !self.dirty || self.read_only {
            return;
        }
        match self.write() {
            Ok(()) => {
                self.dirty = false;
                self.failing = false;
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::warn!(path = %self.path.display(), error = %e, "containers-storage: writing usage data failed (tried again at the next change)");
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "containers-storage: writing usage data failed again");
            }
        }
    }

    fn write(&self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let sorted: BTreeMap<&str, i64> = self
            .last_used
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let data = serde_json::to_vec(&sorted).map_err(io::Error::other)?;
        crate::atomic::stage(&self.path, &data, 0o600)?.commit()
    }
}

/// `<state_dir>/usage.json`.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_move_forward_and_are_written_when_changed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("imaged").join(FILE);
        let mut u = Usage::load(p.clone());
        assert_eq!(u.get("a"), None);
        u.save();
        assert!(!p.exists(), "nothing recorded, nothing written");
        assert!(u.stamp("a", 10));
        assert!(!u.stamp("a", 5), "an older use changes nothing");
        assert!(u.stamp("b", 7));
        u.save();
        let written = std::fs::read_to_string(&p).unwrap();
        assert_eq!(written, r#"{"a":10,"b":7}"#);
        // Unchanged: not written again.
        std::fs::write(&p, "{}").unwrap();
        u.save();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{}");
        // A gone image's record is dropped at the next write.
        std::fs::write(&p, &written).unwrap();
        u.retain(|id| id != "b");
        u.save();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), r#"{"a":10}"#);
        assert_eq!(Usage::load(p).get("a"), Some(10));
    }

    #[test]
    fn a_corrupt_or_unwritable_file_never_fails() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        std::fs::write(&p, "{not json").unwrap();
        let mut u = Usage::load(p.clone());
        assert_eq!(u.get("a"), None);
        u.stamp("a", 1);
        u.save();
        assert_eq!(
            Usage::load(p).get("a"),
            Some(1),
            "replaced by the next write"
        );

        // A file where the file's directory should be: the write fails quietly and
        // the record stays for the next try.
        let blocked = d.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let mut u = Usage::load(blocked.join(FILE));
        u.stamp("a", 1);
        u.save();
        assert_eq!(u.get("a"), Some(1));
        assert!(u.dirty);
    }

    #[test]
    fn read_only_never_writes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE);
        let mut u = Usage::load(p.clone());
        u.set_read_only();
        u.stamp("a", 1);
        u.save();
        assert!(!p.exists());
    }
}
