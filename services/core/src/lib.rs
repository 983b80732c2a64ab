//! imaged's domain: everything that decides what happens to images, independent of the
//! transport and of the storage backend. No tonic, no prost, no network, no test support
//! (that lives in `imaged-testkit`).
//!
//! * [`model`], [`digest`], [`time`] — the stored image model (SPEC §1).
//! * [`catalog`] — immutable snapshots of a store and the change sets between them.
//! * [`store`] — the backend contract ([`Store`]) and the in-memory backend
//!   ([`MemoryStore`]).
//! * [`engine`] — the operations (list, inspect, disk usage, remove with its planner,
//!   prune, load, tag, containers, the CRI views), one module each, above any [`Store`];
//!   [`ops`] holds their requests and reports.
//! * [`graph`] — the layer graph: parents, children, dangling and intermediate images,
//!   from a built tree or the persistent layer index.
//! * [`mod@reference`] — reference grammar, normalisation and resolution (SPEC §2).
//! * [`filter`] — the filter language of list and prune (SPEC §5.3).
//! * [`archive`] — reading docker-archive / oci-archive tars for LoadImages.
//! * [`error`] — error kinds with their `ErrorInfo` reasons, declared once.
//! * [`transfer`] — the pull/push contract a registry client implements (no network here).
//! * [`work`] — work counters that tests use to assert linear cost.

pub mod archive;
pub mod catalog;
pub mod digest;
pub mod engine;
pub mod error;
mod fasthash;
pub mod filter;
pub mod gc;
pub mod graph;
pub mod intern;
pub mod model;
mod reclaim;
pub mod reference;
pub mod store;
pub mod time;
pub mod transfer;
pub mod work;

pub use catalog::{Catalog, ChangeSet};
pub use digest::Digest;
pub use engine::{Engine, EngineConfig, ops, repair, summary};
pub use error::{Error, ErrorKind, Result};
pub use store::{MemoryStore, Store};
