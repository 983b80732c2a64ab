//! A prune whose round the store refuses as stale (another program changed the store
//! since the round's view, as podman does on containers-storage) plans the round again on
//! a fresh view: what the other program named survives, the rest is pruned, and the prune
//! succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use imaged_core::catalog::Applied;
use imaged_core::ops::PruneOptions;
use imaged_core::store::{CheckReport, FsUsage, Staging, StoreInfo};
use imaged_core::{Catalog, ChangeSet, Engine, Error, ErrorKind, MemoryStore, Store};
use imaged_testkit::{ImageSpec, add_images};

/// A memory store where "another program" names image `named` just before imaged's first
/// write, which the store then refuses as stale, as containers-storage does.
struct RacedStore {
    inner: MemoryStore,
    named: std::sync::Mutex<Option<imaged_core::model::ImageId>>,
    raced: AtomicBool,
}

impl Store for RacedStore {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn view(&self) -> Arc<Catalog> {
        self.inner.view()
    }
    fn apply(&self, change: &ChangeSet) -> imaged_core::Result<Applied> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let id = self.named.lock().unwrap().unwrap();
            let mut img = (**self.inner.view().image(&id).unwrap()).clone();
            img.names.push("localhost/raced:1".into());
            self.inner
                .apply(&ChangeSet {
                    put_images: vec![Arc::new(img)],
                    ..ChangeSet::default()
                })
                .unwrap();
            assert!(
                change.seen.iter().any(|s| s.id == id),
                "the plan sends what it saw"
            );
            return Err(Error::new(ErrorKind::ConcurrentModification, "stale plan"));
        }
        self.inner.apply(change)
    }
    fn stage(&self) -> imaged_core::Result<Box<dyn Staging + '_>> {
        self.inner.stage()
    }
    fn read_blob(&self, d: &imaged_core::digest::Digest) -> imaged_core::Result<Option<Vec<u8>>> {
        self.inner.read_blob(d)
    }
    fn fs_usage(&self) -> imaged_core::Result<FsUsage> {
        self.inner.fs_usage()
    }
    fn check(&self, repair: bool) -> imaged_core::Result<CheckReport> {
        self.inner.check(repair)
    }
}

#[test]
fn a_round_refused_as_stale_is_planned_again_on_a_fresh_view() {
    let store = Arc::new(RacedStore {
        inner: MemoryStore::new(),
        named: std::sync::Mutex::new(None),
        raced: AtomicBool::new(false),
    });
    let ids = add_images(
        &store.inner,
        &[
            ImageSpec::base("dangling-a", 1),
            ImageSpec::base("dangling-b", 2),
        ],
    )
    .unwrap();
    *store.named.lock().unwrap() = Some(ids[0]);
    let engine = Engine::new(store.clone(), Default::default());
    let report = engine.prune(&PruneOptions::default(), None).unwrap();
    assert_eq!(report.deleted_images, vec![ids[1]]);
    let view = store.view();
    assert_eq!(view.len(), 1);
    assert_eq!(
        view.image(&ids[0]).unwrap().names,
        vec!["localhost/raced:1"]
    );
}
