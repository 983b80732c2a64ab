//! imaged's domain: everything that decides what happens to images, independent of the
//! transport and of the storage backend.
//!
//! * [`model`], [`digest`] — the stored image model (SPEC §1).
//! * [`catalog`] — immutable snapshots of a store and the change sets between them.
//! * [`store`] — the backend contract; [`memory`] — the in-memory backend.
//! * [`engine`] — the operations (list, inspect, remove, prune, load, tag, containers),
//!   implemented once above the [`store::Store`] trait.
//! * [`error`] — error kinds with their `ErrorInfo` reasons.
//!
//! No tonic and no prost here: the gRPC layer converts.

mod api_stubs;
pub mod catalog;
pub mod digest;
pub mod engine;
pub mod error;
pub mod memory;
pub mod model;
pub mod ops;
pub mod reference;
pub mod repair;
pub mod store;
pub mod time;

pub use catalog::{Catalog, ChangeSet};
pub use digest::Digest;
pub use engine::{Engine, EngineConfig};
pub use error::{Error, ErrorKind, Result};
pub use memory::MemoryStore;
pub use store::Store;
