//! Shared helpers of the `load_*` tests: an engine over a memory store and a snapshot of
//! everything a failed load must leave untouched.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use imaged_core::model::Image;
use imaged_core::ops::{Event, LoadOptions, LoadReport};
use imaged_core::{Engine, EngineConfig, MemoryStore, Result, Store};

/// An engine over a fresh memory store, recording its events.
pub(crate) struct Rig {
    pub store: Arc<MemoryStore>,
    pub engine: Engine,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Rig {
    pub(crate) fn new() -> Self {
        Self::with_config(EngineConfig::default())
    }

    pub(crate) fn with_config(config: EngineConfig) -> Self {
        let store = Arc::new(MemoryStore::new());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let dyn_store: Arc<dyn Store> = store.clone();
        let engine = Engine::new(dyn_store, config).with_events(Arc::new(move |e: &Event| {
            sink.lock().unwrap().push(e.clone())
        }));
        Self {
            store,
            engine,
            events,
        }
    }

    pub(crate) fn load(&self, bytes: &[u8]) -> Result<LoadReport> {
        self.load_with(bytes, &LoadOptions::default())
    }

    pub(crate) fn load_with(&self, bytes: &[u8], opts: &LoadOptions) -> Result<LoadReport> {
        let mut r = bytes;
        self.engine.load(&mut r, opts)
    }

    /// Every image, sorted by ID.
    pub(crate) fn images(&self) -> Vec<Image> {
        let view = self.store.view();
        let mut v: Vec<Image> = view.images().map(|i| Image::clone(i)).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    pub(crate) fn image(&self, id: &imaged_core::Digest) -> Image {
        Image::clone(self.store.view().image(id).expect("image loaded"))
    }

    /// What a failed load must not change.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut names: Vec<(String, String)> = self
            .store
            .view()
            .names()
            .map(|(n, id)| (n.clone(), id.to_string()))
            .collect();
        names.sort();
        Snapshot {
            images: self.images(),
            names,
            blobs: self.store.blob_count(),
            bytes: self.store.fs_usage().unwrap().used_bytes,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub images: Vec<Image>,
    pub names: Vec<(String, String)>,
    pub blobs: usize,
    pub bytes: u64,
}
