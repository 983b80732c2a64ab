//! The bulk path: builds a `local` store of a large scenario without one fsync'd
//! LoadImages call per archive, yet with exactly the records LoadImages produces.
//!
//! 1. Every archive of the scenario goes through the real loader, `Engine::load` (the
//!    code behind the LoadImages RPC: archive parsing, digest and diff-ID verification,
//!    name normalisation, the load planner), in-process, over a `MemoryStore`; the
//!    planned containers are registered through `Engine::register_container` (which sets
//!    `last_used`, as the RPC does).
//! 2. The memory store's blobs are written to the local store's `blobs/sha256/<hex>`
//!    (`LocalStore::blob_path`) without per-file fsync, then `sync -f` flushes the
//!    filesystem once.
//! 3. The memory store's image and container records are committed to the local store
//!    in one `ChangeSet` through `Store::apply` (one redb transaction), which checks that
//!    every blob it adds is on disk with the right size.
//!
//! What differs from N LoadImages calls: no gRPC transport, no per-blob fsync, one
//! commit instead of one per archive, and the `added` times are those of the in-memory
//! loads. The daemon started on the result sees the same images, names, digests, layers,
//! configs, containers and blobs.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imaged_core::model::ContainerState;
use imaged_core::ops::{LoadOptions, RegisterContainer};
use imaged_core::store::Store;
use imaged_core::{ChangeSet, Engine, EngineConfig, MemoryStore};

use crate::scenario::Scenario;

/// What the bulk path did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BulkStats {
    /// Archive bytes read by the in-memory loads.
    pub bytes: u64,
    /// Image records committed.
    pub images: usize,
    /// Blobs written.
    pub blobs: usize,
    /// In-memory loads (`Engine::load`), archive generation excluded.
    pub load_time: Duration,
    /// Writing the blobs and the final sync.
    pub blob_time: Duration,
    /// The single `Store::apply`.
    pub commit_time: Duration,
}

/// Builds the store of `scenario` in `root` (which must not hold a store yet).
pub(crate) fn build_store(scenario: &Scenario, root: &Path) -> Result<BulkStats> {
    let mem = Arc::new(MemoryStore::new());
    let engine = Engine::new(mem.clone(), EngineConfig::default());
    let mut stats = BulkStats::default();
    for (k, archive) in scenario.archives(None).enumerate() {
        stats.bytes += archive.bytes.len() as u64;
        let t = Instant::now();
        // Format detected from the content, as the RPC does for ARCHIVE_FORMAT_UNSPECIFIED.
        engine
            .load(&mut archive.bytes.as_slice(), &LoadOptions::default())
            .map_err(|e| anyhow::anyhow!("in-memory load of archive {k}: {e}"))?;
        stats.load_time += t.elapsed();
    }
    for (k, c) in scenario.containers.iter().enumerate() {
        let state = if c.running {
            ContainerState::Running
        } else if k % 2 == 0 {
            ContainerState::Stopped
        } else {
            ContainerState::Created
        };
        engine
            .register_container(&RegisterContainer {
                id: None,
                image: c.image_id.clone(),
                state,
                external: c.external,
                name: c.name.clone(),
            })
            .map_err(|e| anyhow::anyhow!("registering {}: {e}", c.name))?;
    }
    let view = mem.view();

    let local = imaged_store_local::open(root)
        .map_err(|e| anyhow::anyhow!("opening the local store in {}: {e}", root.display()))?;
    if !local.view().is_empty() {
        bail!("{} already holds a store", root.display());
    }
    let t = Instant::now();
    for (digest, _) in view.blobs() {
        let bytes = mem
            .read_blob(digest)
            .map_err(|e| anyhow::anyhow!("reading blob {digest}: {e}"))?
            .with_context(|| format!("blob {digest} missing from the memory store"))?;
        let path = local.blob_path(digest);
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        stats.blobs += 1;
    }
    let status = std::process::Command::new("sync")
        .arg("-f")
        .arg(root)
        .status()
        .context("running sync -f")?;
    if !status.success() {
        bail!("sync -f {} failed: {status}", root.display());
    }
    stats.blob_time = t.elapsed();

    let change = ChangeSet {
        put_images: view.images().cloned().collect(),
        put_containers: view.containers().cloned().collect(),
        ..ChangeSet::default()
    };
    stats.images = change.put_images.len();
    let t = Instant::now();
    local
        .apply(&change)
        .map_err(|e| anyhow::anyhow!("committing {} images: {e}", stats.images))?;
    stats.commit_time = t.elapsed();
    Ok(stats)
}
