#![allow(clippy::unwrap_used)]
use imaged_core::ops::{ListOptions, Order, PruneOptions};
use imaged_core::testkit::{ImageSpec, add_images};
use imaged_core::tree::Tree;
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore = "timing only"]
fn bench() {
    let n = 100_000;
    let store = Arc::new(MemoryStore::new());
    let mut specs = Vec::new();
    for i in 0..n {
        let b = ImageSpec::base(&format!("l{i}"), i as i64);
        specs.push(if i % 10 == 0 {
            b
        } else {
            b.name(&format!("localhost/x{i}:latest"))
        });
    }
    for c in specs.chunks(10000) {
        add_images(&*store, c).unwrap();
    }
    let e = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    let v = store.view();
    for _ in 0..5 {
        let t = Instant::now();
        let tree = Tree::build(&v);
        eprintln!("build {:?}", t.elapsed());
        drop(tree);
    }
    let tree = Tree::build(&v);
    let t = Instant::now();
    let pinned = imaged_core::pinned::Pinned::new(&[]);
    let mut n = 0usize;
    for i in 0..tree.len() as u32 {
        n += imaged_core::list_summary_for_bench(&tree, i, &pinned);
    }
    eprintln!("summaries {:?} {n}", t.elapsed());
    let t = Instant::now();
    tree.sorted(Order::Created);
    eprintln!("sort {:?}", t.elapsed());
    for ps in [1000, 10000] {
        let t = Instant::now();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let p = e
                .list(&ListOptions {
                    page_token: token,
                    page_size: ps,
                    ..Default::default()
                })
                .unwrap();
            pages += 1;
            token = p.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        eprintln!("list all pages ps={ps} {pages} {:?}", t.elapsed());
    }
    let t = Instant::now();
    let r = e.prune(&PruneOptions::default(), None).unwrap();
    eprintln!("prune {} {:?}", r.deleted_images.len(), t.elapsed());
    let t = Instant::now();
    let r = e
        .remove(&imaged_core::ops::RemoveOptions {
            reference: "localhost/x5:latest".into(),
            ..Default::default()
        })
        .unwrap();
    eprintln!("remove {:?} {:?}", r.records.len(), t.elapsed());
    for k in 6..30 {
        if k % 10 == 0 {
            continue;
        }
        let t = Instant::now();
        let r = e
            .remove(&imaged_core::ops::RemoveOptions {
                reference: format!("localhost/x{k}:latest"),
                ..Default::default()
            })
            .unwrap();
        eprintln!("remove {:?} {:?}", r.records.len(), t.elapsed());
    }
}
