//! A really full disk (issue 11): the store runs on a 20 MiB tmpfs that a filler file
//! fills up. A write that needs space fails with `NO_SPACE` (blob staging and redb commit
//! alike), a removal still succeeds on the full disk, health says the store cannot write,
//! and once space is freed writes work again on the same open store (no restart).
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test fails and says why.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{invariants, load};
use imaged_core::model::ImageConfig;
use imaged_core::store::{Store, WriteHealth};
use imaged_core::{ChangeSet, ErrorKind};
use imaged_store_local::{LocalStore, Options};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (run it as root with CAP_SYS_ADMIN): mount \
             failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(self.dir.path()).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("umount {} failed: {out:?}", self.dir.path().display());
        }
    }
}

/// Writes `path` until the filesystem is full; returns how many bytes it holds.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Small writes until not even a page is left.
    while let Ok(n) = f.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
        written += n as u64;
    }
    f.sync_all().ok();
    written
}

fn big_label_update(store: &LocalStore, id: &imaged_core::Digest) -> ChangeSet {
    let mut img = (**store.view().image(id).unwrap()).clone();
    let mut config = ImageConfig::default();
    Arc::make_mut(&mut config.labels).insert("padding".into(), "x".repeat(1 << 20));
    img.config = Arc::new(config);
    ChangeSet {
        put_images: vec![Arc::new(img)],
        ..ChangeSet::default()
    }
}

fn unwritable(store: &LocalStore) -> bool {
    matches!(store.write_health(), WriteHealth::Unwritable(_))
}

#[test]
fn a_full_disk_refuses_writes_with_no_space_allows_removals_and_recovers() {
    let fs = Tmpfs::mount("20m");
    let root: PathBuf = fs.path().join("store");
    let options = Options {
        // The real ENOSPC is under test, not the reserve check.
        min_free_bytes: 0,
        ..Options::default()
    };
    {
        let store = LocalStore::open_with(&root, options).unwrap();
        assert_eq!(store.write_health(), WriteHealth::Writable);
        let a = load(&store, "a", &[1, 2, 3], &["example.com/a:1"]);
        let b = load(&store, "b", &[4], &["example.com/b:1"]);

        let filler = fs.path().join("filler");
        let filled = fill(&filler);
        assert!(filled > 0);

        // Staging a blob: NO_SPACE, nothing left in ingest/.
        let mut st = store.stage().unwrap();
        let blob = vec![1u8; 2 << 20];
        let err = st.put(&mut &blob[..], None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NoSpace, "{err}");
        drop(st);
        assert!(common::files(&root.join("ingest")).is_empty());

        // A commit that needs new pages: NO_SPACE, nothing changed.
        let generation = store.view().generation();
        let err = store.apply(&big_label_update(&store, &a.id)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NoSpace, "{err}");
        assert_eq!(store.view().generation(), generation);
        assert!(unwritable(&store), "health must say the store cannot write");

        // A removal on the full disk succeeds and frees its blobs.
        store
            .apply(&ChangeSet {
                delete_images: vec![a.id],
                ..ChangeSet::default()
            })
            .expect("a removal must work on a full disk");
        store.wait_for_deletions();
        assert!(store.view().image(&a.id).is_none());
        for l in &a.layers {
            assert!(!store.blob_path(&l.blob.digest).exists());
        }

        // Space is back: health recovers and writes work on the same open store.
        std::fs::remove_file(&filler).unwrap();
        assert_eq!(store.write_health(), WriteHealth::Writable);
        store
            .apply(&big_label_update(&store, &b.id))
            .expect("a write once space is back");
        let c = load(&store, "c", &[5, 6], &["example.com/c:1"]);
        assert!(store.view().image(&c.id).is_some());
        assert!(store.check(false).unwrap().problems.is_empty());
    }
    let problems = invariants::all(&root);
    assert!(problems.is_empty(), "{problems:?}");
    // The committed state survives a reopen.
    let store = LocalStore::open_with(&root, options).unwrap();
    assert_eq!(store.view().len(), 2);
}

#[test]
fn below_the_free_space_reserve_loads_are_refused_and_removals_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let a = {
        let store = imaged_store_local::open(&root).unwrap();
        load(&store, "a", &[1], &["example.com/a:1"])
    };
    let store = LocalStore::open_with(
        &root,
        Options {
            min_free_bytes: u64::MAX,
            ..Options::default()
        },
    )
    .unwrap();
    // Refused before the load starts: at `stage`.
    let Err(err) = store.stage() else {
        panic!("a load below the free-space reserve must be refused before it starts");
    };
    assert_eq!(err.kind, ErrorKind::NoSpace, "{err}");
    assert!(unwritable(&store));
    store
        .apply(&ChangeSet {
            delete_images: vec![a.id],
            ..ChangeSet::default()
        })
        .expect("removals are never refused for low space");
    assert!(store.view().is_empty());
}
