//! imaged's domain: everything that decides what happens to images, independent of the
//! transport and of the storage backend.
//!
//! * [`model`], [`digest`] — the stored image model (SPEC §1).
//! * [`catalog`] — immutable snapshots of a store and the change sets between them.
//! * [`store`] — the backend contract; [`memory`] — the in-memory backend.
//! * [`engine`] — the operations (list, inspect, remove, prune, load, tag, containers),
//!   implemented once above the [`store::Store`] trait.
//! * [`error`] — error kinds with their `ErrorInfo` reasons.
//! * [`reference`], [`resolve`] — reference grammar and resolution (SPEC §2).
//! * [`tree`], [`relations`] — the derived layer tree (parents, dangling, sizes).
//! * [`plan`], [`remove`], [`filter`], [`token`] — the removal planners (PODMAN and
//!   DOCKER policies), the filter language and page tokens behind remove, prune and list.
//! * [`testkit`] — hand-built images for tests; `conformance` (feature) — the backend
//!   conformance suite.
//!
//! No tonic and no prost here: the gRPC layer converts.

pub mod archive;
pub mod catalog;
#[cfg(feature = "conformance")]
pub mod conformance;
mod containers;
mod cri;
pub mod digest;
pub mod engine;
pub mod error;
pub mod fasthash;
pub mod filter;
pub mod index;
mod list;
mod load;
pub mod memory;
pub mod model;
pub mod ops;
pub mod pinned;
pub mod plan;
mod prune;
pub mod reference;
pub mod relations;
pub mod remove;
pub mod repair;
pub mod resolve;
pub mod store;
mod tag;
pub mod testkit;
pub mod time;
pub mod token;
pub mod tree;
pub mod work;

pub use catalog::{Catalog, ChangeSet};
pub use digest::Digest;
pub use engine::{Engine, EngineConfig};
pub use error::{Error, ErrorKind, Result};
pub use list::summary;
pub use memory::MemoryStore;
pub use store::Store;
