//! 32 threads loading, removing, registering containers and reading at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::sync::Arc;

use common::{container, invariants, stage_image};
use imaged_core::catalog::Catalog;
use imaged_core::store::Store;
use imaged_core::{ChangeSet, ErrorKind};
use imaged_store_local::LocalStore;

const NAMES: [&str; 4] = [
    "example.com/n:0",
    "example.com/n:1",
    "example.com/n:2",
    "example.com/n:3",
];

/// The catalog's own invariants, recomputed from its images and containers.
fn assert_view_consistent(view: &Catalog) {
    let mut refs = std::collections::HashMap::new();
    for img in view.images() {
        for n in &img.names {
            assert_eq!(
                view.image_by_name(n).map(|i| i.id),
                Some(img.id),
                "name {n}"
            );
        }
        for b in img.blobs() {
            *refs.entry(b.digest).or_insert(0u32) += 1;
        }
    }
    assert_eq!(
        view.names().count(),
        view.images().map(|i| i.names.len()).sum::<usize>()
    );
    assert_eq!(view.blobs().count(), refs.len());
    for (d, e) in view.blobs() {
        assert_eq!(Some(&e.refs), refs.get(d), "refcount of {d}");
    }
    for c in view.containers() {
        assert!(
            view.image(&c.image_id).is_some(),
            "container {} dangles",
            c.id
        );
    }
}

/// A conflict from planning on a stale view is expected under concurrency; anything else
/// is a bug.
fn tolerate_conflict(r: imaged_core::Result<imaged_core::catalog::Applied>) {
    if let Err(e) = r {
        assert_eq!(e.kind, ErrorKind::ConcurrentModification, "{e}");
    }
}

fn load_one(store: &LocalStore, rng: &mut fastrand::Rng, seed: &str) {
    let mut st = store.stage().unwrap();
    let layers: Vec<u32> = (0..rng.u32(1..4)).map(|_| rng.u32(0..8)).collect();
    let name = NAMES[rng.usize(..NAMES.len())];
    let img = stage_image(&mut *st, seed, &layers, &[name]);
    let view = store.view();
    let mut change = ChangeSet::default();
    let mut holder_id = None;
    if let Some(holder) = view.image_by_name(name) {
        let mut stripped = (**holder).clone();
        stripped.names.retain(|n| n != name);
        holder_id = Some(holder.id);
        change.put_images.push(Arc::new(stripped));
    }
    change.put_images.push(Arc::new(img));
    match store.apply(&change) {
        // This plan is made without the writer lock: when another thread removed the
        // holder meanwhile and its blobs went, putting it back names blobs that are no
        // longer stored, which the store refuses as unstaged. (The engine plans under the
        // writer lock on the newest view, so its plans are never stale.)
        Err(e)
            if e.kind == ErrorKind::Internal
                && e.message.contains("never staged")
                && holder_id.is_some_and(|id| store.view().image(&id).is_none()) => {}
        r => tolerate_conflict(r),
    }
}

fn remove_one(store: &LocalStore, rng: &mut fastrand::Rng) {
    let view = store.view();
    let ids: Vec<_> = view.images().map(|i| i.id).collect();
    if ids.is_empty() {
        return;
    }
    let id = ids[rng.usize(..ids.len())];
    let change = ChangeSet {
        delete_images: vec![id],
        delete_containers: view
            .containers()
            .filter(|c| c.image_id == id)
            .map(|c| c.id.clone())
            .collect(),
        ..ChangeSet::default()
    };
    tolerate_conflict(store.apply(&change));
}

fn toggle_container(store: &LocalStore, rng: &mut fastrand::Rng) {
    let view = store.view();
    if let Some(c) = view.containers().next().filter(|_| rng.bool()) {
        let change = ChangeSet {
            delete_containers: vec![c.id.clone()],
            ..ChangeSet::default()
        };
        tolerate_conflict(store.apply(&change));
    } else if let Some(img) = view.images().next() {
        let change = ChangeSet {
            put_containers: vec![container(rng.u64(..), &img.id)],
            ..ChangeSet::default()
        };
        tolerate_conflict(store.apply(&change));
    }
}

#[test]
fn concurrent_writers_and_readers_keep_the_invariants() {
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..32u64 {
            let store = &store;
            s.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t);
                for i in 0..12 {
                    match t % 4 {
                        0 => {
                            let view = store.view();
                            assert_view_consistent(&view);
                        }
                        1 => load_one(store, &mut rng, &format!("{t}-{i}")),
                        2 => remove_one(store, &mut rng),
                        _ => toggle_container(store, &mut rng),
                    }
                }
            });
        }
    });
    assert_view_consistent(&store.view());
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let images = store.view().len();
    assert!(images > 0, "some loads must have succeeded");
    drop(store);
    // Quiescent: every staging ended, so no blob file is unreferenced, even before a sweep.
    let problems = invariants::all(dir.path());
    assert!(problems.is_empty(), "{problems:?}");
    let store = imaged_store_local::open(dir.path()).unwrap();
    assert_eq!(
        store.sweep_report(),
        imaged_store_local::SweepReport::default()
    );
    assert_eq!(store.view().len(), images);
}
