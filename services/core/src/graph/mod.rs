//! The layer graph: which image is whose parent, which images are dangling or
//! intermediate, who uses what (libimage's rules, SPEC §1).
//!
//! * [`tree`] — the whole graph of one catalog, built in one pass ([`Tree`]); listings,
//!   prune rounds and the CRI views read it.
//! * [`index`] — the persistent layer index ([`LayerIndex`]), advanced by each commit, so
//!   a removal right after another write needs no full build.
//! * [`relations`] — what the removal planners ask ([`Relations`]), answered by either.
//! * [`facts`] — what filters and prune's selection ask of one image ([`Facts`]), answered
//!   by either.

pub mod facts;
pub mod index;
pub mod relations;
pub mod tree;

pub use facts::{Facts, IndexFacts, TreeFacts};
pub use index::LayerIndex;
pub use relations::{Relations, TreeRelations};
pub use tree::Tree;
