//! imaged's registry client (issue 13): pulls and pushes over the OCI distribution API,
//! implementing [`imaged_core::transfer::Registry`]. Never part of `imaged-core`.
//!
//! - [`conf`]: `registries.conf` (v2) as podman reads it — short-name resolution,
//!   mirrors, insecure registries;
//! - [`auth`]: credentials from `auth.json` / `~/.docker/config.json` and credential
//!   helpers;
//! - [`certs`]: TLS roots per registry (`/etc/containers/certs.d/<host>/`);
//! - `token`: the OAuth2 identity-token exchange;
//! - the client itself (pull, push).

pub mod auth;
pub mod certs;
pub mod conf;

mod client;
mod pull;
mod push;
mod token;

pub use client::{Options, RegistryClient};
