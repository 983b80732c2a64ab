//! What the registry client's integration tests share: a client for insecure test
//! registries, an engine on a memory store, a pull that ignores progress, and the few
//! HTTP/1.1 pieces their proxies parse requests and answers with.

use std::io::BufRead;
use std::sync::Arc;

use imaged_core::transfer::{Cancel, PullOutcome, PullRequest, Registry};
use imaged_core::{Engine, EngineConfig, MemoryStore, Store};
use imaged_registry::{Options, RegistryClient};
use imaged_testkit::archive::ArchiveOptions;

/// Archives with gzip-compressed layers.
pub(crate) fn gz() -> ArchiveOptions {
    ArchiveOptions {
        gzip_layers: true,
        ..ArchiveOptions::default()
    }
}

/// A client allowed plain HTTP to `hosts`.
pub(crate) fn client(hosts: &[&str]) -> RegistryClient {
    RegistryClient::new(Options {
        insecure_registries: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..Options::default()
    })
    .unwrap()
}

/// An engine on a fresh memory store, and the store.
pub(crate) fn mem_engine() -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (
        Engine::new(
            Arc::clone(&store) as Arc<dyn Store>,
            EngineConfig::default(),
        ),
        store,
    )
}

/// Pulls `r` into `e`, progress dropped, never cancelled.
pub(crate) fn pull(
    c: &RegistryClient,
    e: &Engine,
    r: &PullRequest,
) -> imaged_core::Result<PullOutcome> {
    c.pull(e, r, &mut |_| {}, &Cancel::new())
}

/// The header lines of one HTTP/1.1 message (empty at the end of the stream).
pub(crate) fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// The value of header `name` (any case) among `head`'s lines.
pub(crate) fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
