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
