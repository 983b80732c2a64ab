//! Deterministic in-memory tar and gzip writing for the generator: every header has
//! mtime 0, uid/gid 0 and fixed modes, so the same input always gives the same bytes.

use std::io::{self, Write};

/// In-memory writes cannot fail; a failure here is a bug in the generator.
fn ok<T>(r: io::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("writing an in-memory archive: {e}"))
}

/// A tar being written into memory.
pub struct TarOut(tar::Builder<Vec<u8>>);

impl Default for TarOut {
    fn default() -> Self {
        Self::new()
    }
}

impl TarOut {
    /// An empty tar.
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, data: &[u8]) {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        ok(self.0.append_data(&mut h, path, data));
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str) {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        ok(self.0.append_data(&mut h, path, io::empty()));
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        ok(self.0.append_link(&mut h, path, target));
    }

    /// Adds a hard link to an earlier entry.
    pub fn hardlink(&mut self, path: &str, target: &str) {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        ok(self.0.append_link(&mut h, path, target));
    }

    /// The finished tar (with its two zero end blocks).
    pub fn finish(self) -> Vec<u8> {
        ok(self.0.into_inner())
    }
}

/// Gzip-compresses `bytes` (deterministic header: no name, mtime 0).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    ok(enc.write_all(bytes));
    ok(enc.finish())
}

/// Whether `bytes` start with the gzip magic.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses gzip `bytes` (for the corruption helpers).
pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ok(io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(bytes),
        &mut out,
    ));
    out
}
