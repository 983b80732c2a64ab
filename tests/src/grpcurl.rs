//! grpcurl against a [`Daemon`], with reflection as the only source of descriptors.
//!
//! grpcurl 1.8 sends the socket path as the HTTP/2 `:authority` over a unix socket; the
//! daemon accepts it (SPEC §10). [`grpcurl`] passes `-authority localhost` (the form older
//! daemons needed), [`grpcurl_default`] passes nothing.

use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;
use crate::process::{self, Run};
use crate::tools;

const LIMIT: Duration = Duration::from_secs(60);

/// `grpcurl -plaintext -unix -authority localhost <extra…> <socket> <args…>`.
pub fn grpcurl(daemon: &Daemon, extra: &[&str], args: &[&str]) -> Run {
    let mut cmd = Command::new(tools::grpcurl());
    cmd.args(["-plaintext", "-unix", "-authority", "localhost"])
        .args(extra)
        .arg(daemon.socket())
        .args(args);
    process::run(&mut cmd, LIMIT)
}

/// `grpcurl -plaintext -unix <extra…> <socket> <args…>`: the authority grpcurl chooses
/// (the socket path).
pub fn grpcurl_default(daemon: &Daemon, extra: &[&str], args: &[&str]) -> Run {
    let mut cmd = Command::new(tools::grpcurl());
    cmd.args(["-plaintext", "-unix"])
        .args(extra)
        .arg(daemon.socket())
        .args(args);
    process::run(&mut cmd, LIMIT)
}

/// Calls `method` (`package.Service/Method`) with the JSON request `body`.
pub fn call(daemon: &Daemon, method: &str, body: &str) -> Run {
    grpcurl(daemon, &["-d", body], &[method])
}

/// Calls `method` and parses its JSON response; panics with the output on failure.
#[track_caller]
pub fn call_json(daemon: &Daemon, method: &str, body: &str) -> serde_json::Value {
    let run = call(daemon, method, body);
    run.ok();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("grpcurl printed no JSON ({e}):\n{run}"))
}
