//! Pulls from a local registry (issue 13), same run, same registry: Debian's
//! `docker-registry` on 127.0.0.1 (plain HTTP), filled with skopeo from generated
//! archives.
//!
//! - **One 64 MiB image** (one gzip layer of random bytes, so it does not compress):
//!   `imagectl pull` into a daemon on an empty local store, `skopeo copy` into a fresh
//!   directory (`dir:`, no unpacking: the floor of fetching and verifying the blobs) and
//!   `podman pull` into a fresh overlay store. Whole processes, median of
//!   [`BIG_RUNS`] alternated runs; every run starts empty.
//! - **100 small images** on 10 shared bases (10 children each): imaged pulls them with
//!   [`CONCURRENCY`] PullImage calls in flight (as kubelet does with parallel pulls),
//!   and again one `imagectl pull` after another; podman pulls them one after another.
//!   One run each, into an empty store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imaged_client::{Client, proto};
use imaged_testkit::archive::{ArchiveOptions, SynthImage, oci_archive_with};
use imaged_testkit::podman::PodmanStore;
use imaged_testkit::registry::Registry;

use crate::daemon::Daemon;
use crate::stats::Summary;
use crate::{grpc, procs};

/// Size of the big image's layer.
pub(crate) const BIG_BYTES: usize = 64 << 20;
/// Timed runs of each side for the big image.
const BIG_RUNS: usize = 5;
/// Small images (10 bases × 10 children).
pub(crate) const MANY: usize = 100;
/// PullImage calls in flight for the small images.
pub(crate) const CONCURRENCY: usize = 8;

/// Settings of the pull comparison.
#[derive(Debug, Clone)]
pub(crate) struct PullConfig {
    /// The `imaged` binary.
    pub imaged: PathBuf,
    /// The `imagectl` binary.
    pub imagectl: PathBuf,
    /// Scratch directory.
    pub workdir: PathBuf,
}

/// What the pull comparison measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct PullResult {
    /// `imagectl pull` of the big image.
    pub imaged_big: Summary,
    /// `skopeo copy … dir:` of the big image.
    pub skopeo_big: Summary,
    /// `podman pull` of the big image.
    pub podman_big: Summary,
    /// imaged, the small images, [`CONCURRENCY`] calls in flight.
    pub imaged_many: Duration,
    /// imaged, the small images, one `imagectl pull` after another.
    pub imaged_many_serial: Duration,
    /// podman, the small images, one `podman pull` after another.
    pub podman_many: Duration,
    /// Anything that did not go as planned.
    pub notes: Vec<String>,
}

/// Runs the comparison.
pub(crate) async fn run(cfg: &PullConfig) -> Result<PullResult> {
    let reg = Registry::start();
    let host = reg.host().to_owned();
    eprintln!("pull: registry on {host}; pushing the images");
    let opts = ArchiveOptions {
        gzip_layers: true,
        ..ArchiveOptions::default()
    };
    let mut random = vec![0u8; BIG_BYTES];
    fastrand::fill(&mut random);
    let big = SynthImage::new("bench-pull-base").child(&random, "COPY big /big");
    drop(random);
    reg.push_archive(
        &oci_archive_with(std::slice::from_ref(&big), &opts),
        "bench/big:1",
        false,
    );
    let mut many = Vec::new();
    for b in 0..MANY / 10 {
        let base = SynthImage::new(&format!("bench-pull-family-{b}"));
        let family: Vec<SynthImage> = (0..10)
            .map(|c| base.child(format!("child {b}/{c}").as_bytes(), "RUN child"))
            .collect();
        for (c, img) in family.iter().enumerate() {
            let repo = format!("bench/app{b}-{c}:1");
            reg.push_archive(
                &oci_archive_with(std::slice::from_ref(img), &opts),
                &repo,
                false,
            );
            many.push(format!("{host}/{repo}"));
        }
    }
    let big_ref = format!("{host}/bench/big:1");
    let mut r = PullResult::default();
    let (mut ours, mut skopeo, mut podman) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..BIG_RUNS {
        eprintln!("pull: 64 MiB, run {}/{BIG_RUNS}", i + 1);
        ours.push(imaged_pull_big(cfg, &big_ref, i)?);
        skopeo.push(skopeo_pull_big(cfg, &big_ref, i)?);
        podman.push(podman_pull(&[big_ref.as_str()]).context("podman pull of the big image")?);
    }
    r.imaged_big = Summary::of(&ours);
    r.skopeo_big = Summary::of(&skopeo);
    r.podman_big = Summary::of(&podman);

    eprintln!("pull: {MANY} small images, imaged ({CONCURRENCY} in flight)");
    r.imaged_many = imaged_pull_many(cfg, &many).await?;
    eprintln!("pull: {MANY} small images, imagectl one after another");
    r.imaged_many_serial = imaged_pull_serial(cfg, &many)?;
    eprintln!("pull: {MANY} small images, podman one after another");
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    r.podman_many = podman_pull(&refs).context("podman pulls of the small images")?;
    Ok(r)
}

/// A daemon on an empty local store in a fresh directory under the scratch directory.
fn fresh_daemon(cfg: &PullConfig, tag: &str) -> Result<(Daemon, PathBuf)> {
    let dir = cfg.workdir.join(format!("pull-{tag}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let socket = dir.join("imaged.sock");
    let d = Daemon::start(
        &cfg.imaged,
        &dir.join("root"),
        &socket,
        &dir.join("imaged.log"),
    )?;
    Ok((d, socket))
}

fn imagectl(cfg: &PullConfig, socket: &Path) -> Command {
    let mut c = Command::new(&cfg.imagectl);
    c.arg("--host").arg(format!("unix://{}", socket.display()));
    c
}

fn imaged_pull_big(cfg: &PullConfig, reference: &str, run: usize) -> Result<Duration> {
    let (d, socket) = fresh_daemon(cfg, &format!("big-{run}"))?;
    let t =
        procs::time(imagectl(cfg, &socket).args(["pull", "-q", "--tls-verify=false", reference]))?;
    d.stop()?;
    Ok(t)
}

fn skopeo_pull_big(cfg: &PullConfig, reference: &str, run: usize) -> Result<Duration> {
    let dest = cfg.workdir.join(format!("pull-skopeo-{run}"));
    let t = procs::time(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("dir:{}", dest.display())),
    )
    .context("skopeo copy (apt-get install skopeo)")?;
    let _ = std::fs::remove_dir_all(&dest);
    Ok(t)
}

/// `podman pull` of each reference in turn into a fresh store; the total.
fn podman_pull(refs: &[&str]) -> Result<Duration> {
    let store = PodmanStore::new("overlay").map_err(anyhow::Error::msg)?;
    let mut total = Duration::ZERO;
    for r in refs {
        total += procs::time(&mut store.podman_cmd(["pull", "-q", "--tls-verify=false", r]))?;
    }
    store.unmount_all();
    Ok(total)
}

async fn imaged_pull_many(cfg: &PullConfig, refs: &[String]) -> Result<Duration> {
    let (d, socket) = fresh_daemon(cfg, "many")?;
    let channel = grpc::unix_channel(&socket).await?;
    let client = Arc::new(Client::from_channel(
        channel,
        None,
        format!("unix://{}", socket.display()),
    )?);
    let queue = Arc::new(std::sync::Mutex::new(refs.to_vec()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, queue) = (Arc::clone(&client), Arc::clone(&queue));
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().map_or(None, |mut q| q.pop());
                let Some(reference) = next else {
                    return Ok::<(), anyhow::Error>(());
                };
                client
                    .pull_wait(
                        proto::PullImageRequest {
                            reference: reference.clone(),
                            tls_verify: proto::TlsVerify::Disabled as i32,
                            ..Default::default()
                        },
                        |_| {},
                    )
                    .await
                    .with_context(|| format!("pulling {reference}"))?;
            }
        }));
    }
    for task in tasks {
        task.await.context("a pulling task")??;
    }
    let elapsed = t.elapsed();
    let listed = client
        .list_all(proto::ListImagesRequest::default())
        .await?
        .len();
    d.stop()?;
    if listed != refs.len() {
        bail!("imaged lists {listed} images after pulling {}", refs.len());
    }
    Ok(elapsed)
}

fn imaged_pull_serial(cfg: &PullConfig, refs: &[String]) -> Result<Duration> {
    let (d, socket) = fresh_daemon(cfg, "serial")?;
    let mut total = Duration::ZERO;
    for r in refs {
        total += procs::time(imagectl(cfg, &socket).args(["pull", "-q", "--tls-verify=false", r]))?;
    }
    d.stop()?;
    Ok(total)
}
