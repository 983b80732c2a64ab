//! The containers-storage backend (`imaged --store containers-storage`) against podman on
//! the **same** podman-built overlay store, in the same run.
//!
//! The store holds the scenario of the size (`Scenario::plan`, the same families as the
//! local-store measurements), built by podman itself: `podman load` of docker-archives
//! of 10 families each, manifest lists with `podman manifest create/add`, containers with
//! `podman create` (external ones with `buildah from`). Building costs minutes (c/storage
//! rewrites `images.json` on every image, so it grows quadratically), so the built store
//! is cached under `--cache-dir`: podman's BoltDB records the store's paths, so the store
//! always lives at the same place (`<cache>/cs-v1-n<size>/work/root`, run root and tmp dir
//! under `/tmp/imaged-bench-cs<size>` since podman wants a short run root) and is restored
//! from a pristine copy (`cp -a`) before each phase.
//!
//! Every podman command gets a `CONTAINERS_CONF` with no ulimits, cgroupfs, runc and no
//! events log (the project's way of running podman here; without it podman's load is ~3×
//! slower and its removals log events).
//!
//! Phases, per size:
//! 1. restored store, daemon started: `ls` (imagectl / `podman images`, median of 5 after
//!    a warm-up); pick-up latency (20 × `podman tag`, then the first filtered ListImages,
//!    against the same ListImages with nothing changed); `rm <one>` (5 images by
//!    imagectl, 5 others by podman, alternating); `imagectl prune -f`, `imagectl prune -a
//!    -f` (one run each).
//! 2. restored store again, the same 10 images removed and the same tags added by podman
//!    (untimed): `podman image prune -f`, `podman image prune -a -f`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imaged_client::{Client, proto};
use imaged_testkit::archive as synth;
use imaged_testkit::podman::CONTAINERS_CONF;

use crate::daemon::Daemon;
use crate::scenario::{Role, Scenario};
use crate::stats::Summary;
use crate::{grpc, procs};

/// Time the timed `podman images` runs may take in all (then fewer than 5 are taken).
const PODMAN_LS_BUDGET: Duration = Duration::from_secs(120);

/// Bumped whenever the way the store is built changes (invalidates caches).
const CACHE_VERSION: &str = "v1";
/// Families per `podman load`.
const FAMILIES_PER_LOAD: usize = 10;
/// Images removed with `rm <one>` by each side.
const RM_ONE: usize = 5;
/// `podman tag` → ListImages samples.
const PICKUPS: usize = 20;

/// Settings of the containers-storage comparison.
#[derive(Debug, Clone)]
pub(crate) struct CsConfig {
    /// Where built stores are kept between runs.
    pub cache: PathBuf,
    /// The `imaged` binary.
    pub imaged: PathBuf,
    /// The `imagectl` binary.
    pub imagectl: PathBuf,
    /// Scratch directory (daemon socket and log).
    pub workdir: PathBuf,
    /// Only build (or find) the store; measure nothing.
    pub build_only: bool,
}

/// One side's whole-process timings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CsTimes {
    /// `ls` / `images` (median of 5 after a warm-up).
    pub ls: Summary,
    /// `rm <name>` / `rmi <name>` of 5 images.
    pub rm_one: Summary,
    /// `prune -f` (one run).
    pub prune: Duration,
    /// Images the prune deleted (`podman images -a` before − after).
    pub pruned: usize,
    /// `prune -a -f` (one run).
    pub prune_all: Duration,
    /// Images `prune -a` deleted.
    pub pruned_all: usize,
}

/// How the store was obtained.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CsBuild {
    /// Time podman took to build it (when it was built, possibly in an earlier run).
    pub build: Duration,
    /// Taken from the cache in this run.
    pub cached: bool,
    /// Time of one restore from the pristine copy.
    pub restore: Duration,
    /// Images `podman images -a` counts in the pristine store.
    pub images: usize,
}

/// Everything measured for one size.
#[derive(Debug, Clone, Default)]
pub(crate) struct CsResult {
    /// The requested size.
    pub size: usize,
    /// The store.
    pub build: CsBuild,
    /// imagectl against `imaged --store containers-storage`.
    pub imagectl: Option<CsTimes>,
    /// podman.
    pub podman: Option<CsTimes>,
    /// First filtered ListImages after a `podman tag` finished.
    pub pickup: Summary,
    /// The same ListImages with nothing changed.
    pub pickup_baseline: Summary,
    /// Pick-ups whose first ListImages did not show the new tag yet.
    pub pickup_misses: usize,
    /// Remarks (failures).
    pub notes: Vec<String>,
}

/// A podman-built overlay store at a fixed place, with its pristine copy.
#[derive(Debug)]
pub(crate) struct CsStore {
    /// `<cache>/cs-v1-n<size>`.
    base: PathBuf,
    /// `<base>/work/root`: the graph root podman and imaged use.
    pub root: PathBuf,
    /// `/tmp/imaged-bench-cs<size>`: run root and podman's tmp dir (short paths).
    short: PathBuf,
    /// `<short>/run`.
    pub run: PathBuf,
    conf: PathBuf,
}

impl CsStore {
    /// The store of `size` under `cache` (nothing is created yet).
    pub(crate) fn new(cache: &Path, size: usize) -> Result<Self> {
        let base = cache.join(format!("cs-{CACHE_VERSION}-n{size}"));
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let base = base.canonicalize()?;
        let short = PathBuf::from(format!("/tmp/imaged-bench-cs{size}"));
        let conf = base.join("containers.conf");
        std::fs::write(&conf, CONTAINERS_CONF)?;
        Ok(Self {
            root: base.join("work").join("root"),
            run: short.join("run"),
            base,
            short,
            conf,
        })
    }

    fn pristine(&self) -> PathBuf {
        self.base.join("pristine")
    }

    fn env(&self, c: &mut Command) {
        c.env("CONTAINERS_CONF", &self.conf)
            .env("TMPDIR", self.short.join("tmp"))
            .env_remove("CONTAINERS_STORAGE_CONF");
    }

    /// `podman --root … --runroot … --storage-driver overlay <args>`.
    pub(crate) fn podman<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run)
            .arg("--storage-driver")
            .arg("overlay")
            .arg("--runtime")
            .arg("runc")
            .arg("--tmpdir")
            .arg(self.short.join("libpod"))
            .args(args);
        self.env(&mut c);
        c
    }

    fn buildah<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.run)
            .arg("--storage-driver")
            .arg("overlay")
            .args(args);
        self.env(&mut c);
        c
    }

    /// The daemon's store flags.
    pub(crate) fn imaged_args(&self) -> Vec<OsString> {
        vec![
            "--store".into(),
            "containers-storage".into(),
            "--root".into(),
            self.root.clone().into(),
            "--runroot".into(),
            self.run.clone().into(),
            "--storage-driver".into(),
            "overlay".into(),
        ]
    }

    /// Image records podman lists (`images -a` lists every record of `images.json`; read
    /// directly, since `podman images` takes minutes on the larger stores).
    pub(crate) fn count_images(&self) -> Result<usize> {
        let path = self.root.join("overlay-images").join("images.json");
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))?;
        Ok(records.len())
    }

    /// Undoes every mount under the store (overlay's private bind of `<root>/overlay`,
    /// layer mounts), deepest first.
    fn unmount(&self) {
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.base) || p.starts_with(&self.short))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
    }

    /// Removes the working store (not the pristine copy).
    fn clear_work(&self) -> Result<()> {
        self.unmount();
        for d in [self.base.join("work"), self.short.clone()] {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", d.display())),
            }
        }
        for d in [self.base.join("work"), self.short.join("tmp")] {
            std::fs::create_dir_all(&d)?;
        }
        Ok(())
    }

    /// The working store as the pristine copy has it; the time it took.
    pub(crate) fn restore(&self) -> Result<Duration> {
        let t = Instant::now();
        self.clear_work()?;
        procs::output(
            Command::new("cp")
                .arg("-a")
                .arg(self.pristine().join("root"))
                .arg(&self.root),
        )?;
        Ok(t.elapsed())
    }

    /// Builds the store with podman unless the cache has it; then restores the working
    /// copy.
    pub(crate) fn ensure(&self, scenario: &Scenario) -> Result<CsBuild> {
        let done = self.pristine().join("built");
        if let Ok(text) = std::fs::read_to_string(&done) {
            let mut it = text.split_whitespace();
            let secs: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            let images: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let restore = self.restore()?;
            return Ok(CsBuild {
                build: Duration::from_secs_f64(secs),
                cached: true,
                restore,
                images,
            });
        }
        self.clear_work()?;
        let pristine = self.pristine();
        if pristine.exists() {
            std::fs::remove_dir_all(&pristine)?;
        }
        let t = Instant::now();
        self.build(scenario)?;
        let build = t.elapsed();
        let images = self.count_images()?;
        self.unmount();
        std::fs::create_dir_all(&pristine)?;
        procs::output(
            Command::new("cp")
                .arg("-a")
                .arg(&self.root)
                .arg(pristine.join("root")),
        )?;
        std::fs::write(&done, format!("{} {images}\n", build.as_secs_f64()))?;
        let restore = self.restore()?;
        Ok(CsBuild {
            build,
            cached: false,
            restore,
            images,
        })
    }

    /// Loads the scenario with podman (see the module docs).
    fn build(&self, scenario: &Scenario) -> Result<()> {
        let file = self.base.join("work").join("load.tar");
        let chunks: Vec<_> = scenario.families.chunks(FAMILIES_PER_LOAD).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let built: Vec<_> = chunk.iter().map(|f| f.build()).collect();
            let mut imgs: Vec<synth::SynthImage> = Vec::new();
            for b in &built {
                imgs.extend(b.images.iter().map(|(i, _)| i.clone()));
                if let Some((_, instances)) = &b.list {
                    imgs.extend(instances.iter().cloned());
                }
            }
            std::fs::write(&file, synth::docker_archive(&imgs, false))?;
            procs::output(self.podman(["load", "-q", "-i"]).arg(&file))?;
            for b in &built {
                let Some((name, instances)) = &b.list else {
                    continue;
                };
                procs::output(&mut self.podman(["manifest", "create", name.as_str()]))?;
                for inst in instances {
                    procs::output(&mut self.podman([
                        "manifest",
                        "add",
                        name.as_str(),
                        &format!("containers-storage:{}", inst.id().hex()),
                    ]))?;
                }
            }
            eprintln!(
                "   containers-storage: loaded {}/{} batches ({} images so far)",
                i + 1,
                chunks.len(),
                self.count_images()?
            );
        }
        let _ = std::fs::remove_file(&file);
        for c in &scenario.containers {
            let id = c.image_id.trim_start_matches("sha256:");
            if c.external {
                procs::output(&mut self.buildah(["from", "--name", c.name.as_str(), id]))?;
            } else {
                procs::output(&mut self.podman([
                    "create",
                    "--name",
                    c.name.as_str(),
                    "--network",
                    "none",
                    id,
                    "/bin/true",
                ]))?;
            }
        }
        Ok(())
    }
}

impl Drop for CsStore {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Times `cmd()` `n` times after one warm-up run.
fn runs(n: usize, cmd: impl FnMut() -> Command) -> Result<Summary> {
    runs_within(n, Duration::MAX, cmd)
}

/// Times `cmd()` up to `n` times after one warm-up run, stopping once the timed runs took
/// `budget` (at least one timed run): `podman images` takes minutes on the larger stores.
fn runs_within(n: usize, budget: Duration, mut cmd: impl FnMut() -> Command) -> Result<Summary> {
    let warm = procs::time(&mut cmd())?;
    if warm >= budget {
        // Minutes per run: warming caches is irrelevant, the warm-up is the one sample.
        return Ok(Summary::of(&[warm]));
    }
    let mut v = Vec::with_capacity(n);
    let mut spent = Duration::ZERO;
    while v.len() < n && (v.is_empty() || spent < budget) {
        let d = procs::time(&mut cmd())?;
        spent = spent.saturating_add(d);
        v.push(d);
    }
    Ok(Summary::of(&v))
}

/// One prune as a whole process: its time and the images it deleted.
fn timed_prune(store: &CsStore, mut cmd: Command) -> Result<(Duration, usize)> {
    let before = store.count_images()?;
    let d = procs::time(&mut cmd)?;
    let after = store.count_images()?;
    Ok((d, before.saturating_sub(after)))
}

/// A filtered ListImages (all pages): its time and whether it listed any image.
async fn list_filtered(client: &Client, filter: &str) -> Result<(Duration, bool)> {
    let req = proto::ListImagesRequest {
        all: true,
        filters: vec![filter.to_owned()],
        ..Default::default()
    };
    let (pages, d) = crate::measure::list_pages(client, req).await?;
    Ok((d, pages.iter().any(|p| !p.images.is_empty())))
}

/// Runs the comparison for one size.
pub(crate) async fn run_size(cfg: &CsConfig, size: usize) -> Result<CsResult> {
    eprintln!("== containers-storage, {size} images");
    let scenario = Scenario::plan(size);
    let store = CsStore::new(&cfg.cache, size)?;
    let mut r = CsResult {
        size,
        ..CsResult::default()
    };
    r.build = store.ensure(&scenario)?;
    eprintln!(
        "   store: {} images, {} ({:.0} s to build), restore {:.1} s",
        r.build.images,
        if r.build.cached { "cached" } else { "built" },
        r.build.build.as_secs_f64(),
        r.build.restore.as_secs_f64()
    );
    if cfg.build_only {
        return Ok(r);
    }
    let removable = scenario.removable();
    if removable.len() < 2 * RM_ONE {
        bail!("the scenario has too few removable images");
    }
    let mine: Vec<&str> = removable[..RM_ONE]
        .iter()
        .map(|p| p.names[0].as_str())
        .collect();
    let theirs: Vec<&str> = removable[RM_ONE..2 * RM_ONE]
        .iter()
        .map(|p| p.names[0].as_str())
        .collect();
    let tagged = scenario
        .images
        .iter()
        .find(|i| i.role == Role::Base)
        .context("no base image")?
        .id
        .trim_start_matches("sha256:")
        .to_owned();
    let pickup_tags: Vec<String> = (0..PICKUPS)
        .map(|i| format!("localhost/imaged-bench-pickup:{i}"))
        .collect();

    let dir = cfg.workdir.join(format!("cs{size}"));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("imaged.sock");
    let log = dir.join("imaged.log");
    let imagectl = |args: &[&str]| {
        let mut c = Command::new(&cfg.imagectl);
        c.arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(args);
        c
    };

    // Phase 1: the daemon on the restored store.
    eprintln!("   phase 1: imaged on the store");
    let daemon = Daemon::start_with(&cfg.imaged, &store.imaged_args(), &socket, &log)
        .context("starting imaged --store containers-storage")?;
    let phase1 = async {
        let channel = grpc::unix_channel(&socket).await?;
        let client = Client::from_channel(channel, None, format!("unix://{}", socket.display()))?;
        let mut cli = CsTimes {
            ls: runs(5, || imagectl(&["ls"]))?,
            ..CsTimes::default()
        };
        let mut pod = CsTimes {
            ls: runs_within(5, PODMAN_LS_BUDGET, || store.podman(["images"]))?,
            ..CsTimes::default()
        };

        eprintln!("   pick-up latency");
        let mut after = Vec::new();
        let mut baseline = Vec::new();
        for tag in &pickup_tags {
            let filter = format!("reference={tag}");
            procs::time(&mut store.podman(["tag", tagged.as_str(), tag.as_str()]))?;
            let (d, seen) = list_filtered(&client, &filter).await?;
            if seen {
                after.push(d);
            } else {
                r.pickup_misses += 1;
                // Keep asking (bounded) to tell a slow pick-up from a lost one.
                let t = Instant::now();
                let mut found = false;
                while t.elapsed() < Duration::from_secs(10) {
                    if list_filtered(&client, &filter).await?.1 {
                        found = true;
                        break;
                    }
                }
                if !found {
                    bail!("imaged never listed {tag} after podman tagged it");
                }
            }
            baseline.push(list_filtered(&client, &filter).await?.0);
        }
        r.pickup = Summary::of(&after);
        r.pickup_baseline = Summary::of(&baseline);

        eprintln!("   rm <one>");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (m, t) in mine.iter().zip(&theirs) {
            a.push(procs::time(&mut imagectl(&["rm", m]))?);
            b.push(procs::time(&mut store.podman(["rmi", t]))?);
        }
        cli.rm_one = Summary::of(&a);
        pod.rm_one = Summary::of(&b);

        eprintln!("   imagectl prune, prune -a");
        (cli.prune, cli.pruned) = timed_prune(&store, imagectl(&["prune", "-f"]))?;
        (cli.prune_all, cli.pruned_all) = timed_prune(&store, imagectl(&["prune", "-a", "-f"]))?;
        anyhow::Ok((cli, pod))
    }
    .await;
    daemon.stop()?;
    let (cli, mut pod) = phase1?;
    r.imagectl = Some(cli);

    // Phase 2: podman's prunes on the same state.
    eprintln!("   phase 2: podman prune, prune -a");
    store.restore()?;
    let mut rmi = store.podman(["rmi"]);
    rmi.args(mine.iter().chain(&theirs));
    procs::output(&mut rmi)?;
    let mut tag = store.podman(["tag", tagged.as_str()]);
    tag.args(&pickup_tags);
    procs::output(&mut tag)?;
    (pod.prune, pod.pruned) = timed_prune(&store, store.podman(["image", "prune", "-f"]))?;
    (pod.prune_all, pod.pruned_all) =
        timed_prune(&store, store.podman(["image", "prune", "-a", "-f"]))?;
    r.podman = Some(pod);
    store.clear_work()?;
    Ok(r)
}
