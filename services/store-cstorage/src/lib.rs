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
//! - `snapshot`, `convert`: reading the store into an [`imaged_core::Catalog`];
//! - `write`, `driver`, `recover`: applying change sets in place, deleting layer data,
//!   finishing interrupted removals;
//! - `load`: LoadImages through skopeo;
//! - `store`: the [`imaged_core::Store`] implementation.

pub mod config;

mod atomic;
mod bigdata;
mod bolt;
mod convert;
mod driver;
mod load;
mod lockfile;
mod recover;
mod schema;
mod snapshot;
mod store;
mod write;

pub use config::{Driver, StoreOptions};
pub use store::CStorageStore;

/// Opens the containers-storage store described by `opts` (it must already exist or be
/// creatable the way podman creates it).
pub fn open(opts: StoreOptions) -> imaged_core::Result<CStorageStore> {
    CStorageStore::open(opts)
}
