//! `imaged-bench`: the benchmark harness of imaged (issue 6).
//!
//! ```text
//! cargo run --release -p imaged-bench -- [--sizes 1000,10000,100000] [--with-podman]
//!     [--with-containerd] [--out BENCHMARKS.md]
//! ```
//! For every size it generates a realistic store with imaged's own archive generator,
//! loads it (LoadImages, or the documented bulk path for large sizes), starts the real
//! `imaged` on a unix socket and measures ListImages, RemoveImage, PruneImages,
//! LoadImages, start-up and RSS next to their floors (health Check round trip, protobuf
//! encoding, bare redb commit), then podman and containerd on the same scenario when
//! asked. The report goes to `BENCHMARKS.md` at the repository root. See `README.md`.

mod bulk;
mod containerd;
mod cstorage;
mod daemon;
mod floors;
mod gc;
mod grpc;
mod machine;
mod measure;
mod podman;
mod procs;
mod pull;
mod report;
mod results;
mod run;
mod scenario;
mod stats;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Parser;

/// Benchmarks imaged against its floors, podman and containerd.
#[derive(Debug, Parser)]
#[command(name = "imaged-bench")]
struct Args {
    /// Store sizes (images), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    sizes: Vec<usize>,
    /// Also build the scenario in a private podman vfs store and time podman's commands
    /// (sizes up to --podman-max).
    #[arg(long)]
    with_podman: bool,
    /// Also run a private containerd (root, `containerd` package) and time its images API
    /// (sizes up to --containerd-max).
    #[arg(long)]
    with_containerd: bool,
    /// The markdown report [default: BENCHMARKS.md at the repository root].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sizes from this one up are built with the bulk path instead of LoadImages calls.
    #[arg(long, default_value_t = 50_000)]
    bulk_from: usize,
    /// Largest size compared with podman.
    #[arg(long, default_value_t = 2_000)]
    podman_max: usize,
    /// Largest size compared with containerd.
    #[arg(long, default_value_t = 2_000)]
    containerd_max: usize,
    /// RemoveImage calls per kind (by name, by ID), at most.
    #[arg(long, default_value_t = 1_000)]
    removals: usize,
    /// Scratch directory (a fresh temporary directory inside it; default: $TMPDIR).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Keep the scratch directory (stores, logs) at the end.
    #[arg(long)]
    keep: bool,
    /// Do not build `imaged` and `imagectl` first; take them from --bin-dir.
    #[arg(long)]
    no_build: bool,
    /// Where `imaged` and `imagectl` are [default: next to this binary].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Only build the stores and keep them (to profile the daemon on them); no report.
    #[arg(long)]
    build_only: bool,
    /// Skip the local-store sizes (`--sizes`): only the containers-storage comparison.
    #[arg(long)]
    no_local: bool,
    /// Sizes (images) of the containers-storage comparison: imaged
    /// `--store containers-storage` and podman on one podman-built overlay store (root and
    /// the podman tools needed).
    #[arg(long, value_delimiter = ',')]
    cstorage_sizes: Vec<usize>,
    /// Also compare pulls from a local registry (docker-registry, skopeo and podman
    /// needed): one 64 MiB image against skopeo and podman, 100 small images against
    /// podman.
    #[arg(long)]
    pull: bool,
    /// Only the GC benchmark (issue 15), in-process: choosing the candidates in a store of
    /// this many images, and a run against a prune of the same images; prints the
    /// BENCHMARKS.md section.
    #[arg(long, value_name = "IMAGES")]
    gc: Option<usize>,
    /// Images the GC benchmark's run deletes.
    #[arg(long, default_value_t = 10_000)]
    gc_deleted: usize,
    /// Where podman-built stores are cached between runs (default:
    /// `<workdir or $TMPDIR>/imaged-bench-cache`).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// The workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds `imaged` and `imagectl` with this binary's profile, so they land next to it.
fn build_binaries(exe_dir: &Path) -> Result<()> {
    let profile = exe_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    if profile != "release" {
        eprintln!(
            "warning: imaged-bench runs in the {profile:?} profile; numbers are meaningless outside --release"
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(workspace_root())
        .args(["build", "-p", "imaged", "-p", "imagectl"]);
    match profile {
        "debug" => {}
        "release" => {
            c.arg("--release");
        }
        other => {
            c.args(["--profile", other]);
        }
    }
    eprintln!("building imaged and imagectl ({profile})");
    let status = c.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of imaged and imagectl failed: {status}");
    }
    Ok(())
}

fn real_main(args: Args) -> Result<()> {
    if let Some(n) = args.gc {
        print!("{}", gc::run(n, args.gc_deleted)?);
        return Ok(());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let exe_dir = exe
        .parent()
        .context("binary without a directory")?
        .to_owned();
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    if !args.no_build {
        build_binaries(&exe_dir)?;
    }
    let (imaged, imagectl) = (bin_dir.join("imaged"), bin_dir.join("imagectl"));
    for b in [&imaged, &imagectl] {
        if !b.is_file() {
            bail!("{} not found (build it, or pass --bin-dir)", b.display());
        }
    }
    let base = args.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("imaged-bench-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a scratch directory in {}", base.display()))?;
    let with_podman = args.with_podman && podman::available();
    if args.with_podman && !with_podman {
        eprintln!("warning: --with-podman given but podman is not installed; skipped");
    }
    let with_containerd = args.with_containerd && containerd::available();
    if args.with_containerd && !with_containerd {
        eprintln!("warning: --with-containerd needs root and the containerd package; skipped");
    }
    let cfg = run::Config {
        sizes: args.sizes.clone(),
        with_podman,
        with_containerd,
        bulk_from: args.bulk_from,
        podman_max: args.podman_max,
        containerd_max: args.containerd_max,
        removals: args.removals,
        workdir: scratch.path().to_owned(),
        imaged,
        imagectl,
        build_only: args.build_only,
    };
    let machine = machine::Machine::probe(scratch.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut results = Vec::new();
    let local_sizes: &[usize] = if args.no_local { &[] } else { &cfg.sizes };
    for &size in local_sizes {
        let r = rt
            .block_on(run::run_size(&cfg, size))
            .with_context(|| format!("size {size}"))?;
        results.push(r);
    }
    let cs_cfg = cstorage::CsConfig {
        cache: args
            .cache_dir
            .clone()
            .unwrap_or_else(|| base.join("imaged-bench-cache")),
        imaged: cfg.imaged.clone(),
        imagectl: cfg.imagectl.clone(),
        workdir: scratch.path().to_owned(),
        build_only: args.build_only,
    };
    let mut cs_results = Vec::new();
    for &size in &args.cstorage_sizes {
        match rt.block_on(cstorage::run_size(&cs_cfg, size)) {
            Ok(r) => cs_results.push(r),
            Err(e) => {
                eprintln!("containers-storage, size {size}: {e:#}");
                cs_results.push(cstorage::CsResult {
                    size,
                    notes: vec![format!("{e:#}")],
                    ..cstorage::CsResult::default()
                });
            }
        }
    }
    let pulls = if args.pull && !args.build_only {
        let pc = pull::PullConfig {
            imaged: cfg.imaged.clone(),
            imagectl: cfg.imagectl.clone(),
            workdir: scratch.path().to_owned(),
        };
        Some(rt.block_on(pull::run(&pc)).unwrap_or_else(|e| {
            eprintln!("pull comparison: {e:#}");
            pull::PullResult {
                notes: vec![format!("not measured: {e:#}")],
                ..pull::PullResult::default()
            }
        }))
    } else {
        None
    };
    if args.build_only {
        eprintln!("stores kept in {}", scratch.keep().display());
        return Ok(());
    }
    let command = std::iter::once("cargo run --release -p imaged-bench --".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let date = imaged_core::time::format_rfc3339(imaged_core::time::now());
    let md = report::render(
        &machine,
        &command,
        &date,
        &results,
        &cs_results,
        pulls.as_ref(),
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("BENCHMARKS.md"));
    std::fs::write(&out, &md).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report written to {}", out.display());
    print!("{md}");
    if args.keep {
        let kept = scratch.keep();
        eprintln!("scratch directory kept: {}", kept.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imaged-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
