//! Test support for imaged, kept out of the daemon: nothing here is compiled into
//! `imaged`.
//!
//! * [`images`] — hand-built images ([`ImageSpec`]) staged into any store, with layers
//!   and history chosen so libimage's parent rule holds where a test wants it.
//! * [`archive`] — a generator of real `docker-archive` / `oci-archive` tars (valid, or
//!   broken on purpose by [`archive::corrupt`]) for load tests, the gRPC conformance run
//!   and the benchmark harness.
//! * [`conformance`] — the backend conformance suite: SPEC §2–§5 as data ([`conformance::Case`]),
//!   an in-process driver and the checks other drivers reuse. `tests/conformance.rs` runs
//!   every case as its own named test on every backend.
//! * [`counting`] — a memory store that counts what a load stages.
//! * [`podman`] — real podman / buildah / skopeo stores in temporary directories.
//! * [`registry`] — a real `docker-registry` on 127.0.0.1 for pull and push tests.
//!
//! May depend on `imaged-core` (and, in its own tests, on the store crates); nothing but
//! tests and benchmarks may depend on it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // fixtures panic on broken setups

pub mod archive;
pub mod conformance;
pub mod counting;
pub mod dockerd;
pub mod images;
pub mod podman;
pub mod registry;

pub use images::{ImageSpec, add_images};
