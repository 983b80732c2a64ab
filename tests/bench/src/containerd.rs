//! containerd side by side: a private containerd (Debian's `containerd` package, run as
//! root; root, state and socket in the work directory; CRI plugin disabled; layers
//! unpacked with the `native` snapshotter), the scenario imported with `ctr images
//! import`, and its `containerd.services.images.v1.Images/List` and `Delete` timed over
//! gRPC with tonic, like imaged's calls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tonic::transport::Channel;

use crate::grpc::containerd::services::images::v1 as pb;
use crate::grpc::{self, containerd::services::images::v1::images_client::ImagesClient};
use crate::procs;
use crate::scenario::{Format, Scenario};
use crate::stats::Summary;

/// The namespace the scenario is imported into.
const NAMESPACE: &str = "imaged-bench";

/// A running private containerd.
#[derive(Debug)]
pub(crate) struct Containerd {
    child: Option<Child>,
    socket: PathBuf,
    tmp: PathBuf,
}

/// Whether `containerd` and `ctr` are installed and we are root.
pub(crate) fn available() -> bool {
    let ok = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    nix::unistd::geteuid().is_root() && ok("containerd") && ok("ctr")
}

/// Adds the namespace header to a request.
fn namespaced<T>(msg: T) -> Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut()
        .insert("containerd-namespace", NAMESPACE.parse()?);
    Ok(req)
}

impl Containerd {
    /// Starts containerd with everything under `dir`, and waits until its socket answers.
    pub(crate) async fn start(dir: &Path) -> Result<Self> {
        let socket = dir.join("containerd.sock");
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = socket.display(),
            ),
        )?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let mut me = Self {
            child: Some(child),
            socket,
            tmp,
        };
        let t = Instant::now();
        loop {
            if me.socket.exists() && grpc::unix_channel(&me.socket).await.is_ok() {
                break;
            }
            if let Some(c) = me.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                me.child = None;
                bail!(
                    "containerd exited at start-up ({status}); see {}/containerd.log",
                    dir.display()
                );
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!(
                    "containerd did not open {} within 30 s",
                    me.socket.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(me)
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(NAMESPACE)
            .env("TMPDIR", &self.tmp);
        c
    }

    /// Imports the scenario's images with `ctr images import --snapshotter native
    /// --all-platforms`: docker-archives of 20 families each (a `ctr` process costs about a
    /// second, most of it per call), and each manifest list's OCI index.
    pub(crate) fn import(&self, scenario: &Scenario) -> Result<Duration> {
        let file = self.tmp.join("import.tar");
        let t = Instant::now();
        for a in scenario.batched_archives(20) {
            std::fs::write(&file, &a.bytes)?;
            let mut c = self.ctr();
            c.args([
                "images",
                "import",
                "--snapshotter",
                "native",
                "--all-platforms",
            ]);
            if a.format == Format::Docker {
                // Unnamed images of a docker-archive get `import-…@sha256:` names.
                c.arg("--digests");
            }
            procs::output(c.arg(&file))?;
        }
        Ok(t.elapsed())
    }

    /// A channel to the containerd socket.
    pub(crate) async fn channel(&self) -> Result<Channel> {
        grpc::unix_channel(&self.socket).await
    }

    /// `Images/List` (no filter) `repeats` times after a warm-up: the summary and the
    /// number of images listed.
    pub(crate) async fn list(
        channel: &Channel,
        repeats: usize,
    ) -> Result<(Summary, usize, Vec<String>)> {
        let mut client = ImagesClient::new(channel.clone()).max_decoding_message_size(256 << 20);
        let first = client
            .list(namespaced(pb::ListImagesRequest { filters: vec![] })?)
            .await
            .context("containerd Images/List")?
            .into_inner();
        let names = first.images.iter().map(|i| i.name.clone()).collect();
        let mut samples = Vec::with_capacity(repeats);
        let mut n = first.images.len();
        for _ in 0..repeats {
            let t = Instant::now();
            let resp = client
                .list(namespaced(pb::ListImagesRequest { filters: vec![] })?)
                .await
                .context("containerd Images/List")?;
            samples.push(t.elapsed());
            n = resp.into_inner().images.len();
        }
        Ok((Summary::of(&samples), n, names))
    }

    /// One `Images/Delete` (sync = false, as `ctr images rm`) per name.
    pub(crate) async fn delete_each(
        channel: &Channel,
        names: &[String],
    ) -> Result<(Summary, usize)> {
        let mut client = ImagesClient::new(channel.clone());
        let mut samples = Vec::with_capacity(names.len());
        let mut failures = 0;
        for name in names {
            let req = namespaced(pb::DeleteImageRequest {
                name: name.clone(),
                sync: false,
                target: None,
            })?;
            let t = Instant::now();
            match client.delete(req).await {
                Ok(_) => samples.push(t.elapsed()),
                Err(e) => {
                    failures += 1;
                    if failures <= 3 {
                        eprintln!("  containerd Delete {name}: {e}");
                    }
                }
            }
        }
        Ok((Summary::of(&samples), failures))
    }

    /// SIGTERM and wait (SIGKILL after 30 s).
    pub(crate) fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        let t = Instant::now();
        while child.try_wait()?.is_none() {
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
        Ok(())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
