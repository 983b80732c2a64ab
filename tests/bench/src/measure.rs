//! Measurements against a running imaged, client-observed, through `imaged-client` on
//! the daemon's unix socket.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use imaged_client::{Client, proto};
use imaged_testkit::archive::{self as synth, SynthImage};

use crate::scenario::{ContainerPlan, Format, Scenario};
use crate::stats::Summary;

/// Bytes and time of a series of LoadImages calls (archive generation excluded).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadStats {
    /// Archive bytes sent.
    pub bytes: u64,
    /// Image records the loads reported.
    pub images: usize,
    /// LoadImages calls.
    pub calls: usize,
    /// Sum of the calls' durations.
    pub time: Duration,
}

impl LoadStats {
    /// Megabytes (10^6) per second.
    pub(crate) fn mb_per_s(&self) -> f64 {
        if self.time.is_zero() {
            return 0.0;
        }
        self.bytes as f64 / 1e6 / self.time.as_secs_f64()
    }
}

fn to_proto_format(f: Format) -> proto::ArchiveFormat {
    match f {
        Format::Docker => proto::ArchiveFormat::Docker,
        Format::Oci => proto::ArchiveFormat::Oci,
    }
}

/// One LoadImages call of `bytes`; gives the IDs it reported and the call's duration.
pub(crate) async fn load_one(
    client: &Client,
    bytes: Vec<u8>,
    format: Format,
) -> Result<(Vec<String>, Duration)> {
    let t = Instant::now();
    let resp = client
        .load(
            std::io::Cursor::new(bytes),
            to_proto_format(format),
            Vec::new(),
            |_| {},
        )
        .await
        .context("LoadImages")?;
    let d = t.elapsed();
    Ok((resp.images.into_iter().map(|i| i.id).collect(), d))
}

/// Loads every archive of `scenario` through LoadImages, one call per archive, in order.
pub(crate) async fn load_scenario(client: &Client, scenario: &Scenario) -> Result<LoadStats> {
    let mut stats = LoadStats::default();
    for archive in scenario.archives(None) {
        stats.bytes += archive.bytes.len() as u64;
        let (ids, d) = load_one(client, archive.bytes, archive.format).await?;
        stats.images += ids.len();
        stats.calls += 1;
        stats.time += d;
    }
    Ok(stats)
}

/// Registers the planned containers (states: running / stopped / created).
pub(crate) async fn register_containers(client: &Client, plans: &[ContainerPlan]) -> Result<()> {
    for (k, c) in plans.iter().enumerate() {
        let state = if c.running {
            proto::ContainerState::Running
        } else if k % 2 == 0 {
            proto::ContainerState::Stopped
        } else {
            proto::ContainerState::Created
        };
        client
            .register_container(proto::RegisterContainerRequest {
                id: String::new(),
                image: c.image_id.clone(),
                state: state as i32,
                external: c.external,
                name: c.name.clone(),
            })
            .await
            .with_context(|| format!("RegisterContainer on {}", c.image_id))?;
    }
    Ok(())
}

/// An archive of `count` images with one `layer_mib` MiB layer of random (incompressible)
/// bytes each, for LoadImages throughput.
pub(crate) fn throughput_archive(count: usize, layer_mib: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(42);
    let imgs: Vec<SynthImage> = (0..count)
        .map(|i| {
            let mut img = SynthImage::new(&format!("throughput{i}"))
                .named(&format!("registry.example.com/bench/throughput{i}:v1"));
            let mut data = vec![0u8; layer_mib << 20];
            rng.fill(&mut data);
            img.layers[0] = data;
            img
        })
        .collect();
    synth::docker_archive(&imgs, false)
}

/// Every page of one ListImages query, and the time from the first request to the last
/// page decoded (the client's [`Client::list_pages`], as `imagectl ls` lists).
pub(crate) async fn list_pages(
    client: &Client,
    req: proto::ListImagesRequest,
) -> Result<(Vec<proto::ListImagesResponse>, Duration)> {
    let t = Instant::now();
    let pages = client.list_pages(req).await.context("ListImages")?;
    Ok((pages, t.elapsed()))
}

/// A ListImages query over all pages, run `repeats` times after one warm-up run: the
/// summary, the number of images, and the pages of the last run.
pub(crate) async fn list_runs(
    client: &Client,
    req: &proto::ListImagesRequest,
    repeats: usize,
) -> Result<(Summary, usize, Vec<proto::ListImagesResponse>)> {
    let (mut pages, _) = list_pages(client, req.clone()).await?;
    let mut samples = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let (p, d) = list_pages(client, req.clone()).await?;
        samples.push(d);
        pages = p;
    }
    let n = pages.iter().map(|p| p.images.len()).sum();
    Ok((Summary::of(&samples), n, pages))
}

/// One RemoveImage per reference, sequentially; failures are counted, not fatal (the
/// summary covers the successful calls).
pub(crate) async fn remove_each(client: &Client, refs: &[String]) -> (Summary, usize) {
    let mut samples = Vec::with_capacity(refs.len());
    let mut failures = 0;
    for r in refs {
        let t = Instant::now();
        let res = client
            .remove_image(proto::RemoveImageRequest {
                reference: r.clone(),
                ..Default::default()
            })
            .await;
        let d = t.elapsed();
        match res {
            Ok(_) => samples.push(d),
            Err(e) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("  RemoveImage {r}: {e}");
                }
            }
        }
    }
    (Summary::of(&samples), failures)
}

/// One PruneImages call: its duration and the number of images it deleted.
pub(crate) async fn prune(client: &Client, all: bool) -> Result<(Duration, usize)> {
    let t = Instant::now();
    let resp = client
        .prune_images(proto::PruneImagesRequest {
            all,
            ..Default::default()
        })
        .await
        .context("PruneImages")?;
    Ok((t.elapsed(), resp.deleted_images.len()))
}
