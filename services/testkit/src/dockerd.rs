//! A private Docker engine for tests: Debian's `dockerd` 20.10 (package `docker.io`), run
//! as root with the vfs storage driver, no iptables and no bridge, its data root, exec
//! root, pid file and API socket in a temporary directory, so it shares nothing with a
//! Docker the machine may run. Stopped (SIGTERM, then SIGKILL) on drop, with the
//! containerd it started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest start-up accepted.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Longest graceful stop before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// A running private `dockerd`.
#[derive(Debug)]
pub struct Dockerd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Dockerd {
    /// Starts one; the error says why not (not root, `docker.io` missing, …).
    pub fn start() -> Result<Self, String> {
        if !nix_is_root() {
            return Err("dockerd needs root".to_owned());
        }
        // A short path: containerd's socket under the exec root must fit a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("dk-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("temporary directory: {e}"))?;
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log"))
            .map_err(|e| format!("dockerd log: {e}"))?;
        let child = Command::new("dockerd")
            .args([
                "--storage-driver=vfs",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
            ])
            .arg(format!("--data-root={}", dir.path().join("data").display()))
            .arg(format!("--exec-root={}", dir.path().join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("dockerd.pid").display()
            ))
            .arg(format!("--host=unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting dockerd (apt-get install docker.io): {e}"))?;
        let mut d = Self {
            child: Some(child),
            dir,
            socket,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(c) = d.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(format!("dockerd exited ({status}):\n{}", d.log()));
            }
            if d.socket.exists() && d.docker(&["version"]).status.success() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "dockerd did not answer within {START_LIMIT:?}:\n{}",
                    d.log()
                ));
            }
            // Polling for the API: dockerd has no readiness signal.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `docker -H unix://<socket> <args>` (the `docker` on `PATH`).
    pub fn docker_cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker <args>` on this engine; the output whatever the status.
    pub fn docker<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        match self.docker_cmd(args).output() {
            Ok(o) => o,
            Err(e) => panic!("running docker (apt-get install docker.io): {e}"),
        }
    }

    /// The engine's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Removes every container and image (between scenarios).
    pub fn reset(&self) -> Result<(), String> {
        let ids = |args: &[&str]| -> Vec<String> {
            String::from_utf8_lossy(&self.docker(args).stdout)
                .lines()
                .map(str::to_owned)
                .filter(|l| !l.is_empty())
                .collect()
        };
        let containers = ids(&["ps", "-aq", "--no-trunc"]);
        if !containers.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(containers.iter().map(String::as_str));
            self.check(&args)?;
        }
        let images = ids(&["images", "-aq", "--no-trunc"]);
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            let mut unique = images.clone();
            unique.sort();
            unique.dedup();
            args.extend(unique.iter().map(String::as_str));
            self.check(&args)?;
        }
        Ok(())
    }

    fn check(&self, args: &[&str]) -> Result<(), String> {
        let out = self.docker(args);
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // A graceful stop: dockerd then stops the containerd it started.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                // Waiting for the engine (and its containerd) to stop.
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // A data root the vfs driver filled: removed with the temporary directory.
    }
}

fn nix_is_root() -> bool {
    // The effective user of this process, as `id -u` reports it.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
