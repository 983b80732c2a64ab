//! GC candidate choice (issue 15, SPEC §4.1) on hand-built stores: least recently used
//! first, shared blobs counted once, keep-N tags, pinned, minimum age, in use, parents
//! after their children, `max_unused`, the disk thresholds and the budget, and a run
//! (through the prune planner) that deletes exactly what its dry run reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use imaged_core::catalog::ChangeSet;
use imaged_core::engine::gc::GcCause;
use imaged_core::engine::pinned::Pinned;
use imaged_core::gc::{
    Blocker, FsSpace, GcPlan, GcPolicy, Measure, Threshold, Trigger, Why, choose,
};
use imaged_core::graph::index::LayerIndex;
use imaged_core::model::{ContainerState, ImageId};
use imaged_core::ops::RegisterContainer;
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use imaged_testkit::images::{ImageSpec, add_image};

const S: i64 = 1_000_000_000;
/// "Now" of the choice tests: long after every image was added.
const NOW: i64 = 10_000 * S;

/// Stores `spec` and gives it `last_used` (seconds).
fn put(s: &MemoryStore, spec: &ImageSpec, last_used: Option<i64>) -> ImageId {
    let id = add_image(s, spec).unwrap();
    if let Some(t) = last_used {
        let mut img = (**s.view().image(&id).unwrap()).clone();
        img.last_used = Some(t * S);
        s.apply(&ChangeSet {
            put_images: vec![Arc::new(img)],
            ..ChangeSet::default()
        })
        .unwrap();
    }
    id
}

/// A container record on `image`.
fn container(s: &MemoryStore, image: ImageId, state: ContainerState) {
    s.apply(&ChangeSet {
        put_containers: vec![Arc::new(imaged_core::model::Container {
            id: image.hex(),
            image_id: image,
            state,
            external: false,
            name: String::new(),
            created: 0,
        })],
        ..ChangeSet::default()
    })
    .unwrap();
}

fn plan(s: &MemoryStore, pinned: &[String], policy: &GcPolicy, m: &Measure) -> GcPlan {
    let view = s.view();
    let index = LayerIndex::build(&view);
    choose(&view, &index, &Pinned::new(pinned), policy, m, NOW)
}

fn budget(b: u64) -> GcPolicy {
    GcPolicy {
        budget_bytes: Some(b),
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    }
}

fn store_bytes(s: &MemoryStore) -> Measure {
    Measure {
        fs: None,
        store_bytes: s.fs_usage().unwrap().used_bytes,
    }
}

/// The bytes only `id` holds in `s`.
fn own_bytes(s: &MemoryStore, id: &ImageId) -> u64 {
    let view = s.view();
    view.image(id)
        .unwrap()
        .blobs()
        .filter_map(|b| view.blob(&b.digest).filter(|e| e.refs == 1).map(|e| e.size))
        .sum()
}

fn chosen(p: &GcPlan) -> Vec<ImageId> {
    p.chosen.iter().map(|c| c.id).collect()
}

#[test]
fn least_recently_used_first_until_the_budget_holds() {
    let s = MemoryStore::new();
    let a = put(
        &s,
        &ImageSpec::base("a", 1).name("localhost/a:1"),
        Some(300),
    );
    let b = put(
        &s,
        &ImageSpec::base("b", 2).name("localhost/b:1"),
        Some(100),
    );
    let c = put(
        &s,
        &ImageSpec::base("c", 3).name("localhost/c:1"),
        Some(200),
    );
    // Never used since it was added (at 4 s): the oldest use of all.
    let d = put(&s, &ImageSpec::base("d", 4).name("localhost/d:1"), None);
    let m = store_bytes(&s);
    // Free just over d's bytes: d, then b.
    let want = own_bytes(&s, &d) + 1;
    let p = plan(&s, &[], &budget(m.store_bytes - want), &m);
    assert_eq!(chosen(&p), [d, b]);
    assert!(p.chosen.iter().all(|c| c.why == Why::Space));
    assert_eq!(p.chosen[0].bytes, own_bytes(&s, &d));
    assert_eq!(p.chosen[1].bytes, own_bytes(&s, &b));
    assert_eq!(p.need_bytes, want);
    assert!(p.reaches_target() && p.blocked.is_empty());
    assert_eq!(
        p.triggers,
        [Trigger::Budget {
            store_bytes: m.store_bytes,
            budget: m.store_bytes - want
        }]
    );
    // Within the budget: nothing.
    let p = plan(&s, &[], &budget(m.store_bytes), &m);
    assert!(p.chosen.is_empty() && p.triggers.is_empty());
    // Everything asked: all four, least recently used first.
    let p = plan(&s, &[], &budget(0), &m);
    assert_eq!(chosen(&p), [d, b, c, a]);
    assert_eq!(p.freed_bytes, m.store_bytes);
}

#[test]
fn a_shared_blob_frees_bytes_only_with_its_last_image() {
    let s = MemoryStore::new();
    let base = ImageSpec::base("shared-base-layer-with-some-bytes", 1);
    let x = put(&s, &base.child("x", 2).name("localhost/x:1"), Some(10));
    let y = put(&s, &base.child("y", 3).name("localhost/y:1"), Some(20));
    let m = store_bytes(&s);
    let p = plan(&s, &[], &budget(0), &m);
    assert_eq!(chosen(&p), [x, y]);
    // x frees only what it alone holds; y then frees the rest, the shared layer with it.
    assert_eq!(p.chosen[0].bytes, own_bytes(&s, &x));
    assert_eq!(p.chosen[1].bytes, m.store_bytes - own_bytes(&s, &x));
    assert!(p.chosen[1].bytes > own_bytes(&s, &y));
    assert_eq!(p.freed_bytes, m.store_bytes);
}

#[test]
fn kept_tags_pinned_young_and_used_images_are_never_chosen() {
    let s = MemoryStore::new();
    let r1 = put(&s, &ImageSpec::base("r1", 1).name("localhost/r:1"), Some(1));
    let r2 = put(&s, &ImageSpec::base("r2", 2).name("localhost/r:2"), Some(2));
    let r3 = put(&s, &ImageSpec::base("r3", 3).name("localhost/r:3"), Some(3));
    let pin = put(
        &s,
        &ImageSpec::base("pin", 4).name("localhost/pin:1"),
        Some(4),
    );
    // Added 10 s before NOW (unnamed, so no tag keeps it).
    let young = put(&s, &ImageSpec::base("young", 9_990), None);
    let used = put(
        &s,
        &ImageSpec::base("used", 5).name("localhost/used:1"),
        Some(5),
    );
    container(&s, used, ContainerState::Stopped);
    let policy = GcPolicy {
        budget_bytes: Some(0),
        keep_tags: 2,
        min_age: Duration::from_secs(60),
        ..GcPolicy::default()
    };
    let m = store_bytes(&s);
    let p = plan(&s, &["localhost/pin*".to_owned()], &policy, &m);
    // Only the oldest tag of `r` may go.
    assert_eq!(chosen(&p), [r1]);
    assert!(!p.reaches_target());
    let reasons: Vec<(Blocker, u64)> = p.blocked.iter().map(|b| (b.reason, b.images)).collect();
    assert_eq!(
        reasons,
        [
            (Blocker::InUse, 1),
            (Blocker::Pinned, 1),
            (Blocker::Kept, 2),
            (Blocker::TooYoung, 1)
        ]
    );
    let kept_bytes = own_bytes(&s, &r2) + own_bytes(&s, &r3);
    assert_eq!(p.blocked[2].bytes, kept_bytes);
    let _ = (pin, young);
}

#[test]
fn a_parent_goes_after_its_children_and_only_then() {
    let s = MemoryStore::new();
    let base = ImageSpec::base("parent", 1);
    // The parent was used last long ago, its child recently.
    let p_id = put(&s, &base, Some(1));
    let c_id = put(
        &s,
        &base.child("child", 2).name("localhost/child:1"),
        Some(500),
    );
    let other = put(
        &s,
        &ImageSpec::base("other", 3).name("localhost/o:1"),
        Some(100),
    );
    let m = store_bytes(&s);
    let p = plan(&s, &[], &budget(0), &m);
    // `other` (100) before the child (500); the parent only once its child is chosen.
    assert_eq!(chosen(&p), [other, c_id, p_id]);
    // A child that cannot go holds its parent back.
    container(&s, c_id, ContainerState::Running);
    let p = plan(&s, &[], &budget(0), &m);
    assert_eq!(chosen(&p), [other]);
    let reasons: Vec<Blocker> = p.blocked.iter().map(|b| b.reason).collect();
    assert_eq!(reasons, [Blocker::InUse, Blocker::Parent]);
}

#[test]
fn max_unused_takes_old_images_whatever_the_space() {
    let s = MemoryStore::new();
    let old = put(
        &s,
        &ImageSpec::base("old", 1).name("localhost/old:1"),
        Some(1_000),
    );
    let _recent = put(
        &s,
        &ImageSpec::base("recent", 2).name("localhost/new:1"),
        Some(9_000),
    );
    let policy = GcPolicy {
        max_unused: Some(Duration::from_secs(5_000)),
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    };
    let p = plan(&s, &[], &policy, &store_bytes(&s));
    assert_eq!(chosen(&p), [old]);
    assert_eq!(p.chosen[0].why, Why::Unused(Duration::from_secs(9_000)));
    assert_eq!(p.need_bytes, 0);
}

#[test]
fn the_disk_thresholds_ask_from_high_down_to_low() {
    let s = MemoryStore::new();
    let a = put(&s, &ImageSpec::base("a", 1).name("localhost/a:1"), Some(1));
    let b = put(&s, &ImageSpec::base("b", 2).name("localhost/b:1"), Some(2));
    let policy = GcPolicy {
        high: Some(Threshold::Percent(85)),
        low: Some(Threshold::Percent(80)),
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    };
    let fs = |available| Measure {
        fs: Some(FsSpace {
            capacity: 100_000,
            available,
        }),
        store_bytes: 0,
    };
    // 84% used: below high, nothing.
    assert!(plan(&s, &[], &policy, &fs(16_000)).chosen.is_empty());
    // 90% used: free down to 80%, 10_000 bytes: more than both images hold.
    let p = plan(&s, &[], &policy, &fs(10_000));
    assert_eq!(p.need_bytes, 10_000);
    assert_eq!(
        p.triggers,
        [Trigger::Disk {
            used: 90_000,
            high: 85_000,
            low: 80_000
        }]
    );
    assert_eq!(chosen(&p), [a, b]);
    assert!(!p.reaches_target() && p.blocked.is_empty());
    // At high with low = high: nothing to free (kubelet frees `low - available`).
    let few = Measure {
        fs: Some(FsSpace {
            capacity: 100_000,
            available: 15_000,
        }),
        store_bytes: 0,
    };
    let policy = GcPolicy {
        low: Some(Threshold::Percent(85)),
        ..policy
    };
    let p = plan(&s, &[], &policy, &few);
    assert_eq!((p.need_bytes, chosen(&p)), (0, vec![]));
    // Low one point under: 1000 bytes, the least recently used image first.
    let policy = GcPolicy {
        low: Some(Threshold::Percent(84)),
        ..policy
    };
    let p = plan(&s, &[], &policy, &few);
    assert_eq!(p.need_bytes, 1_000);
    assert_eq!(p.chosen[0].id, a);
    assert!(p.reaches_target());
}

#[test]
fn a_run_deletes_what_its_dry_run_reported_through_the_prune_planner() {
    let store = Arc::new(MemoryStore::new());
    let base = ImageSpec::base("run-base", 1);
    let ids: Vec<ImageId> = (0..6)
        .map(|i| {
            let spec = base
                .child(&format!("run-{i}"), 2 + i)
                .name(&format!("localhost/run:{i}"));
            put(&store, &spec, Some(10 * (i + 1)))
        })
        .collect();
    let engine = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    engine
        .register_container(&RegisterContainer {
            id: Some("busy".into()),
            image: "localhost/run:5".into(),
            state: ContainerState::Running,
            external: false,
            name: String::new(),
        })
        .unwrap();
    let total = store.fs_usage().unwrap().used_bytes;
    engine.set_gc_policy(budget(total / 2)).unwrap();
    let dry = engine.run_gc(true, GcCause::Request, None).unwrap();
    assert_eq!(store.view().len(), 6, "a dry run changes nothing");
    let real = engine.run_gc(false, GcCause::Request, None).unwrap();
    assert_eq!(dry.plan, real.plan);
    assert_eq!(dry.prune.deleted_images, real.prune.deleted_images);
    assert_eq!(dry.prune.reclaimed_bytes, real.prune.reclaimed_bytes);
    // Least recently used first (run:5 is the newest use and busy anyway).
    assert_eq!(real.prune.deleted_images, chosen(&real.plan));
    assert_eq!(real.prune.deleted_images[0], ids[0]);
    // The bytes planned are the bytes released.
    assert_eq!(real.plan.freed_bytes, real.prune.reclaimed_bytes);
    assert!(store.fs_usage().unwrap().used_bytes <= total / 2);
    assert!(store.view().image(&ids[5]).is_some());
    let stats = engine.gc_stats();
    assert_eq!(
        (stats.runs, stats.images_deleted),
        (1, real.prune.deleted_images.len() as u64)
    );
}

#[test]
fn bytes_held_back_count_what_only_that_reason_holds() {
    let s = MemoryStore::new();
    let base = ImageSpec::base("held-shared-layer", 1);
    let u1 = put(&s, &base.child("u1", 2).name("localhost/u1:1"), Some(1));
    let u2 = put(&s, &base.child("u2", 3).name("localhost/u2:1"), Some(2));
    container(&s, u1, ContainerState::Running);
    container(&s, u2, ContainerState::Stopped);
    let m = store_bytes(&s);
    let p = plan(&s, &[], &budget(0), &m);
    assert!(p.chosen.is_empty());
    // The shared base layer is held by the two in-use images together: it counts.
    assert_eq!(p.blocked.len(), 1);
    assert_eq!(
        (p.blocked[0].reason, p.blocked[0].images),
        (Blocker::InUse, 2)
    );
    assert_eq!(p.blocked[0].bytes, m.store_bytes);
}
