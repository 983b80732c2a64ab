//! Emptying `imaged-trash` off the call path.
//!
//! A removal renames the data it deletes into the trash under the store's locks (cheap,
//! and what makes it crash-safe); deleting those trees is the slow part of a large prune
//! (thousands of directories) and nobody needs to wait for it: podman never looks into
//! the trash. One background thread at a time empties it; a removal that finishes while
//! it runs asks it for one more pass. Loads wait for it first ([`Reaper::wait_idle`]) so
//! that space a prune freed is free before new data is written; so does dropping the
//! store, and whatever is left by a killed process is emptied at the next open.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::driver::Paths;

#[derive(Debug, Default)]
struct State {
    running: bool,
    again: bool,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    idle: Condvar,
}

/// The trash's background emptier.
#[derive(Debug, Default)]
pub(crate) struct Reaper {
    inner: Arc<Inner>,
}

impl Reaper {
    /// Empties the trash of `paths` in the background (once more if a pass is running).
    pub(crate) fn kick(&self, paths: &Paths) {
        {
            let mut st = self.inner.lock();
            st.again = true;
            if st.running {
                return;
            }
            st.running = true;
        }
        let inner = Arc::clone(&self.inner);
        let p = paths.clone();
        let spawned = std::thread::Builder::new()
            .name("cstorage-reaper".into())
            .spawn(move || run(&inner, &p));
        if let Err(e) = spawned {
            // No thread: empty it here, as before there was a reaper.
            tracing::warn!(error = %e, "containers-storage: no reaper thread");
            run(&self.inner, paths);
        }
    }

    /// Waits until no pass is running.
    pub(crate) fn wait_idle(&self) {
        let mut st = self.inner.lock();
        while st.running {
            st = self
                .inner
                .idle
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn run(inner: &Inner, paths: &Paths) {
    loop {
        {
            let mut st = inner.lock();
            if !st.again {
                st.running = false;
                inner.idle.notify_all();
                return;
            }
            st.again = false;
        }
        if let Err(e) = paths.empty_trash() {
            tracing::warn!(error = %e, "containers-storage: emptying imaged-trash");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Driver;

    #[test]
    fn empties_the_trash_in_the_background_and_waits_for_it() {
        let d = tempfile::tempdir().unwrap();
        let p = Paths {
            root: d.path().to_path_buf(),
            run: None,
            driver: Driver::Vfs,
        };
        let r = Reaper::default();
        for round in 0..3 {
            for i in 0..20 {
                let x = d.path().join(format!("x{round}-{i}"));
                std::fs::create_dir_all(x.join("a/b")).unwrap();
                p.to_trash(&x).unwrap();
            }
            r.kick(&p);
        }
        r.wait_idle();
        assert_eq!(std::fs::read_dir(p.trash()).unwrap().count(), 0);
        // Idle: waiting returns at once, kicking again is fine.
        r.wait_idle();
        r.kick(&p);
        r.wait_idle();
    }
}
