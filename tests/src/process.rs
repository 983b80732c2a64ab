//! Running a command to completion with a time limit and capturing what it printed.

use std::fmt;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Run {
    /// The exit code (`-1` when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.success(), "command failed:\n{self}");
        self
    }

    /// Panics with the whole output unless the command exited with `code`.
    #[track_caller]
    pub fn exit(&self, code: i32) -> &Self {
        assert_eq!(self.code(), code, "unexpected exit code:\n{self}");
        self
    }

    /// Panics unless standard error contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self}"
        );
        self
    }

    /// Panics unless standard output contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self}"
        );
        self
    }

    /// The non-empty lines of standard output, trimmed at the end.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\n[exit {}]\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` with standard input closed, capturing both outputs; kills it and panics
/// when it runs longer than `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Run {
    let cmdline = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_for(&mut child, limit).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`{cmdline}` did not finish within {limit:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            collect(&out),
            collect(&err)
        )
    });
    Run {
        cmdline,
        status,
        stdout: collect(&out),
        stderr: collect(&err),
    }
}

/// Waits for `child` at most `limit`; `None` when it is still running then. The wait
/// happens on a helper thread, so there is no polling.
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(limit) {
            Ok(Ok(status)) => Some(status),
            Ok(Err(e)) => panic!("waiting for process {pid}: {e}"),
            Err(_) => {
                // Unblock the waiting thread before the scope joins it.
                signal(pid, "KILL");
                let _ = rx.recv();
                None
            }
        }
    })
}

/// Sends `SIGNAL` (a name such as `TERM`) to `pid` with kill(1); the workspace forbids
/// `unsafe`, so no libc call.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The output of a finished process; a grandchild that kept the pipe open does not make
/// the caller hang (its output after the limit is lost).
fn collect(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| "<output pipe still held open by another process>".to_owned())
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '"', '\'', '{']) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}
