//! The native API, `imaged.v1`: thin adapters from the generated service traits to the
//! engine, over the shared call context ([`crate::call::Ctx`]).
//!
//! * [`images`] — `ImageService` (every method but ListImages); [`list_route`] serves
//!   ListImages from [`encoded`] pages, ahead of the generated server.
//! * [`containers`] — `ContainerService`; [`gc`] — `GcService` (policy and runs).
//! * [`load`] — the LoadImages stream bridge; [`events`] — the WatchEvents fan-out.
//! * [`pull`], [`push`] — PullImage and PushImage over the daemon's registry client,
//!   streamed through [`transfer`] (shared with CRI PullImage).
//! * [`convert`] — every `imaged.v1` ↔ domain conversion.

pub(crate) mod containers;
pub(crate) mod convert;
pub(crate) mod encoded;
pub(crate) mod events;
pub(crate) mod gc;
pub(crate) mod images;
pub(crate) mod list_route;
pub(crate) mod load;
pub(crate) mod pull;
pub(crate) mod push;
pub(crate) mod transfer;

#[cfg(test)]
mod encoded_tests;
