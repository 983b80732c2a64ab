//! One store size, start to end: build the store, start the real daemon, measure it and
//! its floors, then (optionally) podman and containerd on the same scenario.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use imaged_client::{Client, proto};
use tonic::transport::Channel;

use crate::daemon::Daemon;
use crate::results::{
    Build, ContainerdResult, ListResult, ProcTimes, PruneResult, RemoveResult, SizeResult,
};
use crate::scenario::{Planned, Scenario};
use crate::stats::Summary;
use crate::{bulk, containerd, floors, grpc, measure, podman, procs};

/// Settings of a run (from the command line).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Store sizes.
    pub sizes: Vec<usize>,
    /// Compare with podman.
    pub with_podman: bool,
    /// Compare with containerd.
    pub with_containerd: bool,
    /// Sizes from this one up are built with the bulk path.
    pub bulk_from: usize,
    /// Largest size compared with podman.
    pub podman_max: usize,
    /// Largest size compared with containerd.
    pub containerd_max: usize,
    /// RemoveImage calls per kind (by name, by ID).
    pub removals: usize,
    /// Scratch directory.
    pub workdir: PathBuf,
    /// The `imaged` binary.
    pub imaged: PathBuf,
    /// The `imagectl` binary.
    pub imagectl: PathBuf,
    /// Only build the stores (for profiling), measure nothing.
    pub build_only: bool,
}

/// Reserved removal targets: 5 for `rm <one>`, 100 for `rm -f <100 IDs>`.
const RM_ONE: usize = 5;
const RM_MANY: usize = 100;
/// LoadImages calls, and floor runs, of the throughput measurement (medians).
const THROUGHPUT_RUNS: usize = 5;

/// Repeats of a listing for a store of `n` images (more for small stores).
fn repeats(n: usize) -> usize {
    (200_000 / n.max(1)).clamp(5, 30)
}

fn list_req(all: bool, filters: &[String]) -> proto::ListImagesRequest {
    proto::ListImagesRequest {
        all,
        filters: filters.to_vec(),
        ..Default::default()
    }
}

struct Ctx<'a> {
    cfg: &'a Config,
    dir: PathBuf,
    root: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Ctx<'_> {
    fn start(&self) -> Result<Daemon> {
        Daemon::start(&self.cfg.imaged, &self.root, &self.socket, &self.log)
    }

    async fn connect(&self) -> Result<(Channel, Client)> {
        let channel = grpc::unix_channel(&self.socket).await?;
        let url = format!("unix://{}", self.socket.display());
        let client = Client::from_channel(channel.clone(), None, url)?;
        Ok((channel, client))
    }

    fn imagectl<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(&self.cfg.imagectl);
        c.arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        c
    }
}

/// Times `cmd()` `n` times after one warm-up run.
fn proc_runs(n: usize, mut cmd: impl FnMut() -> Command) -> Result<Summary> {
    procs::time(&mut cmd())?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(procs::time(&mut cmd())?);
    }
    Ok(Summary::of(&v))
}

fn hex(id: &str) -> &str {
    id.trim_start_matches("sha256:")
}

/// The podman commands of the issue, or their imagectl twins, on `targets`
/// (`RM_ONE` names then `RM_MANY` IDs). `run(args)` builds the command.
fn proc_suite(
    targets: &[&Planned],
    podman_style: bool,
    run: &dyn Fn(&[&str]) -> Command,
) -> Result<(Summary, Summary, Summary, Duration)> {
    let (ls, ls_a, rm) = if podman_style {
        (vec!["images"], vec!["images", "-a"], "rmi")
    } else {
        (vec!["ls"], vec!["ls", "-a"], "rm")
    };
    let ls_t = proc_runs(5, || run(&ls))?;
    let ls_a_t = proc_runs(5, || run(&ls_a))?;
    let mut one = Vec::new();
    for t in targets.iter().take(RM_ONE) {
        one.push(procs::time(&mut run(&[rm, t.names[0].as_str()]))?);
    }
    let mut args = vec![rm, "-f"];
    args.extend(
        targets
            .iter()
            .skip(RM_ONE)
            .take(RM_MANY)
            .map(|t| hex(&t.id)),
    );
    let many = procs::time(&mut run(&args))?;
    Ok((ls_t, ls_a_t, Summary::of(&one), many))
}

/// Runs every measurement for one size.
pub(crate) async fn run_size(cfg: &Config, size: usize) -> Result<SizeResult> {
    let dir = cfg.workdir.join(format!("n{size}"));
    std::fs::create_dir_all(&dir)?;
    let ctx = Ctx {
        cfg,
        root: dir.join("store"),
        socket: dir.join("imaged.sock"),
        log: dir.join("imaged.log"),
        dir,
    };
    eprintln!("== {size} images: planning the scenario");
    let scenario = Scenario::plan(size);
    let counts = scenario.counts();
    eprintln!("   {counts:?}");
    let removable = scenario.removable();
    let compare_podman = cfg.with_podman && size <= cfg.podman_max;
    let reserved = if compare_podman { RM_ONE + RM_MANY } else { 0 };
    let pool = &removable[reserved.min(removable.len())..];
    let k = cfg.removals.min(pool.len() / 2);
    let by_name: Vec<String> = pool[..k].iter().map(|p| p.names[0].clone()).collect();
    let by_id: Vec<String> = pool[k..2 * k].iter().map(|p| p.id.clone()).collect();

    let build = if size >= cfg.bulk_from {
        eprintln!("   building the store with the bulk path");
        Build::Bulk(bulk::build_store(&scenario, &ctx.root)?)
    } else {
        eprintln!("   loading {} archives through LoadImages", counts.families);
        let d = ctx.start()?;
        let (_, client) = ctx.connect().await?;
        let stats = measure::load_scenario(&client, &scenario).await?;
        measure::register_containers(&client, &scenario.containers).await?;
        drop(client);
        d.stop()?;
        Build::Rpc(stats)
    };
    let mut r = SizeResult::new(size, counts, build);
    if cfg.build_only {
        eprintln!("   store built in {}", ctx.root.display());
        return Ok(r);
    }

    eprintln!("   start-up after a SIGKILL");
    // The first start consumes the clean-shutdown marker the build left; killing it
    // leaves none, so the next start lists and sweeps the blob directory.
    ctx.start()?.kill();
    let d = ctx.start()?;
    r.startup_after_kill = d.startup;
    d.stop()?;

    eprintln!("   start-up ×3");
    let mut startups = Vec::new();
    let mut daemon = None;
    for i in 0..3 {
        let d = ctx.start()?;
        startups.push(d.startup);
        if i < 2 {
            d.stop()?;
        } else {
            r.rss_start = d.rss()?;
            daemon = Some(d);
        }
    }
    let daemon = daemon.context("no daemon")?;
    r.startup = Summary::of(&startups);
    let (channel, client) = ctx.connect().await?;

    eprintln!("   floors");
    r.health = floors::health_round_trips(&channel, 2000).await?;
    r.redb = floors::redb_commits(&ctx.dir, 300)?;
    // The removal floor: a table as large as the store (its meta database over its images).
    let meta = std::fs::metadata(ctx.root.join("meta.redb")).map_or(0, |m| m.len());
    let record = usize::try_from(meta / (counts.images.max(1) as u64)).unwrap_or(2048);
    r.redb_sized = floors::redb_deletes(&ctx.dir, counts.images, record.clamp(64, 64 << 10), 300)?;

    eprintln!("   ListImages");
    let reps = repeats(counts.images);
    let (time, images, pages) = measure::list_runs(&client, &list_req(true, &[]), reps).await?;
    r.payload_bytes = floors::encoded_len(&pages);
    (r.encode, r.encode_decode) = floors::protobuf_pages(&pages, reps);
    r.list_all = ListResult {
        label: "all=true".into(),
        time,
        images,
        pages: pages.len(),
    };
    drop(pages);
    let mid = scenario.families.len() / 2;
    let queries: Vec<(bool, Vec<String>)> = vec![
        (false, vec![]),
        (false, vec!["dangling=true".into()]),
        (true, vec!["intermediate=true".into()]),
        (false, vec!["label=tier=db".into()]),
        (false, vec!["reference=registry.example.com/team3/*".into()]),
        (false, vec!["containers=true".into()]),
        (
            false,
            vec![format!("since=docker.io/library/base{mid}:latest")],
        ),
    ];
    for (all, filters) in queries {
        let label = if filters.is_empty() {
            "all=false (default)".to_owned()
        } else {
            format!(
                "{}{}",
                filters.join(" "),
                if all { ", all=true" } else { "" }
            )
        };
        match measure::list_runs(&client, &list_req(all, &filters), reps.div_ceil(2)).await {
            Ok((time, images, pages)) => r.lists.push(ListResult {
                label,
                time,
                images,
                pages: pages.len(),
            }),
            Err(e) => r.notes.push(format!("ListImages {label}: {e:#}")),
        }
    }
    r.rss_peak = daemon.peak_rss()?;

    eprintln!("   LoadImages throughput");
    match throughput(&client, &ctx.dir).await {
        Ok((t, floor)) => {
            r.throughput = Some(t);
            r.load_floor = Some(floor);
        }
        Err(e) => r.notes.push(format!("LoadImages throughput: {e:#}")),
    }

    let targets: Vec<&Planned> = removable.iter().take(reserved).copied().collect();
    if compare_podman && targets.len() == reserved {
        eprintln!("   imagectl processes");
        let run = |args: &[&str]| ctx.imagectl(args);
        let (ls, ls_all, rm_one, rm_100) = proc_suite(&targets, false, &run)?;
        r.imagectl = Some(ProcTimes {
            ls,
            ls_all,
            rm_one,
            rm_100,
            ..ProcTimes::default()
        });
    }

    eprintln!("   RemoveImage ×{k} by name, ×{k} by ID");
    let (time, failures) = measure::remove_each(&client, &by_name).await;
    r.rm_name = RemoveResult { time, failures };
    let (time, failures) = measure::remove_each(&client, &by_id).await;
    r.rm_id = RemoveResult { time, failures };

    eprintln!("   PruneImages");
    let (time, deleted) = measure::prune(&client, false).await?;
    r.prune_dangling = PruneResult { time, deleted };
    let (time, deleted) = measure::prune(&client, true).await?;
    r.prune_all = PruneResult { time, deleted };

    if let Some(cli) = r.imagectl.as_mut() {
        eprintln!("   imagectl prune: reloading the scenario");
        measure::load_scenario(&client, &scenario).await?;
        measure::register_containers(&client, &scenario.containers).await?;
        for t in &targets {
            let _ = client
                .remove_image(proto::RemoveImageRequest {
                    reference: t.id.clone(),
                    force: true,
                    ignore_missing: true,
                    ..Default::default()
                })
                .await;
        }
        cli.prune = procs::time(&mut ctx.imagectl(["prune", "-f"]))?;
        cli.prune_all = procs::time(&mut ctx.imagectl(["prune", "-a", "-f"]))?;
    }
    drop(client);
    drop(channel);
    daemon.stop()?;

    if compare_podman && r.imagectl.is_some() {
        eprintln!("   podman: loading the scenario into a private vfs store");
        match podman_suite(&ctx.dir.join("podman"), &scenario, &targets) {
            Ok((times, setup)) => {
                r.podman = Some(times);
                r.podman_images = setup.images;
                if setup.list_failures > 0 {
                    r.notes.push(format!(
                        "podman: {} manifest lists could not be rebuilt (their instances stay, unnamed)",
                        setup.list_failures
                    ));
                }
            }
            Err(e) => r.notes.push(format!("podman: {e:#}")),
        }
    }
    if cfg.with_containerd && size <= cfg.containerd_max {
        eprintln!("   containerd: importing the scenario");
        match containerd_suite(&ctx.dir.join("containerd"), &scenario, &by_name, reps).await {
            Ok(c) => r.containerd = Some(c),
            Err(e) => r.notes.push(format!("containerd: {e:#}")),
        }
    }
    Ok(r)
}

/// LoadImages of 8 images with one 8 MiB random layer each, [`THROUGHPUT_RUNS`] times
/// (the images are removed after each), and its floor: SHA-256 + write + fsync of the
/// same bytes in `dir`, as many times. Both are medians: one call varies by ±20% here.
async fn throughput(client: &Client, dir: &Path) -> Result<(measure::LoadStats, Summary)> {
    let bytes = measure::throughput_archive(8, 8);
    let len = bytes.len() as u64;
    let floor = floors::hash_write_fsync(dir, &bytes, THROUGHPUT_RUNS)?;
    let mut times = Vec::with_capacity(THROUGHPUT_RUNS);
    let mut images = 0;
    for _ in 0..THROUGHPUT_RUNS {
        let (ids, time) =
            measure::load_one(client, bytes.clone(), crate::scenario::Format::Docker).await?;
        for id in &ids {
            client
                .remove_image(proto::RemoveImageRequest {
                    reference: id.clone(),
                    force: true,
                    ..Default::default()
                })
                .await?;
        }
        times.push(time);
        images = ids.len();
    }
    Ok((
        measure::LoadStats {
            bytes: len,
            images,
            calls: 1,
            time: Summary::of(&times).p50,
        },
        floor,
    ))
}

fn podman_suite(
    dir: &Path,
    scenario: &Scenario,
    targets: &[&Planned],
) -> Result<(ProcTimes, podman::PodmanSetup)> {
    let p = podman::Podman::new(dir)?;
    let setup = p.setup(scenario)?;
    eprintln!(
        "   podman holds {} images (setup {:.0} s)",
        setup.images,
        setup.time.as_secs_f64()
    );
    let run = |args: &[&str]| p.cmd(args);
    let (ls, ls_all, rm_one, rm_100) = proc_suite(targets, true, &run)?;
    let prune = procs::time(&mut p.cmd(["image", "prune", "-f"]))?;
    let prune_all = procs::time(&mut p.cmd(["image", "prune", "-a", "-f"]))?;
    Ok((
        ProcTimes {
            ls,
            ls_all,
            rm_one,
            rm_100,
            prune,
            prune_all,
        },
        setup,
    ))
}

async fn containerd_suite(
    dir: &Path,
    scenario: &Scenario,
    names: &[String],
    reps: usize,
) -> Result<ContainerdResult> {
    std::fs::create_dir_all(dir)?;
    let c = containerd::Containerd::start(dir).await?;
    let import = c.import(scenario)?;
    let channel = c.channel().await?;
    let (list, images, _) = containerd::Containerd::list(&channel, reps).await?;
    let (time, failures) = containerd::Containerd::delete_each(&channel, names).await?;
    drop(channel);
    c.stop()?;
    Ok(ContainerdResult {
        import,
        list,
        images,
        delete: RemoveResult { time, failures },
    })
}
