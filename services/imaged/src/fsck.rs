//! `imaged fsck [--repair]`: checks the store and prints a report.
//!
//! Without `--repair` the check changes nothing: the local store is opened for inspection
//! (no start-up sweep, no migration, the clean-shutdown marker untouched) and every
//! problem, including the leftovers a start would sweep, is reported. With `--repair` the
//! store is opened normally (its sweep removes the leftovers, reported here) and broken
//! images are dropped.

use std::sync::Arc;

use imaged_core::Store;
use imaged_store_local::{LocalStore, Options, SweepReport};

use crate::config::{Settings, StoreKind};
use crate::serve::open_store;

/// Runs the check; returns the exit code: 0 when the store is clean (or, with `repair`,
/// when it only held leftovers that were removed), 1 when problems were found or the
/// check failed.
pub(crate) fn run(settings: &Settings, repair: bool) -> i32 {
    let opened = match settings.store {
        StoreKind::Local => {
            let options = Options {
                inspect: !repair,
                ..Options::default()
            };
            LocalStore::open_with(&settings.root, options)
                .map(|s| {
                    let swept = s.sweep_report();
                    (Arc::new(s) as Arc<dyn Store>, Some(swept))
                })
                .map_err(|e| {
                    anyhow::anyhow!("cannot open the store in {}: {e}", settings.root.display())
                })
        }
        StoreKind::Memory | StoreKind::CStorage => open_store(settings).map(|s| (s, None)),
    };
    let (store, swept) = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imaged fsck: {e:#}");
            return 1;
        }
    };
    let report = match store.check(repair) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("imaged fsck: check failed: {e}");
            return 1;
        }
    };
    let info = store.info();
    println!("store: {} ({})", info.root.display(), info.kind);
    if let Some(SweepReport {
        orphan_blobs,
        ingest_files,
        ..
    }) = swept
        && repair
    {
        println!(
            "removed when opening: {orphan_blobs} unreferenced blobs, {ingest_files} temporary files"
        );
    }
    println!(
        "checked {} images, {} blobs",
        report.images_checked, report.blobs_checked
    );
    for p in &report.problems {
        println!("problem: {p}");
    }
    for id in &report.broken_images {
        println!("broken image: {id}");
    }
    for id in &report.repaired_images {
        println!("dropped image: {id}");
    }
    if repair {
        println!("unreferenced blobs removed: {}", report.orphans_removed);
    }
    if report.problems.is_empty() {
        println!("clean");
        0
    } else {
        println!(
            "{} problems found{}",
            report.problems.len(),
            if repair {
                " (repaired)"
            } else {
                "; nothing was changed (use --repair)"
            }
        );
        1
    }
}
