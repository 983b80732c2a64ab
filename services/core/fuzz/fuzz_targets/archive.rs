//! The archive reader (LoadImages) on arbitrary bytes with small limits: it returns Ok or
//! an `InvalidArchive`/`TooLarge` error, never panics, never stages more than the
//! unpacked cap, and leaves nothing behind when it fails. (Memory is bounded by the
//! fuzz run's `-malloc_limit_mb`.)
#![no_main]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use imaged_core::ops::LoadOptions;
use imaged_core::{Engine, EngineConfig, ErrorKind, Store};
use imaged_testkit::counting::CountingStore;
use libfuzzer_sys::fuzz_target;

const UNPACKED: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let (store, staged) = CountingStore::new(false);
    let store = Arc::new(store);
    let config = EngineConfig {
        max_load_bytes: 1 << 20,
        max_load_unpacked_bytes: UNPACKED,
        max_load_header_bytes: 4 << 10,
        max_load_metadata_bytes: 64 << 10,
        max_load_metadata_total_bytes: 256 << 10,
        ..EngineConfig::default()
    };
    let engine = Engine::new(Arc::clone(&store) as Arc<dyn Store>, config);
    let mut reader = data;
    let result = engine.load(&mut reader, &LoadOptions::default());
    // Synthesised docker-archive manifests are staged too: a few hundred bytes per image.
    let staged = staged.load(Ordering::Relaxed);
    assert!(staged <= UNPACKED + (64 << 10), "{staged} bytes staged");
    match result {
        Ok(report) => assert!(!report.images.is_empty()),
        Err(e) => {
            assert!(
                matches!(e.kind, ErrorKind::InvalidArchive | ErrorKind::TooLarge),
                "{e:?}"
            );
            assert_eq!(store.fs_usage().map(|u| u.used_bytes).ok(), Some(0), "{e}");
            assert_eq!(store.view().images().count(), 0);
        }
    }
});
