//! Reading and verifying blob files.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use imaged_core::Result;
use imaged_core::digest::{Digest, Hasher};

use crate::fsutil::io_err;

/// Buffer size for streaming blob bytes.
pub(crate) const CHUNK: usize = 256 << 10;

/// What a blob file holds compared with what the catalog expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlobState {
    /// Right size and digest.
    Good,
    /// No file.
    Missing,
    /// Different bytes: (size, digest) found.
    Corrupt(u64, Digest),
}

/// Reads and hashes the blob file at `path`.
pub(crate) fn verify(path: &Path, digest: &Digest, size: u64) -> Result<BlobState> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
        Err(e) => return Err(io_err("opening", path, &e)),
    };
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("reading", path, &e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    let found = hasher.finish();
    Ok(if found == *digest && len == size {
        BlobState::Good
    } else {
        BlobState::Corrupt(len, found)
    })
}
