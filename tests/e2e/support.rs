//! Shared helpers of the e2e tests.

pub(crate) use imaged_tests::Daemon;
pub(crate) use imaged_tests::archive::{self, ImageSpec, Tamper};
pub(crate) use imaged_tests::listing::{Snapshot, snapshot};

/// Archive formats as the tests write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `docker-archive`, plain tar.
    Docker,
    /// `docker-archive`, gzip-compressed.
    DockerGz,
    /// `oci-archive`, plain tar (gzip layers inside).
    Oci,
    /// `oci-archive`, gzip-compressed.
    OciGz,
}

impl Format {
    /// The archive bytes of `images` in this format.
    pub(crate) fn bytes(self, images: &[ImageSpec]) -> Vec<u8> {
        match self {
            Format::Docker => archive::docker_archive(images),
            Format::DockerGz => archive::gzip(&archive::docker_archive(images)),
            Format::Oci => archive::oci_archive(images),
            Format::OciGz => archive::gzip(&archive::oci_archive(images)),
        }
    }
}

/// Writes `images` as a `format` archive into the daemon's scratch dir and runs
/// `imagectl load -i FILE`; panics unless it succeeds.
#[track_caller]
pub(crate) fn load(d: &Daemon, format: Format, images: &[ImageSpec]) -> imaged_tests::Run {
    let n = std::fs::read_dir(d.dir()).map(|r| r.count()).unwrap_or(0);
    let path = d.write_file(&format!("archive-{n}.tar"), &format.bytes(images));
    let run = d.imagectl(&["load", "-i", path.to_str().expect("utf-8 temp path")]);
    run.ok();
    run
}

/// Runs `imagectl load -i FILE` on raw bytes (for bad archives); returns the run.
pub(crate) fn load_bytes(d: &Daemon, name: &str, bytes: &[u8]) -> imaged_tests::Run {
    let path = d.write_file(name, bytes);
    d.imagectl(&["load", "-i", path.to_str().expect("utf-8 temp path")])
}

/// A daemon on a memory store.
pub(crate) fn memory() -> Daemon {
    Daemon::start("memory")
}

/// Defines one `#[test]` per store (`<name>_memory`, `<name>_local`) calling
/// `body(Daemon)`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn memory() {
                ($body)($crate::support::Daemon::start("memory"));
            }
            #[test]
            fn local() {
                ($body)($crate::support::Daemon::start("local"));
            }
        }
    };
}
