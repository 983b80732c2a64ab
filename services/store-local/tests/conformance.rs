//! The core's backend conformance suite on LocalStore, each case on a fresh store in its
//! own temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

use std::sync::{Arc, Mutex};

use imaged_core::store::Store;

#[test]
fn local_store_passes_the_conformance_suite() {
    let dirs = Mutex::new(Vec::new());
    let factory = || -> Arc<dyn Store> {
        let dir = tempfile::tempdir().unwrap();
        let store = imaged_store_local::open(dir.path()).unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store)
    };
    imaged_core::conformance::run_all(&factory);
    assert!(dirs.lock().unwrap().len() > 10, "the suite ran cases");
}
