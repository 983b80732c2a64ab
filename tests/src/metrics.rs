//! The daemon's Prometheus endpoint: started on a loopback port the kernel picks
//! (`IMAGED_METRICS_LISTEN=127.0.0.1:0`), its address read from the daemon's log line
//! `metrics on http://ADDR/metrics` (logged before the daemon is ready).

use std::io::{Read, Write};

use crate::Daemon;

/// The environment entry that makes a daemon serve metrics on a port the kernel picks.
pub fn listen_env() -> (std::ffi::OsString, std::ffi::OsString) {
    ("IMAGED_METRICS_LISTEN".into(), "127.0.0.1:0".into())
}

/// The metrics address of `d` (started with [`listen_env`]).
pub fn address(d: &Daemon) -> String {
    let log = d.log();
    log.split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no metrics address in the daemon's log:\n{log}"))
        .to_owned()
}

/// The whole `/metrics` page at `addr`.
pub fn scrape(addr: &str) -> String {
    let mut body = String::new();
    std::net::TcpStream::connect(addr)
        .and_then(|mut conn| {
            conn.write_all(
                b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )?;
            conn.read_to_string(&mut body)
        })
        .unwrap_or_else(|e| panic!("metrics endpoint {addr}: {e}"));
    body
}

/// The value of the sample line that starts with `name` (a metric name with its labels,
/// e.g. `imaged_gc_runs_total`); 0 when there is none.
pub fn value(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
