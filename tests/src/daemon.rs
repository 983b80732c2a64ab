//! A real `imaged` process on a unix socket in a temporary directory.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::process::{self, Run};
use crate::tools;

/// The line `imaged` prints on stdout once it accepts connections.
pub const READY_PREFIX: &str = "imaged ready: listening on ";

/// How long a start may take before the test fails (a debug build on a loaded 2-core CI
/// machine; no sleeping: the ready line ends the wait as soon as it arrives).
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How long one `imagectl` call may take.
const CLI_LIMIT: Duration = Duration::from_secs(120);

/// A running `imaged` with its own scratch directory (socket, store root, archives, log).
/// Dropping it stops the daemon (SIGTERM, then SIGKILL if it does not exit in time).
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    store: String,
    url: String,
    stdout: Option<thread::JoinHandle<Vec<String>>>,
    /// Store flags replacing `--root <dir>/root` (a store outside the scratch directory,
    /// e.g. `--root R --runroot RR --storage-driver vfs` of a podman store), and extra
    /// environment for the daemon; kept for [`Daemon::restart`].
    custom: Option<Custom>,
}

/// Store flags and environment of a daemon on a store it does not own.
#[derive(Debug, Clone, Default)]
pub struct Custom {
    /// Arguments after `--store <kind>` (instead of `--root <dir>/root`).
    pub args: Vec<std::ffi::OsString>,
    /// Environment variables set for the daemon (after the `IMAGED_*` scrub).
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl Daemon {
    /// Starts `imaged --store <store>` (`memory` or `local`) in a fresh directory and waits
    /// for its ready line.
    pub fn start(store: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("imaged-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        Self::start_in(dir, store, None)
    }

    /// Starts `imaged --store <store> <custom.args…>` with `custom.env` in a fresh scratch
    /// directory (socket, log) on a store the caller owns, e.g. a podman store:
    /// `--store containers-storage --root R --runroot RR --storage-driver vfs`.
    pub fn start_custom(store: &str, custom: Custom) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("imaged-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("create a temporary directory: {e}"));
        Self::start_in(dir, store, Some(custom))
    }

    /// Starts the daemon again on the same directory and store root (after [`stop`]), e.g.
    /// to check what a `local` store kept.
    ///
    /// [`stop`]: Daemon::stop
    pub fn restart(mut self) -> Self {
        self.stop();
        let dir = std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().unwrap_or_else(|e| panic!("create a temporary directory: {e}")),
        );
        let store = self.store.clone();
        let custom = self.custom.take();
        Self::start_in(dir, &store, custom)
    }

    fn start_in(dir: tempfile::TempDir, store: &str, custom: Option<Custom>) -> Self {
        let bin = tools::target_binary("imaged");
        let socket = dir.path().join("imaged.sock");
        let root = dir.path().join("root");
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.path().join("imaged.log"))
            .unwrap_or_else(|e| panic!("create the daemon log: {e}"));
        let mut cmd = Command::new(&bin);
        cmd.arg("--store").arg(store);
        match &custom {
            Some(c) => cmd.args(&c.args),
            None => cmd.arg("--root").arg(&root),
        };
        cmd.arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        tools::scrub_imaged_env(&mut cmd);
        if let Some(c) = &custom {
            cmd.envs(c.env.iter().map(|(k, v)| (k, v)));
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let pipe = child.stdout.take();
        let stdout = thread::spawn(move || {
            let mut seen = Vec::new();
            let mut ready = Some(ready_tx);
            if let Some(pipe) = pipe {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Some(url) = line.strip_prefix(READY_PREFIX)
                        && let Some(tx) = ready.take()
                    {
                        let _ = tx.send(url.trim().to_owned());
                    }
                    seen.push(line);
                }
            }
            seen
        });
        let mut daemon = Self {
            child: Some(child),
            dir,
            store: store.to_owned(),
            url: String::new(),
            stdout: Some(stdout),
            custom,
        };
        match ready_rx.recv_timeout(START_LIMIT) {
            Ok(url) => daemon.url = url,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = daemon.stop();
                panic!(
                    "imaged exited before printing its ready line ({status:?})\n--- stdout ---\n{}\n--- log ---\n{}",
                    daemon.stdout_lines().join("\n"),
                    daemon.log()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                daemon.stop();
                panic!(
                    "imaged printed no ready line within {START_LIMIT:?}\n{}",
                    daemon.log()
                );
            }
        }
        let expected = format!("unix://{}", socket.display());
        assert_eq!(daemon.url, expected, "ready line names another address");
        assert!(
            socket.exists(),
            "ready line printed but {} does not exist",
            socket.display()
        );
        daemon
    }

    /// `unix:///…/imaged.sock`, as printed in the ready line.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The socket's path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("imaged.sock")
    }

    /// The scratch directory (archives written by tests go here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store's data directory (`--root`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The store kind the daemon was started with.
    pub fn store(&self) -> &str {
        &self.store
    }

    /// Writes `bytes` to `name` in the scratch directory and returns the path.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Runs the real `imagectl` with `IMAGED_HOST` set to this daemon.
    pub fn imagectl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        let mut cmd = Command::new(tools::target_binary("imagectl"));
        tools::scrub_imaged_env(&mut cmd);
        cmd.env("IMAGED_HOST", &self.url).args(args);
        process::run(&mut cmd, CLI_LIMIT)
    }

    /// What the daemon logged (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("imaged.log")).unwrap_or_default()
    }

    /// Stops the daemon: SIGTERM, wait; SIGKILL when it does not exit within the limit.
    /// Returns its exit status (`None` if it had already been stopped or was killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        process::signal(child.id(), "TERM");
        match process::wait_for(&mut child, STOP_LIMIT) {
            Some(status) => Some(status),
            None => {
                eprintln!("imaged did not stop within {STOP_LIMIT:?} after SIGTERM; killed");
                None
            }
        }
    }

    /// The daemon's process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the daemon with SIGKILL (a crash: no drain, the socket file stays behind).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::signal(child.id(), "KILL");
            let _ = process::wait_for(&mut child, STOP_LIMIT);
        }
    }

    /// Everything the daemon printed on stdout (complete once it has stopped).
    pub fn stdout_lines(&mut self) -> Vec<String> {
        if self.child.is_some() {
            return Vec::new();
        }
        self.stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let status = self.stop();
        if thread::panicking() {
            eprintln!(
                "--- imaged ({} store, {}) exit {status:?}; log ---\n{}",
                self.store,
                self.url,
                self.log()
            );
        }
    }
}
