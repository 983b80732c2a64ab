//! CRI RemoveImage on a store whose containers belong to its engine (containers-storage:
//! CRI-O, podman, buildah): any container using the image blocks the removal with
//! `ImageInUse`, as CRI-O's RemoveImage does, and nothing changes. On a store whose
//! containers imaged records itself, created containers go with the image (containerd).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;

use imaged_core::catalog::Applied;
use imaged_core::model::{Container, ContainerState};
use imaged_core::store::{CheckReport, FsUsage, Staging, StoreInfo};
use imaged_core::{Catalog, ChangeSet, Engine, ErrorKind, MemoryStore, Store};
use imaged_testkit::{ImageSpec, add_images};

/// A memory store that says its containers are its engine's.
struct EngineContainers(MemoryStore);

impl Store for EngineContainers {
    fn info(&self) -> StoreInfo {
        StoreInfo {
            containers_read_only: true,
            ..self.0.info()
        }
    }
    fn view(&self) -> Arc<Catalog> {
        self.0.view()
    }
    fn apply(&self, change: &ChangeSet) -> imaged_core::Result<Applied> {
        self.0.apply(change)
    }
    fn stage(&self) -> imaged_core::Result<Box<dyn Staging + '_>> {
        self.0.stage()
    }
    fn read_blob(&self, d: &imaged_core::digest::Digest) -> imaged_core::Result<Option<Vec<u8>>> {
        self.0.read_blob(d)
    }
    fn fs_usage(&self) -> imaged_core::Result<FsUsage> {
        self.0.fs_usage()
    }
    fn check(&self, repair: bool) -> imaged_core::Result<CheckReport> {
        self.0.check(repair)
    }
}

fn store_with_created_container(s: &dyn Store) {
    let ids = add_images(s, &[ImageSpec::base("cri", 1).name("localhost/cri:1")]).unwrap();
    s.apply(&ChangeSet {
        put_containers: vec![Arc::new(Container {
            id: "c".repeat(64),
            image_id: ids[0],
            state: ContainerState::Created,
            external: true,
            name: "k8s_pod".into(),
            created: 1,
        })],
        ..ChangeSet::default()
    })
    .unwrap();
}

#[test]
fn cri_remove_refuses_an_image_used_by_the_runtimes_container() {
    let store = Arc::new(EngineContainers(MemoryStore::new()));
    store_with_created_container(&*store);
    let before = store.view().generation();
    let engine = Engine::new(store.clone(), Default::default());
    let err = engine.cri_remove("localhost/cri:1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageInUse, "{err:?}");
    assert!(err.message.contains(&"c".repeat(64)), "{}", err.message);
    assert_eq!(store.view().generation(), before, "nothing may change");
    assert_eq!(store.view().len(), 1);
}

#[test]
fn cri_remove_takes_recorded_created_containers_along_elsewhere() {
    let store = Arc::new(MemoryStore::new());
    store_with_created_container(&*store);
    let engine = Engine::new(store.clone(), Default::default());
    let rep = engine.cri_remove("localhost/cri:1").unwrap();
    assert_eq!(rep.removed_containers.len(), 1);
    assert!(store.view().is_empty());
}
