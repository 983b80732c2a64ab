//! Blob staging for loads: stream into `ingest/`, hash, fsync, verify, rename into
//! `blobs/sha256/`; leases keep staged blobs alive until the staging ends.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use imaged_core::digest::{Digest, Hasher};
use imaged_core::store::Staging;
use imaged_core::{Error, ErrorKind, Result};

use crate::blobs::CHUNK;
use crate::fsutil::{io_err, remove_file, start_writeback, sync_dir};
use crate::inner::{Inner, lock};

/// Mode of blob files.
const BLOB_MODE: u32 = 0o640;
/// Bytes of a blob written between two requests to start their writeback: the disk
/// writes a large blob while the rest of it streams in and is hashed, so its `fsync`
/// waits for the tail only.
const WRITEBACK_STEP: u64 = 1 << 20;

/// The blob writes of one load.
pub(crate) struct LocalStaging<'a> {
    store: &'a Inner,
    /// One entry per lease taken (a digest held twice is listed twice).
    held: Vec<Digest>,
    /// Blobs this staging created.
    written: Vec<Digest>,
}

impl<'a> LocalStaging<'a> {
    pub(crate) fn new(store: &'a Inner) -> Self {
        Self {
            store,
            held: Vec::new(),
            written: Vec::new(),
        }
    }
}

/// A temporary file of `ingest/`, removed on drop unless it was renamed away.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    renamed: bool,
}

impl TempFile {
    fn create(store: &Inner) -> Result<Self> {
        loop {
            let path = store
                .layout
                .ingest
                .join(format!("{:016x}.partial", fastrand::u64(..)));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(BLOB_MODE)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Self {
                        path,
                        file: Some(file),
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &path, &e)),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if self.renamed {
            return;
        }
        if let Err(e) = remove_file(&self.path) {
            tracing::warn!(error = %e, "temporary blob left behind; the start-up sweep will remove it");
        }
    }
}

/// Streams `data` into `tmp`, returning its digest and size.
fn copy_hashing(data: &mut dyn Read, tmp: &mut TempFile) -> Result<(Digest, u64)> {
    let file = tmp
        .file
        .as_mut()
        .ok_or_else(|| Error::internal("temporary file closed"))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    let mut flushed = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::InvalidArchive,
                    format!("reading blob: {e}"),
                ));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| io_err("writing", &tmp.path, &e))?;
        size += n as u64;
        if size - flushed >= WRITEBACK_STEP {
            start_writeback(file, flushed, size - flushed);
            flushed = size;
        }
    }
    file.sync_all()
        .map_err(|e| io_err("syncing", &tmp.path, &e))?;
    Ok((hasher.finish(), size))
}

impl Staging for LocalStaging<'_> {
    fn put(&mut self, data: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let put = self.put_blob(data, expected);
        if let Err(e) = &put
            && e.kind == ErrorKind::NoSpace
        {
            self.store
                .no_space
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        put
    }

    fn hold(&mut self, digest: &Digest) -> Result<bool> {
        self.store.leases.acquire(*digest);
        self.held.push(*digest);
        let _b = lock(&self.store.blob_lock);
        Ok(self.store.layout.blob(digest).is_file())
    }
}

impl LocalStaging<'_> {
    /// [`Staging::put`], without noting a full disk.
    fn put_blob(
        &mut self,
        data: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut tmp = TempFile::create(self.store)?;
        let (digest, size) = copy_hashing(data, &mut tmp)?;
        if let Some(want) = expected
            && *want != digest
        {
            return Err(Error::new(
                ErrorKind::InvalidArchive,
                format!("blob digest mismatch: expected {want}, got {digest}"),
            ));
        }
        // Lease before looking: a concurrent deletion either sees the lease or happens
        // before the look (and the rename below recreates the blob).
        self.store.leases.acquire(digest);
        self.held.push(digest);
        let dest = self.store.layout.blob(&digest);
        let renamed = {
            let _b = lock(&self.store.blob_lock);
            if dest.is_file() {
                false
            } else {
                tmp.file = None;
                std::fs::rename(&tmp.path, &dest).map_err(|e| io_err("storing", &dest, &e))?;
                tmp.renamed = true;
                self.written.push(digest);
                true
            }
        };
        if renamed {
            sync_dir(&self.store.layout.blobs)?;
        }
        // `tmp` drops here: removes the temporary file when the blob already existed.
        Ok((digest, size))
    }
}

impl Drop for LocalStaging<'_> {
    fn drop(&mut self) {
        for d in &self.held {
            self.store.leases.release(d);
        }
        let mut candidates = std::mem::take(&mut self.written);
        candidates.extend(self.store.deferred());
        candidates.sort_unstable();
        candidates.dedup();
        self.store.delete_unused(candidates);
    }
}
