//! imaged's gRPC layer: the `imaged.v1` handlers and the CRI `runtime.v1` one over
//! [`imaged_core::Engine`], plus health and reflection, ready to be served by the daemon.
//!
//! * [`Services`] — builds the engine with its event sink and the [`tonic::service::Routes`]
//!   of every served service; the daemon and the tests serve those routes.
//! * [`status`] — the one table from domain errors to gRPC codes with rich details.
//! * [`convert`] — every proto ↔ domain conversion.
//! * [`auth`] — read-only vs admin callers (peer credentials, bearer tokens, mTLS).
//! * [`events`] — WatchEvents fan-out; [`load`] — the LoadImages stream bridge;
//!   [`metrics`] — call counters.
//! * [`cri`] — the CRI `runtime.v1.ImageService` handler (kubelet, crictl), served on the
//!   same routes.
//!
//! This crate depends on no store crate: the daemon picks the store.

pub mod auth;
pub mod convert;
pub mod cri;
pub mod events;
pub mod load;
pub mod metrics;
pub mod native;
mod services;
pub mod status;

pub use services::{GrpcOptions, Services};
