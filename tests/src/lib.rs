//! End-to-end test support for imaged: everything here drives the real binaries.
//!
//! * [`daemon::Daemon`] — a real `imaged` on a unix socket in a temporary directory,
//!   started with `--store memory|local`, ready when it prints its ready line, stopped with
//!   SIGTERM on drop; [`daemon::Daemon::imagectl`] runs the real CLI against it.
//! * [`archive`] — docker-archive / oci-archive bytes written independently of the
//!   daemon's own archive code.
//! * [`grpcurl`] — grpcurl calls over the socket through server reflection only.
//! * [`listing`] — reading `imagectl ls --format json`; [`metrics`] — the daemon's
//!   Prometheus endpoint.
//! * [`process`] — running a command with a time limit; [`tools`] — finding programs.
//!
//! The tests themselves are the one integration-test binary `e2e` (`tests/e2e/`).
//! Binaries are taken from the target directory: build them first with
//! `cargo build --workspace --bins` (`scripts/test` does).

pub mod archive;
pub mod daemon;
pub mod grpcurl;
pub mod listing;
pub mod metrics;
pub mod process;
pub mod tools;

pub use daemon::Daemon;
pub use process::Run;
