//! The crash-safety invariants, checked from the files alone (raw records and blob files),
//! independently of the store's own code. Each check returns the problems found, one
//! message each (empty when the invariant holds), so a test can assert on exactly what
//! broke.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use imaged_core::Digest;

use super::raw;

/// Problems of the committed state: records decode and are keyed by their ID, no name on
/// two images, containers refer to existing images, every blob of every image exists with
/// the right size and sha256.
pub fn committed_state(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let (images, containers) = raw::records(root);
    let mut names: HashMap<&str, Digest> = HashMap::new();
    let ids: HashSet<Digest> = images.iter().map(|(_, img)| img.id).collect();
    for (key, img) in &images {
        if key.as_slice() != img.id.as_bytes() {
            problems.push(format!("image {} stored under another key", img.id));
        }
        for n in &img.names {
            if let Some(other) = names.insert(n, img.id) {
                problems.push(format!("name {n} on {other} and {}", img.id));
            }
        }
        for b in img.blobs() {
            let path = root.join("blobs/sha256").join(b.digest.hex());
            match std::fs::read(&path) {
                Err(_) => problems.push(format!("image {}: blob {} missing", img.id, b.digest)),
                Ok(bytes) => {
                    if bytes.len() as u64 != b.size || Digest::of(&bytes) != b.digest {
                        problems.push(format!("image {}: blob {} corrupt", img.id, b.digest));
                    }
                }
            }
        }
    }
    for (key, c) in &containers {
        if *key != c.id {
            problems.push(format!("container {} stored under another key", c.id));
        }
        if !ids.contains(&c.image_id) {
            problems.push(format!(
                "container {} refers to missing image {}",
                c.id, c.image_id
            ));
        }
    }
    problems
}

/// Problems that must not survive a start-up sweep: blob files no image refers to,
/// files left in `ingest/`.
pub fn swept_state(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let (images, _) = raw::records(root);
    let referenced: HashSet<String> = images
        .iter()
        .flat_map(|(_, img)| img.blobs().map(|b| b.digest.hex()).collect::<Vec<_>>())
        .collect();
    for f in super::blob_files(root) {
        if !referenced.contains(&f) {
            problems.push(format!("unreferenced blob file {f}"));
        }
    }
    for f in super::files(&root.join("ingest")) {
        problems.push(format!("leftover ingest file {f}"));
    }
    problems
}

/// Both checks.
pub fn all(root: &Path) -> Vec<String> {
    let mut p = committed_state(root);
    p.extend(swept_state(root));
    p
}
