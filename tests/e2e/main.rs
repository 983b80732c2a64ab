//! End-to-end tests of imaged through its real binaries: `imaged` on a unix socket in a
//! temporary directory, the real `imagectl`, grpcurl (reflection only) and a Python gRPC
//! client (pytest, stubs generated from `proto/` at test time).
//!
//! Build the binaries first: `cargo build --workspace --bins` (`scripts/test` does).
//! grpcurl, Python and its packages come from `scripts/setup`; a missing tool fails the
//! test that needs it, with that hint.

// A test binary: unwrap/expect on test data is the point (helpers outside #[test] fns
// are not covered by clippy's allow-*-in-tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod bad_input;
mod concurrency;
mod conformance_grpc;
mod crash;
mod cri;
mod docker_differential;
mod gc_budget;
mod gc_cli;
mod grpcurl;
mod lifecycle;
mod listing;
mod load;
mod peers;
mod prune;
mod python;
mod registry_pull;
mod remove;

// containers-storage (issue 12): a real podman store shared with imaged.
mod cstorage_concurrency;
mod cstorage_crash;
mod cstorage_differential;
mod cstorage_gc;
mod cstorage_listing;
mod cstorage_pull;
mod cstorage_support;
