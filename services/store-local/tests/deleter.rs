//! The background blob deleter runs at a lower priority than the rest of the daemon, so
//! the unlinks of a large prune do not take a core from the requests that follow it.
//! (A test binary of its own: no other store's deleter thread is alive in this process.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::fs;

use common::load;
use imaged_core::ChangeSet;
use imaged_core::store::Store;

/// The nice value of a thread (field 19 of `/proc/…/stat`, after the parenthesised name).
fn nice_of(stat: &str) -> i32 {
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    // Fields from the third (state) on; nice is the 19th field of the line.
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// The stat lines of this process's threads named `name`.
fn threads_named(name: &str) -> Vec<String> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| {
            let t = t.unwrap().path();
            let comm = fs::read_to_string(t.join("comm")).ok()?;
            (comm.trim_end() == name).then(|| fs::read_to_string(t.join("stat")).ok())?
        })
        .collect()
}

#[test]
fn the_deleter_thread_is_niced_and_the_caller_is_not() {
    let own = nice_of(&fs::read_to_string("/proc/thread-self/stat").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = imaged_store_local::open(dir.path()).unwrap();
    // A removal whose blobs the deleter has deleted: its thread has run (and set its
    // priority before taking its first batch).
    let img = load(&store, "a", &[1], &["example.com/a:1"]);
    let applied = store
        .apply(&ChangeSet {
            delete_images: vec![img.id],
            ..ChangeSet::default()
        })
        .unwrap();
    assert!(!applied.released.is_empty());
    store.wait_for_deletions();
    // `comm` holds the first 15 bytes of the thread's name (`imaged-blob-delete`).
    let deleters = threads_named("imaged-blob-del");
    assert_eq!(deleters.len(), 1, "one deleter thread per store");
    assert_eq!(nice_of(&deleters[0]), (own + 10).min(19));
    // Only that thread: the caller keeps its priority.
    let after = nice_of(&fs::read_to_string("/proc/thread-self/stat").unwrap());
    assert_eq!(after, own);
    drop(store);
}
