//! Following the store's files. When another program (podman, buildah, skopeo, CRI-O)
//! replaces one of c/storage's JSON files, the changed records are read in the background
//! as soon as that program's write session ends ([`View::read_ahead`]), so the next
//! request finds them read instead of reading them on its own time. Nothing is published
//! by the watcher: the request publishes what was read only if the files have not moved
//! since and no writer holds a lock then, so a request sees exactly what it would have
//! read itself (in particular never a state between two of another program's write
//! sessions that it could not have read, like a `podman load`'s image before its names).
//! A missed notification, or a filesystem without inotify, only costs the reading.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Weak;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::driver::Paths;
use crate::view::View;

/// The files whose replacement means the store changed.
const FILES: [&str; 4] = [
    "layers.json",
    "images.json",
    "containers.json",
    "mountpoints.json",
];

/// The directories holding [`FILES`].
pub(crate) fn watched_dirs(paths: &Paths) -> Vec<PathBuf> {
    let mut dirs = vec![
        paths.layers_dir(),
        paths.images_dir(),
        paths.containers_dir(),
    ];
    dirs.extend(paths.run_layers_dir());
    dirs
}

/// The background refresher; dropping it stops its thread.
#[derive(Debug)]
pub(crate) struct Watcher {
    /// Its peer, polled by the thread, reads end-of-file once this is dropped.
    _stop: UnixStream,
}

impl Watcher {
    /// Watches `dirs` and refreshes `view` after each change; `None` when the filesystem
    /// or the process cannot (no inotify, no watch, no thread).
    pub(crate) fn spawn(view: Weak<View>, dirs: &[PathBuf]) -> Option<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| tracing::debug!(error = %e, "containers-storage: no inotify"))
            .ok()?;
        let mut watching = false;
        for d in dirs {
            match inotify.add_watch(
                d,
                AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
            ) {
                Ok(_) => watching = true,
                Err(e) => {
                    tracing::debug!(dir = %d.display(), error = %e, "containers-storage: not watched");
                }
            }
        }
        if !watching {
            return None;
        }
        let (stop, stopped) = UnixStream::pair().ok()?;
        std::thread::Builder::new()
            .name("cstorage-watch".into())
            .spawn(move || run(&inotify, &stopped, &view))
            .map_err(|e| tracing::debug!(error = %e, "containers-storage: no watcher thread"))
            .ok()?;
        Some(Self { _stop: stop })
    }
}

fn run(inotify: &Inotify, stopped: &UnixStream, view: &Weak<View>) {
    loop {
        let mut fds = [
            PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
            PollFd::new(stopped.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        // Every pending event at once: a podman command replaces several files.
        let mut changed = false;
        while let Ok(events) = inotify.read_events() {
            changed |= events.iter().any(|e| {
                e.name
                    .as_deref()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| FILES.contains(&n))
            });
        }
        if !changed {
            continue;
        }
        let Some(view) = view.upgrade() else {
            return;
        };
        // Wait for the writer's session to end (c/storage takes layers.lock first and
        // releases it last), holding nothing else; then read what moved.
        if let Ok(guard) = view.locks.layers.read() {
            drop(guard);
        }
        view.read_ahead();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config::Driver;
    use crate::snapshot::{Locks, Snapshot};

    #[test]
    fn a_change_by_another_program_is_read_ahead_and_published_by_the_next_request() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: d.path().join("root"),
            run: Some(d.path().join("run")),
            driver: Driver::Vfs,
        };
        let locks = Locks::open(&paths, &[]).unwrap();
        let view = Arc::new(View::new(locks, Snapshot::new(paths.clone(), vec![], None)));
        view.refresh();
        assert!(view.current().is_empty());
        let watcher = Watcher::spawn(Arc::downgrade(&view), &watched_dirs(&paths)).unwrap();

        // Another program replaces images.json (c/storage: a temporary, then a rename).
        let id = "a".repeat(64);
        let json = paths.images_dir().join("images.json");
        let tmp = paths.images_dir().join(".tmp-images.json1");
        std::fs::write(
            &tmp,
            format!(r#"[{{"id":"{id}","names":["localhost/x:1"]}}]"#),
        )
        .unwrap();
        std::fs::rename(&tmp, &json).unwrap();

        // Nothing here reads the store: only the watcher can.
        let deadline = Instant::now() + Duration::from_secs(20);
        while view.lock_snap().catalog.is_empty() {
            assert!(Instant::now() < deadline, "the change was never read");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(view.current().is_empty(), "read ahead, not published");
        // The next request publishes it without reading (the files have not moved).
        let read = Arc::clone(&view.lock_snap().catalog);
        let got = view.refresh();
        assert!(Arc::ptr_eq(&got, &read));
        assert!(view.current().image_by_name("localhost/x:1").is_some());

        // While a writer holds the locks, a state read ahead is not published: the next
        // request serves the published catalog, as it would without the watcher.
        let std_lock = view.locks.layers.write().unwrap();
        let json2 = format!(
            r#"[{{"id":"{}","names":["localhost/y:1"]}}]"#,
            "c".repeat(64)
        );
        std::fs::write(&tmp, json2).unwrap();
        std::fs::rename(&tmp, &json).unwrap();
        let mut snap = view.lock_snap();
        let probe = snap.probe(&view.locks);
        snap.reload(probe).unwrap();
        drop(snap);
        assert!(view.refresh().image_by_name("localhost/x:1").is_some());
        drop(std_lock);
        assert!(view.refresh().image_by_name("localhost/y:1").is_some());
        drop(watcher);
    }
}
