//! imaged's containers-storage backend (`imaged --store containers-storage`): the store of
//! podman, buildah, skopeo and CRI-O, managed in place with the lock protocol of
//! containers/storage 1.43 (the version podman 4.3.1 uses). See `README.md` and
//! `docs/design/containers-storage.md` for the on-disk format and the protocol.
//!
//! Layout of this crate:
//! - [`config`]: where the store is (`storage.conf` resolution, as podman reads it);
//! - `bolt`: a read-only reader of podman's BoltDB (which containers are podman's);
//! - `lockfile`, `atomic`, `schema`, `bigdata`: c/storage's lock files, atomic writes,
//!   JSON records and big-data file names;
//! - `tracked`, `snapshot`, `convert`: reading the store (incrementally) into an
//!   [`imaged_core::Catalog`];
//! - `write`, `driver`, `recover`: applying change sets in place, deleting layer data,
//!   finishing interrupted removals; `reaper`: emptying the trash in the background;
//! - `usage`: imaged's usage data (`last_used`), in its own file;
//! - `load`: LoadImages through skopeo;
//! - `store`: the [`imaged_core::Store`] implementation.
//!
//! Decisions visible to callers:
//! - CREATED is the images.json `created` (what `podman images` shows and filters on), so
//!   `Image::config.created` and `Image::added` both carry it; `Image::stored_size` is
//!   podman's `ImageSize`.
//! - Containers are read-only (`StoreInfo::containers_read_only`): only **external**,
//!   unmounted containers can be deleted (prune `--external`); a podman container is an
//!   `ImageInUse` error telling to `podman rm` it, a mounted one `ContainerRunning`.
//! - `Image::last_used` is derived (the image's creation in the store, its newest
//!   container, the moment imaged saw its last container go, the engine's loads and tags)
//!   and kept in imaged's own `<graph_root>/imaged/usage.json`, never in podman's files.
//!
//! # Failpoints (crash tests)
//! Built with the `failpoints` feature, `IMAGED_CSTORAGE_CRASH_AT=<step>` makes
//! `apply` (and recovery) call `std::process::abort()` at one step of the write sequence:
//! - `after-containers`: `containers.json` replaced and `containers.lock` touched;
//! - `after-images`: `images.json` replaced and `images.lock` touched;
//! - `after-flag`: `layers.json` written with `flags.incomplete` on the layers to remove;
//! - `mid-data`: the first layer's data removed, the others not yet;
//! - `after-data`: every layer's data removed, `layers.json` still lists them (flagged).
//!
//! Without the feature the steps compile to nothing.

pub mod config;

mod atomic;
mod bigdata;
mod bolt;
mod convert;
mod driver;
mod load;
mod lockfile;
mod reaper;
mod recover;
mod schema;
mod snapshot;
mod store;
mod tracked;
mod usage;
mod view;
mod watch;
mod write;

pub use config::{Driver, StoreOptions};
pub use store::CStorageStore;

/// Opens the containers-storage store described by `opts` (it must already exist or be
/// creatable the way podman creates it).
pub fn open(opts: StoreOptions) -> imaged_core::Result<CStorageStore> {
    CStorageStore::open(opts)
}
