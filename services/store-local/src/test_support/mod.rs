//! Test support (cargo feature `test-support`): the crash-safety invariants checked from
//! the files alone, and raw access to the documented on-disk format. Used by this crate's
//! tests and by the end-to-end tests that drive the real daemon (`imaged-tests`).
//!
//! Everything here reads or writes the store's files behind its back; it is for tests and
//! panics (with the path) when a file cannot be read at all.

pub mod invariants;
pub mod raw;

use std::path::Path;

/// Files of a directory (names), sorted; empty when it does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The blob files of the store in `root`.
pub fn blob_files(root: &Path) -> Vec<String> {
    files(&root.join("blobs/sha256"))
}
