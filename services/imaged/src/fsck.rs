//! `imaged fsck [--repair]`: checks the store and prints a report.

use crate::config::Settings;
use crate::serve::open_store;

/// Runs the check; returns the exit code (0 clean, 1 problems found or the check failed).
pub fn run(settings: &Settings, repair: bool) -> i32 {
    let store = match open_store(settings) {
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
            if repair { " (repaired)" } else { "" }
        );
        1
    }
}
