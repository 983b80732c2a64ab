//! [`CountingStore`]: a memory store that counts the bytes its stagings are handed, for
//! tests and fuzz targets that bound what a load writes (decompression bombs, the
//! unpacked cap).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use imaged_core::catalog::Applied;
use imaged_core::digest::Hasher;
use imaged_core::store::{CheckReport, FsUsage, Staging, StoreInfo};
use imaged_core::{Catalog, ChangeSet, Digest, Error, MemoryStore, Result, Store};

/// A [`MemoryStore`] whose staging counts the bytes handed to it. With `discard` it only
/// hashes them, so a measure of a load's memory is not the store's.
#[derive(Debug)]
pub struct CountingStore {
    inner: MemoryStore,
    staged: Arc<AtomicU64>,
    discard: bool,
}

impl CountingStore {
    /// An empty store, and the counter of bytes staged into it.
    pub fn new(discard: bool) -> (Self, Arc<AtomicU64>) {
        let staged = Arc::new(AtomicU64::new(0));
        let store = Self {
            inner: MemoryStore::new(),
            staged: Arc::clone(&staged),
            discard,
        };
        (store, staged)
    }
}

struct CountingStaging<'a> {
    inner: Box<dyn Staging + 'a>,
    staged: Arc<AtomicU64>,
    discard: bool,
}

/// Counts the bytes read through it.
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
        if !self.discard {
            return self.inner.put(&mut r, expected);
        }
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = r
                .read(&mut buf)
                .map_err(|e| Error::internal(e.to_string()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
        Ok((h.finish(), size))
    }

    fn hold(&mut self, digest: &Digest) -> Result<bool> {
        self.inner.hold(digest)
    }
}

impl Store for CountingStore {
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
            discard: self.discard,
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
