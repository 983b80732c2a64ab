//! The backend conformance suite: every case of `imaged_testkit::conformance` as its own
//! named test on every backend. `cargo test -p imaged-testkit -- '<case name>'` runs one
//! case everywhere; a new backend joins with one line in `BACKENDS`.
//!
//! The containers-storage backends (`cstorage-vfs`, `cstorage-overlay`; testkit feature
//! `cstorage`, on by default) run every case on a store made by real podman in a temporary
//! directory (the ListImages cases of one setup share a store, set up once): images loaded through the store
//! (skopeo), names with `podman tag` where the order allows it ([`PodmanSetup`]),
//! containers with `podman create` / `buildah from` (running = layer mounted), manifest
//! lists with `podman manifest create` / `podman manifest add` (random list IDs, recorded in
//! the fixture); read-only images are copied by skopeo into a second podman store that the
//! store under test has as its additional image store. They need podman, buildah, skopeo
//! and runc (a case fails when one is missing).
//! Cases this backend cannot represent are ignored tests named
//! `<case> [cstorage-…] (excluded: <reason>)`, decided by `conformance::cstorage_excluded`:
//! * a manifest list older than a cutoff relative to now (`until=1h`): podman stamps a list
//!   with the time `podman manifest create` ran;
//! * a podman container the action is expected to remove: on containers-storage imaged
//!   never removes podman's containers (it would have to write podman's database); it
//!   answers with an error naming the container instead (issue 12 §3, tested in the
//!   store's own suite).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a broken fixture is a failed test

use std::process::ExitCode;
use std::sync::Arc;

use imaged_core::MemoryStore;
#[cfg(feature = "cstorage")]
use imaged_testkit::conformance::cstorage_excluded;
use imaged_testkit::conformance::{Backend, Fresh, no_exclusions, trials};

const BACKENDS: &[Backend] = &[
    Backend {
        name: "memory",
        fresh: memory,
        excluded: no_exclusions,
        max_parallel: 0,
        share_list_setups: false,
    },
    Backend {
        name: "local",
        fresh: local,
        excluded: no_exclusions,
        max_parallel: 0,
        share_list_setups: false,
    },
    #[cfg(feature = "cstorage")]
    Backend {
        name: "cstorage-vfs",
        fresh: cstorage::vfs,
        excluded: cstorage_excluded,
        max_parallel: CSTORAGE_PARALLEL,
        share_list_setups: true,
    },
    #[cfg(feature = "cstorage")]
    Backend {
        name: "cstorage-overlay",
        fresh: cstorage::overlay,
        excluded: cstorage_excluded,
        max_parallel: CSTORAGE_PARALLEL,
        share_list_setups: true,
    },
];

/// podman, buildah and skopeo each take the store's locks and spend most of their time
/// starting up; more than two at a time only contend on a 2-core machine.
#[cfg(feature = "cstorage")]
const CSTORAGE_PARALLEL: usize = 2;

fn memory() -> Result<Fresh, String> {
    Ok(Fresh::plain(Arc::new(MemoryStore::new()), Box::new(())))
}

/// A LocalStore in its own temporary directory (deleted with the guard).
fn local() -> Result<Fresh, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let store =
        imaged_store_local::open(dir.path()).map_err(|e| format!("open the local store: {e}"))?;
    Ok(Fresh::plain(Arc::new(store), Box::new(dir)))
}

#[cfg(feature = "cstorage")]
mod cstorage {
    use std::sync::Arc;

    use imaged_store_cstorage::{Driver, StoreOptions};
    use imaged_testkit::conformance::Fresh;
    use imaged_testkit::podman::{PodmanSetup, PodmanStore};

    pub(crate) fn vfs() -> Result<Fresh, String> {
        fresh(Driver::Vfs, "vfs")
    }

    pub(crate) fn overlay() -> Result<Fresh, String> {
        fresh(Driver::Overlay, "overlay")
    }

    /// A store podman created in a temporary directory, with a second one as its
    /// additional image store, opened by imaged; the podman stores (unmounted and removed
    /// when dropped) live in the hook and the guard, so they go after the imaged store.
    fn fresh(driver: Driver, name: &'static str) -> Result<Fresh, String> {
        let podman = Arc::new(PodmanStore::new(name)?);
        let read_only = Arc::new(PodmanStore::new(name)?);
        let mut opts = StoreOptions::new(podman.root.clone(), podman.run.clone(), driver);
        opts.additional_image_stores = vec![read_only.root.clone()];
        let store = imaged_store_cstorage::open(opts)
            .map_err(|e| format!("open the containers-storage store: {e}"))?;
        Ok(Fresh {
            store: Arc::new(store),
            hook: Some(Box::new(PodmanSetup {
                store: Arc::clone(&podman),
                read_only: Some(Arc::clone(&read_only)),
            })),
            guard: Box::new((podman, read_only)),
        })
    }
}

fn main() -> ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, trials(BACKENDS)).exit_code()
}
