//! Where the store is: `storage.conf` resolution exactly as podman 4.3 / containers/storage
//! 1.43 read it (design doc §7).

use std::path::PathBuf;

/// A graph driver imaged can manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `overlay` (also written `overlay2`).
    Overlay,
    /// `vfs`.
    Vfs,
}

impl Driver {
    /// The name c/storage uses in paths (`overlay-images`, `vfs-layers`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlay => "overlay",
            Self::Vfs => "vfs",
        }
    }
}

/// A resolved store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The graph root (`/var/lib/containers/storage`).
    pub graph_root: PathBuf,
    /// The run root (`/run/containers/storage`).
    pub run_root: PathBuf,
    /// The graph driver.
    pub driver: Driver,
    /// `additionalimagestores`: read-only stores, served with `read_only` images.
    pub additional_image_stores: Vec<PathBuf>,
    /// podman's BoltDB (`<graph_root>/libpod/bolt_state.db` by default); containers not in
    /// it are external. `None` or a missing file: every container is external.
    pub libpod_db: Option<PathBuf>,
    /// The skopeo binary LoadImages drives (`skopeo` on `PATH` by default).
    pub skopeo: PathBuf,
}

impl StoreOptions {
    /// A store at `graph_root` / `run_root` with `driver`, podman's database at its default
    /// place (`<graph_root>/libpod/bolt_state.db`), no additional stores and `skopeo` from
    /// `PATH`.
    pub fn new(graph_root: PathBuf, run_root: PathBuf, driver: Driver) -> Self {
        let libpod_db = Some(graph_root.join("libpod").join("bolt_state.db"));
        Self {
            graph_root,
            run_root,
            driver,
            additional_image_stores: Vec::new(),
            libpod_db,
            skopeo: PathBuf::from("skopeo"),
        }
    }
}
