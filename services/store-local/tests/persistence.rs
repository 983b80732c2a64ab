//! Persistence across reopen, atomicity of apply, release of blobs after apply.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::sync::Arc;

use common::{blob_files, container, invariants, load, stage_image};
use imaged_core::store::Store;
use imaged_core::{ChangeSet, ErrorKind};

#[test]
fn records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c);
    {
        let store = imaged_store_local::open(dir.path()).unwrap();
        let g0 = store.view().generation();
        a = load(
            &store,
            "a",
            &[1, 2],
            &["example.com/a:1", "example.com/a:2"],
        );
        b = load(&store, "b", &[1, 3], &["example.com/b:1"]);
        c = container(7, &b.id);
        store
            .apply(&ChangeSet {
                put_containers: vec![Arc::clone(&c)],
                ..ChangeSet::default()
            })
            .unwrap();
        assert_eq!(store.view().generation(), g0 + 3);
    }
    let store = imaged_store_local::open(dir.path()).unwrap();
    let view = store.view();
    assert_eq!(view.len(), 2);
    assert_eq!(view.image(&a.id).map(|i| &**i), Some(&*a));
    assert_eq!(view.image(&b.id).map(|i| &**i), Some(&*b));
    assert_eq!(
        view.image_by_name("example.com/a:2").map(|i| i.id),
        Some(a.id)
    );
    assert_eq!(view.container(&c.id).map(|x| &**x), Some(&*c));
    // Layer 1 is shared: one file, two references.
    let l1 = a.layers[0].blob.digest;
    assert_eq!(view.blob(&l1).map(|e| e.refs), Some(2));
    assert_eq!(
        blob_files(dir.path()).len(),
        7,
        "2×(config, manifest) + 3 distinct layers"
    );
    assert_eq!(store.read_blob(&l1).unwrap(), Some(common::layer_bytes(1)));
    assert!(store.check(false).unwrap().problems.is_empty());
    assert_eq!(
        store.sweep_report(),
        imaged_store_local::SweepReport::default()
    );
    drop(store);
    assert!(invariants::all(dir.path()).is_empty());
}

#[test]
fn released_blobs_are_deleted_after_apply_shared_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1, 2], &["example.com/a:1"]);
    let b = load(&store, "b", &[1, 3], &[]);
    let before = store.fs_usage().unwrap();
    let applied = store
        .apply(&ChangeSet {
            delete_images: vec![a.id],
            ..ChangeSet::default()
        })
        .unwrap();
    let released: Vec<_> = applied.released.iter().map(|(d, _)| *d).collect();
    // Deleted after the commit, by the background deleter.
    store.wait_for_deletions();
    let mut expected = vec![
        a.manifest.digest,
        a.config_blob.as_ref().unwrap().digest,
        a.layers[1].blob.digest,
    ];
    expected.sort();
    assert_eq!(released, expected);
    for d in &released {
        assert!(
            !store.blob_path(d).exists(),
            "released blob {d} still on disk"
        );
        assert_eq!(store.read_blob(d).unwrap(), None);
    }
    assert!(
        store.blob_path(&b.layers[0].blob.digest).exists(),
        "shared layer deleted"
    );
    let after = store.fs_usage().unwrap();
    let freed: u64 = applied.released.iter().map(|(_, s)| s).sum();
    assert_eq!(before.used_bytes - after.used_bytes, freed);
    assert_eq!(before.inodes_used - after.inodes_used, 3);
    drop(store);
    assert!(invariants::all(dir.path()).is_empty());
}

#[test]
fn a_failed_apply_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    let a = load(&store, "a", &[1], &["example.com/a:1"]);
    let gen_before = store.view().generation();
    let files_before = blob_files(dir.path());

    // A name held by another image: the catalog refuses, nothing is written.
    let mut st = store.stage().unwrap();
    let b = Arc::new(stage_image(&mut *st, "b", &[2], &["example.com/a:1"]));
    let err = store
        .apply(&ChangeSet {
            put_images: vec![Arc::clone(&b)],
            delete_images: vec![],
            put_containers: vec![container(1, &a.id)],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConcurrentModification);

    // A blob that was never staged: refused before the transaction.
    let mut ghost = (*b).clone();
    ghost.names.clear();
    ghost.layers[0].blob.digest = imaged_core::Digest::of(b"never staged");
    let err = store
        .apply(&ChangeSet {
            put_images: vec![Arc::new(ghost)],
            delete_images: vec![a.id],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("never staged"), "{err}");

    // A staged blob whose recorded size is wrong.
    let mut bad_size = (*b).clone();
    bad_size.names.clear();
    bad_size.layers[0].blob.size += 1;
    let err = store
        .apply(&ChangeSet {
            put_images: vec![Arc::new(bad_size)],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    drop(st);

    assert_eq!(store.view().generation(), gen_before);
    assert_eq!(store.view().len(), 1);
    assert!(
        store.view().image(&a.id).is_some(),
        "deletion of a was applied"
    );
    assert_eq!(store.view().containers().count(), 0);
    assert_eq!(
        blob_files(dir.path()),
        files_before,
        "b's blobs kept or a's deleted"
    );
    drop(store);
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.view().len(), 1);
    assert!(store.view().image(&a.id).is_some());
    assert_eq!(store.view().containers().count(), 0);
    assert_eq!(store.sweep_report().orphan_blobs, 0);
}

#[test]
fn second_open_of_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = imaged_store_local::open(dir.path()).unwrap();
    let err = imaged_store_local::open(dir.path()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("already open"), "{err}");
    // The refused open swept nothing: the first store's files are intact.
    assert!(dir.path().join("meta.redb").is_file());
}

#[test]
fn layout_and_modes_of_a_new_store() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = imaged_store_local::open(&root).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("blobs/sha256")), 0o750);
    assert_eq!(mode(&root.join("ingest")), 0o750);
    assert!(root.join("meta.redb").is_file());
    assert_eq!(store.info().kind, "local");
    assert_eq!(store.info().root, root);
    let a = load(&store, "a", &[1], &[]);
    let p = root
        .join("blobs/sha256")
        .join(a.layers[0].blob.digest.hex());
    assert_eq!(store.blob_path(&a.layers[0].blob.digest), p);
    assert!(p.is_file());
}

#[test]
fn a_large_deletion_commits_whole_or_not_at_all() {
    // 300 images (a large delete-only change is applied to the view while its records
    // are written): a change naming a missing image writes nothing; the change without
    // it deletes every image, durably, and their blobs.
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<imaged_core::Digest> = {
        let store = imaged_store_local::open(dir.path()).unwrap();
        let ids: Vec<_> = (0..300u32)
            .map(|i| load(&store, &format!("bulk{i}"), &[1, 1000 + i], &[]).id)
            .collect();
        let mut with_missing = ids.clone();
        with_missing.insert(150, imaged_core::Digest::from_bytes([9; 32]));
        let g = store.view().generation();
        let err = store
            .apply(&ChangeSet {
                delete_images: with_missing,
                ..ChangeSet::default()
            })
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConcurrentModification, "{err}");
        assert_eq!(store.view().generation(), g);
        assert_eq!(store.view().len(), 300);
        ids
    };
    {
        let store = imaged_store_local::open(dir.path()).unwrap();
        assert_eq!(
            store.view().len(),
            300,
            "nothing of the refused change was written"
        );
        let applied = store
            .apply(&ChangeSet {
                delete_images: ids,
                ..ChangeSet::default()
            })
            .unwrap();
        assert_eq!(applied.catalog.len(), 0);
        assert_eq!(applied.released.len(), 300 * 3 + 1);
        store.wait_for_deletions();
        assert!(blob_files(dir.path()).is_empty());
    }
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(store.view().len(), 0);
    drop(store);
    assert!(invariants::all(dir.path()).is_empty());
}
