//! One-pass commits (issue 16 item 2): a removal's planner hands its working catalog to
//! the store, which publishes it instead of applying the change set a second time. This
//! checks, for removals of every kind (untag only, delete with dangling parents, forced
//! past a container, Docker's rules, batches), that the planned catalog is exactly what
//! applying the change to the starting view gives: images, names, containers, blob
//! reference counts, released blobs and the generation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use imaged_core::catalog::Applied;
use imaged_core::model::ContainerState;
use imaged_core::ops::{Policy, RegisterContainer, RemoveImagesOptions, RemoveOptions};
use imaged_core::store::{CheckReport, FsUsage, Staging, StoreInfo};
use imaged_core::{Catalog, ChangeSet, Digest, Engine, EngineConfig, MemoryStore, Result, Store};
use imaged_testkit::images::{ImageSpec, add_image};

/// A memory store that compares every planned result with a second application.
#[derive(Debug, Default)]
struct Checking {
    inner: MemoryStore,
    planned: AtomicUsize,
}

/// Everything a catalog holds, in a comparable form.
fn contents(c: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = c.images().map(|i| format!("image {i:?}")).collect();
    out.extend(c.names().map(|(n, id)| format!("name {n} {id}")));
    out.extend(c.containers().map(|x| format!("container {x:?}")));
    out.extend(c.blobs().map(|(d, e)| format!("blob {d} {e:?}")));
    out.push(format!("generation {}", c.generation()));
    out.sort();
    out
}

impl Store for Checking {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn view(&self) -> Arc<Catalog> {
        self.inner.view()
    }
    fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        self.inner.apply(change)
    }
    fn apply_planned(
        &self,
        change: &ChangeSet,
        base: &Catalog,
        planned: Applied,
    ) -> Result<Applied> {
        let again = base.apply(change).unwrap();
        assert_eq!(
            contents(&planned.catalog),
            contents(&again.catalog),
            "{change:?}"
        );
        assert_eq!(planned.released, again.released, "{change:?}");
        assert_eq!(planned.added, again.added, "{change:?}");
        self.planned.fetch_add(1, Ordering::Relaxed);
        self.inner.apply_planned(change, base, planned)
    }
    fn stage(&self) -> Result<Box<dyn Staging + '_>> {
        self.inner.stage()
    }
    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        self.inner.read_blob(digest)
    }
    fn fs_usage(&self) -> Result<FsUsage> {
        self.inner.fs_usage()
    }
    fn check(&self, repair: bool) -> Result<CheckReport> {
        self.inner.check(repair)
    }
}

fn rm(e: &Engine, r: &str, policy: Policy, force: bool) {
    e.remove(&RemoveOptions {
        reference: r.into(),
        policy,
        force,
        ..RemoveOptions::default()
    })
    .unwrap();
}

#[test]
fn the_planned_catalog_is_the_change_applied_once() {
    let store = Arc::new(Checking::default());
    let e = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    let base = ImageSpec::base("base", 10);
    add_image(&*store, &base).unwrap();
    let mid = base.child("mid", 20);
    add_image(&*store, &mid).unwrap();
    add_image(
        &*store,
        &mid.child("leaf", 30)
            .name("localhost/leaf:1")
            .name("localhost/leaf:2"),
    )
    .unwrap();
    add_image(&*store, &base.child("sib", 40).name("localhost/sib:1")).unwrap();
    add_image(
        &*store,
        &ImageSpec::base("other", 50).name("localhost/other:1"),
    )
    .unwrap();
    add_image(
        &*store,
        &ImageSpec::base("used", 60).name("localhost/used:1"),
    )
    .unwrap();
    add_image(&*store, &ImageSpec::base("d1", 70).name("localhost/d:1")).unwrap();
    add_image(
        &*store,
        &ImageSpec::base("d1", 70).salt("x").name("localhost/d:2"),
    )
    .unwrap();
    add_image(&*store, &ImageSpec::base("b1", 80).name("localhost/b:1")).unwrap();
    add_image(&*store, &ImageSpec::base("b2", 90).name("localhost/b:2")).unwrap();
    e.register_container(&RegisterContainer {
        id: Some("c1".into()),
        image: "localhost/used:1".into(),
        state: ContainerState::Stopped,
        external: false,
        name: "c1".into(),
    })
    .unwrap();

    // Untag only (another name is left).
    rm(&e, "localhost/leaf:1", Policy::Podman, false);
    // Delete, with the dangling parents pruned.
    rm(&e, "localhost/leaf:2", Policy::Podman, false);
    // Forced past a stopped container.
    rm(&e, "localhost/used:1", Policy::Podman, true);
    // Docker's rules.
    rm(&e, "localhost/d:1", Policy::Docker, false);
    rm(&e, "localhost/sib:1", Policy::Docker, false);
    // A batch.
    e.remove_images(&RemoveImagesOptions {
        references: vec![
            "localhost/b:1".into(),
            "localhost/b:2".into(),
            "localhost/other:1".into(),
        ],
        ..RemoveImagesOptions::default()
    })
    .unwrap();
    assert!(
        store.planned.load(Ordering::Relaxed) >= 8,
        "the planned path was not taken"
    );
    let names: Vec<String> = e.view().names().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, vec!["localhost/d:2".to_owned()]);
}
