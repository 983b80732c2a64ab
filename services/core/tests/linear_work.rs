//! Listing every page and pruning grow linearly with the number of images: the work
//! counters (index entries built, images examined, elements sorted — not time) of a
//! 100k-image catalog stay within ~12× those of a 10k-image catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use imaged_core::ops::{ListOptions, PruneOptions};
use imaged_core::{Engine, EngineConfig, MemoryStore, Store, work};
use imaged_testkit::images::{ImageSpec, add_images};

/// `n` images: per 7, 2 named leaves, 2 dangling images and a chain of 3 (two
/// intermediate images under a named top).
fn synthetic(n: usize) -> Engine {
    let store = Arc::new(MemoryStore::new());
    let mut specs = Vec::with_capacity(n);
    let mut i = 0usize;
    while specs.len() < n {
        let base = ImageSpec::base(&format!("layer-{i}"), i as i64);
        match i % 5 {
            0 | 1 => specs.push(base.name(&format!("localhost/img{i}:latest"))),
            2 | 3 => specs.push(base),
            _ => {
                let mid = base.child(&format!("mid-{i}"), i as i64 + 1);
                let top = mid.child(&format!("top-{i}"), i as i64 + 2);
                specs.push(base);
                specs.push(mid);
                specs.push(top.name(&format!("localhost/top{i}:latest")));
            }
        }
        i += 1;
    }
    specs.truncate(n);
    for chunk in specs.chunks(5000) {
        add_images(&*store, chunk).unwrap();
    }
    Engine::new(store as Arc<dyn Store>, EngineConfig::default())
}

/// Work of listing every page (default page size, and one filter), then of a prune.
fn measure(n: usize) -> (u64, u64) {
    let e = synthetic(n);
    work::take();
    let t = Instant::now();
    let mut pages = 0;
    for filters in [vec![], vec!["dangling=false".to_string()]] {
        let mut token = String::new();
        loop {
            let page = e
                .list(&ListOptions {
                    filters: filters.clone(),
                    page_token: token,
                    ..ListOptions::default()
                })
                .unwrap();
            pages += 1;
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
    }
    let list_work = work::take();
    let list_time = t.elapsed();
    let t = Instant::now();
    let report = e.prune(&PruneOptions::default(), None).unwrap();
    let prune_work = work::take();
    eprintln!(
        "n={n}: {pages} pages, list work {list_work} in {list_time:?}; prune of {} images, \
         work {prune_work} in {:?}",
        report.deleted_images.len(),
        t.elapsed()
    );
    assert!(report.deleted_images.len() >= n / 4);
    (list_work, prune_work)
}

#[test]
fn list_and_prune_work_grow_linearly() {
    let (l10, p10) = measure(10_000);
    let (l100, p100) = measure(100_000);
    let (rl, rp) = (l100 as f64 / l10 as f64, p100 as f64 / p10 as f64);
    eprintln!("ratios: list {rl:.2}, prune {rp:.2}");
    assert!(rl > 5.0 && rl < 12.0, "list work ratio {rl}");
    assert!(rp > 5.0 && rp < 12.0, "prune work ratio {rp}");
}
