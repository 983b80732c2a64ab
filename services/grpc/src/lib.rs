//! imaged's gRPC layer: the `imaged.v1` handlers and the CRI `runtime.v1` one over
//! [`imaged_core::Engine`], plus health and reflection, ready to be served by the daemon.
//!
//! Start with [`Services`]: it builds the engine with its event sink and the
//! [`tonic::service::Routes`] of every served service; the daemon and the tests serve
//! those routes. Inside (private modules):
//!
//! * `call` — the call context both faces share: `Ctx` (engine, metrics, events), the
//!   steps of a call (authorize, blocking thread, error table, metrics) and the client's
//!   deadline; `call::auth` is public as [`auth`] (read-only vs admin callers: peer
//!   credentials, bearer tokens, mTLS).
//! * `native` — `imaged.v1`: handlers, the ListImages route over encoded pages, the
//!   LoadImages stream bridge, the WatchEvents fan-out ([`EventHub`]) and `native::convert`.
//! * `cri` — `runtime.v1.ImageService` (kubelet, crictl) and `cri::convert`.
//! * [`status`] — the one table from domain errors to gRPC codes with rich details.
//! * `limits` — tonic's own refusals (size limits, deadlines) answered as SPEC §7 says,
//!   around every service.
//! * [`Metrics`] — call counters.
//!
//! This crate depends on no store crate: the daemon picks the store.

mod call;
mod cri;
mod limits;
mod metrics;
mod native;
mod services;
pub mod status;

pub use call::auth;
pub use cri::{PULL_UNIMPLEMENTED, STREAM_BATCH as CRI_STREAM_BATCH};
pub use metrics::{Metrics, code_name};
pub use native::events::EventHub;
pub use native::transfer::TRANSFER_UNIMPLEMENTED;
pub use services::{
    BuildError, DEFAULT_LOAD_IDLE_TIMEOUT, GrpcOptions, HEALTH_SERVICE, REFLECTION_V1,
    REFLECTION_V1ALPHA, Services,
};
