//! The backend conformance suite: every case of `imaged_testkit::conformance` as its own
//! named test on every backend. `cargo test -p imaged-testkit -- '<case name>'` runs one
//! case everywhere; a new backend joins with one line in `BACKENDS`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture is a failed test

use std::process::ExitCode;
use std::sync::Arc;

use imaged_core::MemoryStore;
use imaged_testkit::conformance::{Backend, Fresh, trials};

const BACKENDS: &[Backend] = &[
    Backend {
        name: "memory",
        fresh: memory,
    },
    Backend {
        name: "local",
        fresh: local,
    },
];

fn memory() -> Fresh {
    (Arc::new(MemoryStore::new()), Box::new(()))
}

/// A LocalStore in its own temporary directory (deleted with the guard).
fn local() -> Fresh {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = imaged_store_local::open(dir.path()).expect("open the local store");
    (Arc::new(store), Box::new(dir))
}

fn main() -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, trials(BACKENDS)).exit_code()
}
