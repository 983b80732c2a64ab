//! The engine: the one place where imaged's semantics run, above any [`Store`].
//!
//! Every RPC of `imaged.v1` and of the CRI face calls one method here. Readers work on a
//! [`Catalog`] snapshot and never block; writers are serialised by one lock, plan their
//! change on the newest view and apply it atomically, so concurrent removals of one image
//! end with exactly one deletion and the others seeing "image not known".
//! Methods block (store I/O): async callers run them on a blocking thread.
//!
//! One file per operation: [`list`](self) (ListImages, InspectImage, disk usage),
//! `remove` (RemoveImage with its planner, both policies), `prune`, `load`, `tag`,
//! `containers`, `cri` (the CRI views); [`ops`] holds their requests and reports.

mod containers;
mod cri;
pub mod gc;
mod list;
mod load;
pub mod ops;
pub mod pinned;
mod prune;
pub(crate) mod remove;
pub mod repair;
pub mod staged;
mod tag;
pub(crate) mod token;

pub use list::summary;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::catalog::{Applied, Catalog, ChangeSet};
use crate::engine::ops::{Event, EventKind};
use crate::error::Result;
use crate::model::Platform;
use crate::store::Store;

/// Changes of at least this many images advance the layer index on a second thread while
/// the store commits them (below, a thread costs more than the advance).
const OVERLAP_INDEX_MIN: usize = 256;

/// Engine settings (from the daemon's configuration).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Unqualified-search registries tried for short names, in order (default none).
    pub search_registries: Vec<String>,
    /// Names or globs of images that are pinned (never pruned, CRI `pinned`).
    pub pinned_images: Vec<String>,
    /// The platform used to pick manifest-list instances.
    pub platform: Platform,
    /// Largest archive LoadImages accepts, in bytes (compressed, as received).
    pub max_load_bytes: u64,
    /// Largest tar stream LoadImages unpacks, in bytes after gzip decompression of the
    /// archive (every byte written to the store comes from it); beyond → `TooLarge`.
    pub max_load_unpacked_bytes: u64,
    /// Largest header of one tar entry of a loaded archive: its header blocks with its GNU
    /// long name/link and PAX extended header, in bytes; beyond → `InvalidArchive`.
    pub max_load_header_bytes: u64,
    /// Largest metadata entry of a loaded archive (`manifest.json`, `index.json`, ...) and
    /// largest JSON document it parses (configs, manifests, indexes); beyond →
    /// `InvalidArchive`.
    pub max_load_metadata_bytes: u64,
    /// Most metadata one load holds or parses in total (entry paths and link targets,
    /// metadata entries, JSON kept or parsed); beyond → `TooLarge`.
    pub max_load_metadata_total_bytes: u64,
    /// The GC policy at start-up (SPEC §4.1; SetGcPolicy replaces it at run time).
    pub gc: crate::gc::GcPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            search_registries: Vec::new(),
            pinned_images: Vec::new(),
            platform: Platform::host(),
            max_load_bytes: 16 << 30,
            max_load_unpacked_bytes: 64 << 30,
            max_load_header_bytes: 1 << 20,
            max_load_metadata_bytes: 4 << 20,
            max_load_metadata_total_bytes: 64 << 20,
            gc: crate::gc::GcPolicy::default(),
        }
    }
}

/// Receives committed events (the gRPC layer forwards them to WatchEvents streams).
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// The semantics engine over one store.
pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    /// `config.pinned_images`, compiled once.
    pub(crate) pinned: crate::engine::pinned::Pinned,
    writer: Mutex<()>,
    prune: Mutex<()>,
    sink: Option<EventSink>,
    /// The derived layer tree of the newest view (rebuilt once per catalog version).
    pub(crate) trees: crate::graph::tree::TreeCache,
    /// The parent/child index of the newest view, advanced by every commit.
    pub(crate) layers: crate::graph::index::IndexCache,
    /// The GC policy, the loop's signal and the run counters.
    pub(crate) gc: crate::engine::gc::GcState,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.info())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `store`.
    pub fn new(store: Arc<dyn Store>, config: EngineConfig) -> Self {
        Self {
            store,
            pinned: crate::engine::pinned::Pinned::new(&config.pinned_images),
            gc: crate::engine::gc::GcState::new(config.gc.clone()),
            config,
            writer: Mutex::new(()),
            prune: Mutex::new(()),
            sink: None,
            trees: crate::graph::tree::TreeCache::default(),
            layers: crate::graph::index::IndexCache::default(),
        }
    }

    /// Sends every committed event to `sink`.
    #[must_use]
    pub fn with_events(mut self, sink: EventSink) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current read view.
    pub fn view(&self) -> Arc<Catalog> {
        self.store.view()
    }

    /// Takes the writer lock: plan on `self.view()` after this, then [`Engine::commit`].
    pub(crate) fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the prune lock (prunes are serialised).
    pub(crate) fn prune_lock(&self) -> MutexGuard<'_, ()> {
        self.prune.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the prune lock if it is free.
    pub(crate) fn try_prune_lock(&self) -> Option<MutexGuard<'_, ()>> {
        match self.prune.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Applies a change planned on `planned_on` (writer lock held) unless it is empty. The
    /// records it deletes or replaces, as the plan saw them, go along in
    /// [`ChangeSet::seen`] so that a store with other writers can refuse a stale plan.
    pub(crate) fn commit(
        &self,
        planned_on: &Catalog,
        change: &ChangeSet,
    ) -> Result<Option<Applied>> {
        self.commit_planned(planned_on, change, None)
    }

    /// [`Engine::commit`] with the planner's result (`planned`: the change applied to
    /// `planned_on`), which the store may publish as is ([`Store::apply_planned`]).
    pub(crate) fn commit_planned(
        &self,
        planned_on: &Catalog,
        change: &ChangeSet,
        planned: Option<Applied>,
    ) -> Result<Option<Applied>> {
        if change.is_empty() {
            return Ok(None);
        }
        let mut with_seen;
        let change = if change.seen.is_empty() {
            with_seen = change.clone();
            with_seen.seen = change
                .delete_images
                .iter()
                .chain(change.put_images.iter().map(|i| &i.id))
                .filter_map(|id| planned_on.image(id).cloned())
                .collect();
            &with_seen
        } else {
            change
        };
        let before = self.store.view();
        let apply = || match planned {
            Some(p) => self.store.apply_planned(change, planned_on, p),
            None => self.store.apply(change),
        };
        // A large change (a prune): the layer index is advanced on a second thread while
        // the store commits (it needs only the view before and the change).
        let (applied, prepared) =
            if change.delete_images.len() + change.put_images.len() >= OVERLAP_INDEX_MIN {
                std::thread::scope(|s| {
                    let prepare = s.spawn(|| self.layers.prepare(&before, change));
                    let applied = apply();
                    (applied, prepare.join().ok().flatten())
                })
            } else {
                (apply(), None)
            };
        let applied = applied?;
        self.layers
            .install(&before, &self.store.view(), change, prepared);
        Ok(Some(applied))
    }

    /// Publishes events of a committed change.
    pub(crate) fn emit(&self, events: &[Event]) {
        if let Some(sink) = &self.sink {
            for e in events {
                sink(e);
            }
        }
        if events.iter().any(|e| e.kind == EventKind::Load) {
            self.gc_after_write();
        }
    }
}
