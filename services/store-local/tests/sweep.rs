//! The start-up sweep and the lifetime of staged blobs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::sync::Arc;

use common::{blob_files, files, invariants, layer_bytes, load, put, stage_image};
use imaged_core::store::Store;
use imaged_core::{ChangeSet, Digest, ErrorKind};

#[test]
fn start_up_sweep_removes_orphans_and_ingest_leftovers_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a;
    {
        let store = imaged_store_local::open(root).unwrap();
        a = load(&store, "a", &[1, 2], &["example.com/a:1"]);
    }
    let referenced = blob_files(root);
    assert_eq!(referenced.len(), 4);
    // A crash leaves no clean-shutdown marker (the close above wrote one).
    std::fs::remove_file(root.join("clean-shutdown")).unwrap();
    // A committed deletion whose blob deletion never ran, a stray name, a partial write.
    let orphan = Digest::of(b"orphan");
    std::fs::write(root.join("blobs/sha256").join(orphan.hex()), b"orphan").unwrap();
    std::fs::write(root.join("blobs/sha256/not-a-digest"), b"junk").unwrap();
    std::fs::write(root.join("ingest/0123456789abcdef.partial"), b"half a blo").unwrap();

    let store = imaged_store_local::open(root).unwrap();
    let report = store.sweep_report();
    assert_eq!(report.orphan_blobs, 2);
    assert_eq!(report.ingest_files, 1);
    assert_eq!(report.missing_blobs, 0);
    assert_eq!(
        blob_files(root),
        referenced,
        "referenced blobs must stay, orphans go"
    );
    assert!(files(&root.join("ingest")).is_empty());
    assert_eq!(
        store.view().image(&a.id).map(|i| i.names.clone()),
        Some(a.names.clone())
    );
    assert!(store.check(false).unwrap().problems.is_empty());
}

#[test]
fn a_sweep_of_a_large_blob_directory_gives_the_same_report() {
    // Past the size from which the sweep looks the files up on every core: 20k orphans,
    // a directory, the referenced blobs, one of them missing.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (a, b);
    {
        let store = imaged_store_local::open(root).unwrap();
        a = load(&store, "a", &[1, 2], &["example.com/a:1"]);
        b = load(&store, "b", &[3], &["example.com/b:1"]);
    }
    std::fs::remove_file(root.join("clean-shutdown")).unwrap();
    let blobs = root.join("blobs/sha256");
    std::fs::remove_file(blobs.join(b.layers[0].blob.digest.hex())).unwrap();
    let referenced = blob_files(root);
    for i in 0..20_000u32 {
        let orphan = Digest::of(&i.to_le_bytes());
        std::fs::write(blobs.join(orphan.hex()), b"").unwrap();
    }
    let odd = blobs.join(Digest::of(b"a directory").hex());
    std::fs::create_dir(&odd).unwrap();

    let store = imaged_store_local::open(root).unwrap();
    let report = store.sweep_report();
    assert_eq!(report.orphan_blobs, 20_000);
    assert_eq!(report.missing_blobs, 1);
    assert!(odd.is_dir(), "an entry that is not a file is left alone");
    std::fs::remove_dir(&odd).unwrap();
    assert_eq!(blob_files(root), referenced, "referenced blobs stay");
    assert!(store.view().image(&a.id).is_some());
}

#[test]
fn a_clean_close_spares_the_next_open_the_blob_sweep_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let marker = root.join("clean-shutdown");
    {
        let store = imaged_store_local::open(root).unwrap();
        load(&store, "a", &[1, 2], &["example.com/a:1"]);
        assert!(!marker.exists(), "only a close writes the marker");
    }
    assert!(marker.exists(), "a clean close leaves the marker");
    // A file the sweep would remove: the clean open does not list the blobs at all ...
    let stray = root.join("blobs/sha256/not-a-digest");
    std::fs::write(&stray, b"junk").unwrap();
    std::fs::write(root.join("ingest/leftover.partial"), b"half").unwrap();
    let store = imaged_store_local::open(root).unwrap();
    assert!(
        !marker.exists(),
        "the open consumes the marker before anything else"
    );
    assert_eq!(store.sweep_report().orphan_blobs, 0);
    assert_eq!(
        store.sweep_report().ingest_files,
        1,
        "ingest is always cleared"
    );
    assert!(stray.exists());
    // ... and an open without the marker (as after a crash at any point from here) does.
    std::fs::remove_file(&marker).ok();
    drop(store);
    std::fs::remove_file(&marker).unwrap();
    let store = imaged_store_local::open(root).unwrap();
    assert_eq!(store.sweep_report().orphan_blobs, 1);
    assert!(!stray.exists());
}

#[test]
fn a_failed_blob_deletion_keeps_the_next_open_sweeping() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    {
        let store = imaged_store_local::open(root).unwrap();
        let a = load(&store, "a", &[1], &[]);
        // A blob path that cannot be removed as a file (not even by root).
        let layer = store.blob_path(&a.layers[0].blob.digest);
        std::fs::remove_file(&layer).unwrap();
        std::fs::create_dir(&layer).unwrap();
        std::fs::write(layer.join("x"), b"x").unwrap();
        store
            .apply(&ChangeSet {
                delete_images: vec![a.id],
                ..ChangeSet::default()
            })
            .unwrap();
        store.wait_for_deletions();
    }
    assert!(
        !root.join("clean-shutdown").exists(),
        "a blob deletion failed: the close must not claim a clean store"
    );
    let stray = root.join("blobs/sha256/not-a-digest");
    std::fs::write(&stray, b"junk").unwrap();
    let store = imaged_store_local::open(root).unwrap();
    assert!(!stray.exists(), "the next open swept");
    assert_eq!(store.sweep_report().orphan_blobs, 1);
}

#[test]
fn start_up_counts_missing_blobs_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let a;
    {
        let store = imaged_store_local::open(dir.path()).unwrap();
        a = load(&store, "a", &[1], &[]);
    }
    std::fs::remove_file(
        dir.path()
            .join("blobs/sha256")
            .join(a.layers[0].blob.digest.hex()),
    )
    .unwrap();
    // The sweep counts them after a crash (no clean-shutdown marker); after a clean close
    // it is skipped, and `imaged fsck` finds blobs deleted behind the store's back.
    std::fs::remove_file(dir.path().join("clean-shutdown")).unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.sweep_report().missing_blobs, 1);
    assert_eq!(store.view().len(), 1, "open never drops images; fsck does");
}

#[test]
fn dropping_a_staging_deletes_its_unreferenced_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1], &[]);
    let before = blob_files(dir.path());
    {
        let mut st = store.stage().unwrap();
        // Layer 1 exists (referenced by a): put only holds it. The rest is new.
        let _ = stage_image(&mut *st, "aborted", &[1, 2], &[]);
        assert_eq!(blob_files(dir.path()).len(), before.len() + 3);
    }
    assert_eq!(
        blob_files(dir.path()),
        before,
        "an aborted load leaves nothing behind"
    );
    assert!(store.blob_path(&a.layers[0].blob.digest).is_file());
    assert!(files(&dir.path().join("ingest")).is_empty());
}

#[test]
fn staging_drop_never_deletes_a_blob_another_staging_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let l2 = Digest::of(&layer_bytes(2));
    let mut first = store.stage().unwrap();
    let mut second = store.stage().unwrap();
    put(&mut *first, &layer_bytes(2), "layer"); // writes it
    put(&mut *second, &layer_bytes(2), "layer"); // finds it: holds it
    let l3 = put(&mut *first, &layer_bytes(3), "layer").digest;
    assert!(second.hold(&l3).unwrap());
    assert!(!second.hold(&Digest::of(b"absent")).unwrap());
    drop(first);
    assert!(store.blob_path(&l2).is_file(), "held by the second staging");
    assert!(store.blob_path(&l3).is_file(), "held by the second staging");
    // The second staging's load commits an image using layer 2 only.
    let img = Arc::new(stage_image(&mut *second, "b", &[2], &[]));
    store
        .apply(&ChangeSet {
            put_images: vec![img],
            ..ChangeSet::default()
        })
        .unwrap();
    drop(second);
    assert!(store.blob_path(&l2).is_file(), "referenced by an image");
    assert!(
        !store.blob_path(&l3).exists(),
        "unreferenced once nobody holds it"
    );
    drop(store);
    assert!(
        invariants::all(dir.path()).is_empty(),
        "{:?}",
        invariants::all(dir.path())
    );
}

#[test]
fn a_blob_released_while_held_is_deleted_when_the_staging_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1, 2], &[]);
    let l2 = a.layers[1].blob.digest;
    let mut st = store.stage().unwrap();
    assert!(st.hold(&l2).unwrap());
    store
        .apply(&ChangeSet {
            delete_images: vec![a.id],
            ..ChangeSet::default()
        })
        .unwrap();
    store.wait_for_deletions();
    assert!(
        store.blob_path(&l2).is_file(),
        "held: kept after the release"
    );
    assert!(
        !store.blob_path(&a.layers[0].blob.digest).exists(),
        "not held: deleted"
    );
    drop(st);
    store.wait_for_deletions();
    assert!(
        !store.blob_path(&l2).exists(),
        "deleted when the lease ends"
    );
    assert!(blob_files(dir.path()).is_empty());
}

#[test]
fn put_verifies_the_expected_digest_and_keeps_nothing_on_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let mut st = store.stage().unwrap();
    let err = st
        .put(&mut &b"bytes"[..], Some(&Digest::of(b"other")))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArchive);
    assert!(blob_files(dir.path()).is_empty());
    assert!(files(&dir.path().join("ingest")).is_empty());
    // Without an expected digest: computed.
    let (d, size) = st.put(&mut &b"bytes"[..], None).unwrap();
    assert_eq!((d, size), (Digest::of(b"bytes"), 5));
    assert_eq!(store.read_blob(&d).unwrap().as_deref(), Some(&b"bytes"[..]));
    // A reader that fails mid-stream: an archive error, nothing kept.
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let err = st.put(&mut Failing(3), None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArchive);
    assert!(files(&dir.path().join("ingest")).is_empty());
    assert_eq!(blob_files(dir.path()), vec![d.hex()]);
}

#[test]
fn check_repairs_missing_and_corrupt_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1], &["example.com/a:1"]);
    let b = load(&store, "b", &[2], &["example.com/b:1"]);
    let c = load(&store, "c", &[3], &[]);
    let ca = common::container(1, &a.id);
    store
        .apply(&ChangeSet {
            put_containers: vec![ca],
            ..ChangeSet::default()
        })
        .unwrap();
    std::fs::remove_file(store.blob_path(&a.layers[0].blob.digest)).unwrap();
    let bl = store.blob_path(&b.layers[0].blob.digest);
    let mut bytes = std::fs::read(&bl).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&bl, bytes).unwrap();
    let orphan = Digest::of(b"orphan");
    std::fs::write(store.blob_path(&orphan), b"orphan").unwrap();

    let report = store.check(false).unwrap();
    assert_eq!(report.images_checked, 3);
    assert_eq!(report.blobs_checked, 9);
    // Missing, corrupt, and the unreferenced file (reported, not removed).
    assert_eq!(report.problems.len(), 3, "{:?}", report.problems);
    assert!(
        report.problems.iter().any(|p| p.contains(&orphan.hex())),
        "{:?}",
        report.problems
    );
    assert!(store.blob_path(&orphan).is_file());
    let mut broken = report.broken_images.clone();
    broken.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(broken, want);
    assert!(report.repaired_images.is_empty());
    assert_eq!(
        store.view().len(),
        3,
        "check without repair changes nothing"
    );

    let report = store.check(true).unwrap();
    assert_eq!(report.repaired_images.len(), 2);
    assert_eq!(report.orphans_removed, 1);
    let view = store.view();
    assert_eq!(view.len(), 1);
    assert!(view.image(&c.id).is_some());
    assert_eq!(
        view.containers().count(),
        0,
        "the container of a broken image goes with it"
    );
    assert!(store.check(false).unwrap().problems.is_empty());
    drop(store);
    assert!(
        invariants::all(dir.path()).is_empty(),
        "{:?}",
        invariants::all(dir.path())
    );
}
