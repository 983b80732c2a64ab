//! GC by policy at scale (issue 15), in-process over the core engine and a memory store
//! (the choice and the planner are the core's; a store only adds its commit, which a
//! prune of the same images pays too):
//!
//! * choosing the candidates in a store of `n` images (median of 5): `gc::choose` on the
//!   view and its tree (built once, as the engine caches it), and a whole dry run
//!   (`Engine::run_gc(dry_run)`);
//! * a run that frees `deleted` images (the least recently used, by `max_unused`) against
//!   a prune of exactly those images (`prune -a --filter unused-since=<the same time>`)
//!   on an identical store.
//!
//! Images: `n` leaves on 100 shared base layers, 1% of them with a container, `last_used`
//! a permutation of the images so that least recently used is not load order.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use imaged_core::catalog::ChangeSet;
use imaged_core::engine::gc::GcCause;
use imaged_core::engine::pinned::Pinned;
use imaged_core::gc::{GcPolicy, Measure, choose};
use imaged_core::graph::Tree;
use imaged_core::model::{Container, ContainerState};
use imaged_core::ops::PruneOptions;
use imaged_core::store::Store;
use imaged_core::{Engine, EngineConfig, MemoryStore};
use imaged_testkit::images::{ImageSpec, add_images};

const S: i64 = 1_000_000_000;
/// The stores' "now" reference: images were last used between T0 and T0 + n seconds.
const T0: i64 = 1_000_000 * S;

/// A memory store of `n` images as described in the module docs; its engine.
fn store(n: usize) -> Result<(Arc<MemoryStore>, Engine)> {
    let s = Arc::new(MemoryStore::new());
    let bases: Vec<ImageSpec> = (0..100)
        .map(|b| ImageSpec::base(&format!("gc-base-{b}"), 1))
        .collect();
    let mut rng = fastrand::Rng::with_seed(15);
    let mut order: Vec<i64> = (0..n as i64).collect();
    rng.shuffle(&mut order);
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let specs: Vec<ImageSpec> = chunk
            .iter()
            .map(|&i| {
                bases[i % bases.len()]
                    .child(&format!("gc-{i}"), 2)
                    .name(&format!("localhost/gc/r{}:t{i}", i % 1000))
            })
            .collect();
        let ids = add_images(s.as_ref(), &specs)?;
        let view = s.view();
        let mut change = ChangeSet::default();
        for (&i, id) in chunk.iter().zip(&ids) {
            let Some(img) = view.image(id) else {
                bail!("image {i} missing after its load");
            };
            let mut img = (**img).clone();
            img.last_used = Some(T0 + order[i] * S);
            change.put_images.push(Arc::new(img));
            if i % 100 == 0 {
                change.put_containers.push(Arc::new(Container {
                    id: format!("{i:064x}"),
                    image_id: *id,
                    state: ContainerState::Running,
                    external: false,
                    name: String::new(),
                    created: T0,
                }));
            }
        }
        s.apply(&change)?;
    }
    let e = Engine::new(s.clone() as Arc<dyn Store>, EngineConfig::default());
    Ok((s, e))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs the GC benchmark; the markdown section for BENCHMARKS.md.
pub(crate) fn run(n: usize, deleted: usize) -> Result<String> {
    eprintln!("gc: building two memory stores of {n} images");
    let (a, engine_a) = store(n)?;
    let (_b, engine_b) = store(n)?;
    let now = imaged_core::time::now();
    // The `deleted` least recently used images were last used before `cut` (half a
    // second between two images' last uses, so that the run's own clock, a little later,
    // selects the same images).
    let cut = T0 + i64::try_from(deleted).unwrap_or(i64::MAX) * S - S / 2;
    let max_unused = |now: i64| Duration::from_nanos(u64::try_from(now - cut).unwrap_or(0));
    let policy = GcPolicy {
        max_unused: Some(max_unused(now)),
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    };
    let view = a.view();
    let t = Instant::now();
    // The engine chooses on the view's tree, as `prune -a` plans (cached per catalog
    // version; the daemon builds it at start).
    let tree = Tree::build(&view);
    let index_time = t.elapsed();
    let pinned = Pinned::new(&[]);
    let measure = Measure {
        fs: None,
        store_bytes: a.fs_usage()?.used_bytes,
    };
    let mut chosen = 0;
    let choose_times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let p = choose(&view, &tree, &pinned, &policy, &measure, now);
            chosen = p.chosen.len();
            t.elapsed()
        })
        .collect();
    engine_a.set_gc_policy(policy.clone())?;
    // The engine's index is built by its first use, as after the daemon's start.
    let _ = engine_a.run_gc(true, GcCause::Request, None)?;
    let dry_times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let r = engine_a.run_gc(true, GcCause::Request, None);
            let e = t.elapsed();
            r.map(|_| e)
        })
        .collect::<imaged_core::Result<_>>()?;
    engine_a.set_gc_policy(GcPolicy {
        max_unused: Some(max_unused(imaged_core::time::now())),
        ..policy.clone()
    })?;
    let t = Instant::now();
    let run = engine_a.run_gc(false, GcCause::Request, None)?;
    let run_time = t.elapsed();
    let prune_opts = PruneOptions {
        all: true,
        filters: vec![format!(
            "unused-since={}",
            imaged_core::time::format_rfc3339(cut)
        )],
        ..PruneOptions::default()
    };
    // The prune's tree is built by a first dry run, as the run's index was.
    let _ = engine_b.prune(
        &PruneOptions {
            dry_run: true,
            ..prune_opts.clone()
        },
        None,
    )?;
    let t = Instant::now();
    let pruned = engine_b.prune(&prune_opts, None)?;
    let prune_time = t.elapsed();
    let mut gc_ids = run.prune.deleted_images.clone();
    let mut prune_ids = pruned.deleted_images.clone();
    gc_ids.sort();
    prune_ids.sort();
    if gc_ids != prune_ids {
        bail!(
            "the run and the prune deleted different images ({} vs {})",
            gc_ids.len(),
            prune_ids.len()
        );
    }
    let mut md = String::new();
    let _ = writeln!(md, "## GC by policy (in-process, memory store)\n");
    let _ = writeln!(
        md,
        "`cargo run --release -p imaged-bench -- --gc {n}`: {n} images on 100 shared base layers, \
         1% with a running container, `last_used` shuffled.\n"
    );
    let _ = writeln!(md, "| measure | time | bar |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| choose the candidates ({chosen} chosen of {n}), median of 5 | {} | ≤ 200 ms |",
        ms(median(choose_times))
    );
    let _ = writeln!(
        md,
        "| whole dry run (choose + plan through the prune planner), median of 5 | {} | |",
        ms(median(dry_times))
    );
    let _ = writeln!(
        md,
        "| tree build (once per catalog version; the daemon builds it at start) | {} | |",
        ms(index_time)
    );
    let _ = writeln!(
        md,
        "| run deleting {} images | {} | ≤ the prune |",
        run.prune.deleted_images.len(),
        ms(run_time)
    );
    let _ = writeln!(
        md,
        "| `prune -a --filter unused-since=…` deleting the same {} images | {} | |",
        pruned.deleted_images.len(),
        ms(prune_time)
    );
    Ok(md)
}
