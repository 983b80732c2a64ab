//! Emptying `imaged-trash` off the call path.
//!
//! A removal renames the data it deletes into the trash under the store's locks (cheap,
//! and what makes it crash-safe); deleting those trees is the slow part of a large prune
//! (thousands of directories) and nobody needs to wait for it: podman never looks into
//! the trash. One background thread at a time empties it; a removal that finishes while
//! it runs asks it for one more pass. Loads wait for it first ([`Reaper::wait_idle`]) so
//! that space a prune freed is free before new data is written; so does dropping the
//! store, and whatever is left by a killed process is emptied at the next open. While an
//! apply writes ([`Reaper::hold`]) the reaper pauses between two entries of the trash, so
//! that a removal does not share the disk with the deletion of the previous one's data.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::driver::Paths;

#[derive(Debug, Default)]
struct State {
    running: bool,
    again: bool,
    /// Applies writing now: the reaper waits for them.
    holds: usize,
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

    /// Pauses the reaper while the guard lives.
    pub(crate) fn hold(&self) -> Hold<'_> {
        self.inner.lock().holds += 1;
        Hold(&self.inner)
    }

    /// Waits until no pass is running. Never call it while holding a [`Hold`].
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

    /// Waits while an apply holds the reaper.
    fn wait_unheld(&self) {
        let mut st = self.lock();
        while st.holds > 0 {
            st = self.idle.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A pause of the reaper (see [`Reaper::hold`]).
#[derive(Debug)]
pub(crate) struct Hold<'a>(&'a Inner);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.holds = st.holds.saturating_sub(1);
        if st.holds == 0 {
            self.0.idle.notify_all();
        }
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
        if let Err(e) = paths.empty_trash_pausing(|| inner.wait_unheld()) {
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

    #[test]
    fn a_hold_pauses_the_reaper_until_it_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = Paths {
            root: d.path().to_path_buf(),
            run: None,
            driver: Driver::Vfs,
        };
        let r = Reaper::default();
        let x = d.path().join("x");
        std::fs::create_dir_all(&x).unwrap();
        p.to_trash(&x).unwrap();
        let hold = r.hold();
        r.kick(&p);
        // The pass has started (or is about to) and waits before the first entry.
        let entries = || std::fs::read_dir(p.trash()).unwrap().count();
        assert_eq!(entries(), 1, "nothing deleted while held");
        assert!(r.inner.lock().running);
        drop(hold);
        r.wait_idle();
        assert_eq!(entries(), 0);
    }
}
