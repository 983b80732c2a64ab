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
pub mod digest;
pub mod engine;
pub mod error;
mod fasthash;
pub mod filter;
pub mod graph;
pub mod model;
pub mod reference;
pub mod store;
pub mod time;
pub mod work;

pub use catalog::{Catalog, ChangeSet};
pub use digest::Digest;
pub use engine::{Engine, EngineConfig, ops, repair, summary};
pub use error::{Error, ErrorKind, Result};
pub use store::{MemoryStore, Store};
