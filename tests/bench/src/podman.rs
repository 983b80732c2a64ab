//! podman side by side: the same logical scenario in a private podman vfs store
//! (`--root` / `--runroot` in the work directory, never the host's store), and the
//! podman commands of the issue timed as whole processes.
//!
//! The scenario is loaded with `podman load` of docker-archives (one per family: the same
//! images as imaged's archives). A manifest list is rebuilt with `podman manifest create`
//! and `podman manifest add containers-storage:<instance>` after loading its instances.
//! Containers are `podman create`d (podman cannot hold a "running" container without
//! running it, so all of them are in state created).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use imaged_testkit::archive as synth;

use crate::procs;
use crate::scenario::Scenario;

/// A private podman store.
#[derive(Debug)]
pub(crate) struct Podman {
    root: PathBuf,
    runroot: PathBuf,
    tmp: PathBuf,
    /// podman refuses a run root longer than 50 characters: it lives in a short temporary
    /// directory of its own, removed with this value.
    _short: tempfile::TempDir,
}

/// What loading the scenario into podman did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PodmanSetup {
    /// Wall-clock time of every `podman load`, `manifest` and `create`.
    pub time: Duration,
    /// Manifest lists that could not be rebuilt.
    pub list_failures: usize,
    /// Images `podman images -a -q` counts after the setup.
    pub images: usize,
}

/// Whether a `podman` binary answers `--version`.
pub(crate) fn available() -> bool {
    Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl Podman {
    /// A store under `dir` (created).
    pub(crate) fn new(dir: &Path) -> Result<Self> {
        let short = tempfile::Builder::new()
            .prefix("ibp")
            .tempdir_in("/tmp")
            .context("creating a short directory for podman's run root")?;
        let p = Self {
            root: dir.join("root"),
            runroot: short.path().join("run"),
            tmp: dir.join("tmp"),
            _short: short,
        };
        for d in [&p.root, &p.runroot, &p.tmp] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        Ok(p)
    }

    /// `podman --root … --runroot … --storage-driver vfs <args>`.
    pub(crate) fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--storage-driver")
            .arg("vfs")
            .args(args)
            .env("TMPDIR", &self.tmp);
        c
    }

    /// Loads the scenario (docker-archives), rebuilds its manifest lists, creates its
    /// containers.
    pub(crate) fn setup(&self, scenario: &Scenario) -> Result<PodmanSetup> {
        let mut setup = PodmanSetup::default();
        let file = self.tmp.join("family.tar");
        let t = Instant::now();
        for fam in &scenario.families {
            let built = fam.build();
            let imgs: Vec<_> = built.images.iter().map(|(i, _)| i.clone()).collect();
            std::fs::write(&file, synth::docker_archive(&imgs, false))?;
            procs::output(self.cmd(["load", "-q", "-i"]).arg(&file))?;
            if let Some((name, instances)) = &built.list {
                std::fs::write(&file, synth::docker_archive(instances, false))?;
                procs::output(self.cmd(["load", "-q", "-i"]).arg(&file))?;
                let made = procs::output(&mut self.cmd(["manifest", "create", name.as_str()]))
                    .and_then(|_| {
                        for i in instances {
                            procs::output(&mut self.cmd([
                                "manifest",
                                "add",
                                name.as_str(),
                                &format!("containers-storage:{}", i.id().hex()),
                            ]))?;
                        }
                        Ok(())
                    });
                if let Err(e) = made {
                    setup.list_failures += 1;
                    if setup.list_failures == 1 {
                        eprintln!("  podman manifest list {name}: {e:#}");
                    }
                }
            }
        }
        for c in &scenario.containers {
            let id = c.image_id.trim_start_matches("sha256:");
            procs::output(&mut self.cmd([
                "create",
                "--name",
                c.name.as_str(),
                "--network",
                "none",
                id,
                "/bin/true",
            ]))?;
        }
        setup.time = t.elapsed();
        let ids = procs::output(&mut self.cmd(["images", "-a", "-q", "--no-trunc"]))?;
        setup.images = ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<std::collections::HashSet<_>>()
            .len();
        Ok(setup)
    }
}
