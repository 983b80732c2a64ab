//! Events and the agreement of the two parent/child answers (the
//! per-request tree and the persistent index advanced by commits).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use imaged_core::ChangeSet;
use imaged_core::graph::LayerIndex;
use imaged_core::graph::Relations;
use imaged_core::graph::Tree;
use imaged_core::graph::index::IndexCache;
use imaged_core::ops::{EventKind, PruneOptions, RemoveOptions};
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use imaged_testkit::images::{ImageSpec, add_images};

/// Events seen: (kind, name, reclaimed bytes).
type Seen = Arc<Mutex<Vec<(EventKind, String, u64)>>>;

fn engine_with_events() -> (Arc<MemoryStore>, Engine, Seen) {
    let store = Arc::new(MemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let e = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default()).with_events(
        Arc::new(move |ev| {
            sink.lock()
                .unwrap()
                .push((ev.kind, ev.name.clone(), ev.reclaimed_bytes))
        }),
    );
    (store, e, seen)
}

#[test]
fn removals_and_prunes_publish_events_dry_runs_do_not() {
    let (s, e, seen) = engine_with_events();
    add_images(
        &*s,
        &[
            ImageSpec::base("a", 1).name("localhost/a:1"),
            ImageSpec::base("d", 2),
        ],
    )
    .unwrap();
    let opts = RemoveOptions {
        reference: "localhost/a:1".into(),
        ..Default::default()
    };
    e.remove(&RemoveOptions {
        dry_run: true,
        ..opts.clone()
    })
    .unwrap();
    assert!(seen.lock().unwrap().is_empty());
    e.remove(&opts).unwrap();
    let kinds: Vec<EventKind> = seen.lock().unwrap().iter().map(|x| x.0).collect();
    assert_eq!(kinds, vec![EventKind::Untag, EventKind::Delete]);
    seen.lock().unwrap().clear();
    let report = e.prune(&PruneOptions::default(), None).unwrap();
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        events.last().map(|x| (x.0, x.2)),
        Some((EventKind::Prune, report.reclaimed_bytes))
    );
    assert!(events.iter().any(|x| x.0 == EventKind::Delete));
}

/// `n` images, chains among them (some children add no layer), some named.
fn chained_specs(n: usize, seed: u64) -> Vec<ImageSpec> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut specs: Vec<ImageSpec> = Vec::new();
    for i in 0..n as i64 {
        let spec = if specs.is_empty() || rng.u8(..) < 80 {
            if rng.bool() {
                ImageSpec::base(&format!("b{i}"), i)
            } else {
                ImageSpec {
                    history: vec![format!("ENV {i}")],
                    created: i,
                    ..ImageSpec::default()
                }
            }
        } else {
            let parent = &specs[rng.usize(..specs.len())];
            let content = if rng.u8(..) < 60 {
                String::new()
            } else {
                format!("l{i}")
            };
            parent.child(&content, i)
        };
        let spec = if rng.bool() {
            spec.name(&format!("localhost/n{i}:latest"))
        } else {
            spec
        };
        specs.push(spec);
    }
    // Duplicate configs (same spec twice) collapse to one image; salt keeps them apart.
    specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.salt(&i.to_string()))
        .collect()
}

#[test]
fn the_index_follows_changes_made_outside_the_engine() {
    // A backend following another program's writes (containers-storage) publishes views
    // the engine did not commit: the cached index is advanced by their difference, and
    // must equal an index built from scratch.
    let store = Arc::new(MemoryStore::new());
    let specs = chained_specs(300, 11);
    add_images(&*store, &specs[..200]).unwrap();
    let cache = IndexCache::default();
    let first = store.view();
    assert_eq!(*cache.get(&first), LayerIndex::build(&first));
    // Small changes: a few images deleted, a few added (advanced), then many (rebuilt).
    for (delete, add) in [(5, 200..210), (0, 210..212), (3, 212..212), (80, 212..300)] {
        let view = store.view();
        let gone: Vec<_> = view.images().take(delete).map(|i| i.id).collect();
        store
            .apply(&ChangeSet {
                delete_images: gone,
                ..ChangeSet::default()
            })
            .unwrap();
        add_images(&*store, &specs[add]).unwrap();
        let now = store.view();
        assert_eq!(*cache.get(&now), LayerIndex::build(&now));
    }
}

#[test]
fn tree_and_index_agree_after_many_commits() {
    let store = Arc::new(MemoryStore::new());
    let specs = chained_specs(300, 7);
    add_images(&*store, &specs).unwrap();
    let engine = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    let check = |view: &imaged_core::Catalog| {
        let tree = Tree::build(view);
        let index = LayerIndex::build(view);
        for i in 0..tree.len() as u32 {
            let img = tree.image(i);
            let want_parent = tree.parent(i).map(|p| tree.image(p).id);
            assert_eq!(index.parent(view, img), want_parent, "parent of {}", img.id);
            assert_eq!(index.has_children(view, img), !tree.children(i).is_empty());
            let mut kids: Vec<_> = tree.children(i).iter().map(|&c| tree.image(c).id).collect();
            kids.sort();
            let mut got = index.children(view, img);
            got.sort();
            assert_eq!(got, kids);
        }
        tree
    };
    let tree = check(&store.view());
    assert!(
        (0..tree.len() as u32).any(|i| tree.parent(i).is_some()),
        "the catalog has chains"
    );
    // Remove named images one by one (the engine advances its index per commit), then
    // compare the engine's answers with a fresh tree.
    let names: Vec<String> = store
        .view()
        .names()
        .map(|(n, _)| n.clone())
        .take(40)
        .collect();
    for n in names {
        let _ = engine.remove(&RemoveOptions {
            reference: n,
            ..Default::default()
        });
        let view = store.view();
        let t = check(&view);
        for i in 0..t.len() as u32 {
            let d = engine.inspect(&t.image(i).id.to_string()).unwrap();
            assert_eq!(d.summary.parent_id, t.parent(i).map(|p| t.image(p).id));
            assert_eq!(d.summary.dangling, t.dangling(i));
            assert_eq!(d.summary.size, t.size(i));
            assert_eq!(d.summary.shared_size, t.shared_size(i));
        }
    }
}
