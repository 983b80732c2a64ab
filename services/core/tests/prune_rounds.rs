//! Prune rounds: one round when nothing becomes newly dangling, and podman's store order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;

use imaged_core::graph::Tree;
use imaged_core::ops::{PruneOptions, Record};
use imaged_core::{Engine, MemoryStore, work};
use imaged_testkit::{ImageSpec, add_images};

#[test]
fn a_prune_that_leaves_nothing_newly_dangling_builds_no_second_tree() {
    // Named bases, each with a dangling child and a named child: pruning the dangling
    // children leaves every parent with a child, so one round is the whole prune.
    let mut specs = Vec::new();
    for f in 0..200 {
        let base = ImageSpec::base(&format!("base-{f}"), 1).name(&format!("base{f}:1"));
        specs.push(base.child("old", 2));
        specs.push(base.child("new", 3).name(&format!("app{f}:1")));
        specs.push(base);
    }
    let store = Arc::new(MemoryStore::new());
    add_images(&*store, &specs).unwrap();
    let e = Engine::new(store, Default::default());
    e.warm();
    work::take();
    let report = e.prune(&PruneOptions::default(), None).unwrap();
    let prune_work = work::take();
    assert_eq!(report.deleted_images.len(), 200);
    Tree::build(&e.view());
    let tree_work = work::take();
    assert!(
        prune_work < tree_work,
        "the prune did {prune_work} steps, a tree of what is left costs {tree_work}"
    );
}

#[test]
fn a_round_goes_in_store_order_not_hash_order() {
    // Dangling images added in this order (testkit: added = created), whatever their
    // IDs; podman processes a round in its store order too.
    let specs: Vec<ImageSpec> = (0..12)
        .map(|i| ImageSpec::base(&format!("order-{i}"), 100 - i))
        .rev()
        .collect();
    let store = Arc::new(MemoryStore::new());
    let ids = add_images(&*store, &specs).unwrap();
    let e = Engine::new(store, Default::default());
    let report = e.prune(&PruneOptions::default(), None).unwrap();
    let want: Vec<Record> = ids.into_iter().map(Record::Deleted).collect();
    assert_eq!(report.records, want);
}

/// A named base `b`; `p1` (one layer more) and `p2` (same layer, one history step more)
/// both qualify as parents of `c`, which has `p1`'s layers and one more step: `c` is
/// dangling, and deleting it leaves `p2` dangling, though `p2` is not the parent that
/// deleting `c` prunes along (`p1`, the better one).
fn two_parents(tag: &str) -> Vec<ImageSpec> {
    let b = ImageSpec::base(&format!("{tag}-b"), 1).name(&format!("{tag}base:1"));
    let p1 = b.child(&format!("{tag}-x"), 1);
    let p2 = ImageSpec {
        layers: b.layers.clone(),
        history: p1.history.clone(),
        ..p1.clone()
    };
    let c = p1.child("", 1);
    vec![b, p1, p2, c]
}

#[test]
fn a_parent_left_dangling_by_a_round_goes_in_the_next_on_the_index_and_on_a_tree() {
    for warm in [false, true] {
        let specs: Vec<ImageSpec> = (0..20)
            .flat_map(|f| two_parents(&format!("tp{f}")))
            .collect();
        let store = Arc::new(MemoryStore::new());
        let ids = add_images(&*store, &specs).unwrap();
        let e = Engine::new(store, Default::default());
        if warm {
            e.warm();
        }
        let report = e.prune(&PruneOptions::default(), None).unwrap();
        let mut deleted = report.deleted_images.clone();
        deleted.sort();
        let mut want: Vec<_> = ids.chunks(4).flat_map(|f| [f[1], f[2], f[3]]).collect();
        want.sort();
        assert_eq!(deleted, want, "warm tree: {warm}");
        let again = e.prune(&PruneOptions::default(), None).unwrap();
        assert!(again.deleted_images.is_empty(), "warm tree: {warm}");
    }
}

#[test]
fn a_dry_run_and_an_all_prune_with_a_dangling_filter_take_later_rounds_too() {
    let specs: Vec<ImageSpec> = (0..10)
        .flat_map(|f| two_parents(&format!("dr{f}")))
        .collect();
    let store = Arc::new(MemoryStore::new());
    add_images(&*store, &specs).unwrap();
    let e = Engine::new(store, Default::default());
    for opts in [
        PruneOptions {
            all: true,
            filters: vec!["dangling=true".into()],
            ..PruneOptions::default()
        },
        PruneOptions::default(),
    ] {
        let dry = e
            .prune(
                &PruneOptions {
                    dry_run: true,
                    ..opts.clone()
                },
                None,
            )
            .unwrap();
        let real = e.prune(&opts, None).unwrap();
        assert_eq!(dry.records, real.records);
        assert_eq!(dry.reclaimed_bytes, real.reclaimed_bytes);
        assert_eq!(real.deleted_images.len(), 30);
        assert!(e.prune(&opts, None).unwrap().deleted_images.is_empty());
        // Put them back for the next options.
        add_images(&**e.store(), &specs).unwrap();
    }
}
