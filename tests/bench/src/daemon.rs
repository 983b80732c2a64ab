//! A real `imaged` process on a unix socket: start-up time (spawn → ready line), RSS,
//! graceful stop.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The line `imaged` prints on stdout once it accepts connections.
const READY_PREFIX: &str = "imaged ready: listening on ";
/// Longest start-up accepted (a 100k-image store on a loaded machine).
const START_LIMIT: Duration = Duration::from_secs(300);
/// Longest graceful stop accepted before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A running `imaged` (local or containers-storage store).
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Option<Child>,
    /// Spawn to ready line.
    pub startup: Duration,
}

/// Reads a `/proc/<pid>/status` field in kB, as bytes.
fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

impl Daemon {
    /// Starts `bin --store local --root root --listen unix://socket`, logging to `log`,
    /// and waits for the ready line.
    pub(crate) fn start(bin: &Path, root: &Path, socket: &Path, log: &Path) -> Result<Self> {
        let store = [
            OsString::from("--store"),
            OsString::from("local"),
            OsString::from("--root"),
            root.as_os_str().to_owned(),
        ];
        Self::start_with(bin, &store, socket, log)
    }

    /// Starts `bin <store_args> --listen unix://socket` (`store_args` select the store:
    /// `--store containers-storage --root … --runroot … --storage-driver …`), logging to
    /// `log`, and waits for the ready line.
    pub(crate) fn start_with(
        bin: &Path,
        store_args: &[OsString],
        socket: &Path,
        log: &Path,
    ) -> Result<Self> {
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let t0 = Instant::now();
        let mut child = Command::new(bin)
            .args(store_args)
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            // `IMAGED_BENCH_LOG` (e.g. `imaged_core=debug`) profiles a run from the daemon's
            // log, kept with `--keep`; warnings only otherwise.
            .env(
                "IMAGED_LOG",
                std::env::var("IMAGED_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .env_remove("IMAGED_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.starts_with(READY_PREFIX) {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        let mut daemon = Self {
            child: Some(child),
            startup: Duration::ZERO,
        };
        match rx.recv_timeout(START_LIMIT) {
            Ok(at) => daemon.startup = at - t0,
            Err(_) => {
                daemon.kill();
                bail!(
                    "imaged printed no ready line within {START_LIMIT:?}; see {}",
                    log.display()
                );
            }
        }
        Ok(daemon)
    }

    fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("the daemon is not running")
    }

    /// Resident set size now, in bytes.
    pub(crate) fn rss(&self) -> Result<u64> {
        proc_status_kb(self.pid()?, "VmRSS:")
    }

    /// Peak resident set size so far, in bytes.
    pub(crate) fn peak_rss(&self) -> Result<u64> {
        proc_status_kb(self.pid()?, "VmHWM:")
    }

    /// SIGTERM, then waits for the exit (SIGKILL after [`STOP_LIMIT`]).
    pub(crate) fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .context("sending SIGTERM to imaged")?;
        let t = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("imaged exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            if t.elapsed() > STOP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("imaged did not stop within {STOP_LIMIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL (as a crash), then waits for the exit.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
