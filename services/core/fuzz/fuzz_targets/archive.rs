//! The archive reader (LoadImages) on arbitrary bytes with small limits: it returns Ok or
//! an `InvalidArchive`/`TooLarge` error, never panics, never stages more than the
//! unpacked cap, and leaves nothing behind when it fails. (Memory is bounded by the
//! fuzz run's `-malloc_limit_mb`.)
#![no_main]

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use imaged_core::catalog::Applied;
use imaged_core::ops::LoadOptions;
use imaged_core::store::{CheckReport, FsUsage, Staging, StoreInfo};
use imaged_core::{
    Catalog, ChangeSet, Digest, Engine, EngineConfig, ErrorKind, MemoryStore, Result, Store,
};
use libfuzzer_sys::fuzz_target;

const UNPACKED: u64 = 4 << 20;

/// A memory store counting the bytes its stagings are handed.
struct Counting {
    inner: MemoryStore,
    staged: Arc<AtomicU64>,
}

struct CountingStaging<'a> {
    inner: Box<dyn Staging + 'a>,
    staged: Arc<AtomicU64>,
}

struct CountingReader<'a> {
    inner: &'a mut dyn Read,
    staged: &'a AtomicU64,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.staged.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Staging for CountingStaging<'_> {
    fn put(&mut self, data: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let mut r = CountingReader {
            inner: data,
            staged: &self.staged,
        };
        self.inner.put(&mut r, expected)
    }
    fn hold(&mut self, digest: &Digest) -> Result<bool> {
        self.inner.hold(digest)
    }
}

impl Store for Counting {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn view(&self) -> Arc<Catalog> {
        self.inner.view()
    }
    fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        self.inner.apply(change)
    }
    fn stage(&self) -> Result<Box<dyn Staging + '_>> {
        Ok(Box::new(CountingStaging {
            inner: self.inner.stage()?,
            staged: Arc::clone(&self.staged),
        }))
    }
    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        self.inner.read_blob(digest)
    }
    fn fs_usage(&self) -> Result<FsUsage> {
        self.inner.fs_usage()
    }
    fn check(&self, repair: bool) -> Result<CheckReport> {
        self.inner.check(repair)
    }
}

fuzz_target!(|data: &[u8]| {
    let staged = Arc::new(AtomicU64::new(0));
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        staged: Arc::clone(&staged),
    });
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
