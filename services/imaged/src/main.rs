//! `imaged`: the image-management daemon.
//!
//! ```text
//! imaged [--config FILE] [--listen URL]… [--store local|memory|containers-storage]
//!        [--root DIR] [--runroot DIR] [--storage-driver overlay|vfs]
//! imaged fsck [--repair]
//! ```
//! Configuration: TOML file (`--config` or `IMAGED_CONFIG`), then `IMAGED_*` environment
//! variables, then flags; see `deploy/config/imaged.example.toml`. Exit codes: 0 clean
//! shutdown (or a clean fsck), 1 start-up failure (or fsck found problems), 64 bad
//! configuration or command line (every problem is listed). Unix-socket connections accept
//! any HTTP/2 `:authority` (module `authority`: the socket path C-core, grpc-java and grpcurl
//! send is read as `localhost`).

mod authority;
mod config;
mod conn;
mod fsck;
mod gc_loop;
mod heap;
mod listen;
mod metrics_http;
mod peercred;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use config::{EXIT_CONFIG, Flags, Purpose};

/// Manages container images with podman's and Docker's rules, over gRPC.
#[derive(Debug, Parser)]
#[command(name = "imaged", version)]
struct Cli {
    /// TOML configuration file (also IMAGED_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listener URL, repeatable: unix:///path or tcp://IP:PORT (also IMAGED_LISTEN).
    #[arg(long, global = true, value_name = "URL")]
    listen: Vec<String>,
    /// Store backend: local, memory or containers-storage (podman's / CRI-O's store, managed
    /// in place) (also IMAGED_STORE).
    #[arg(long, global = true, value_name = "KIND")]
    store: Option<String>,
    /// The store's data directory; for containers-storage its graph root (default: from
    /// storage.conf as podman reads it) (also IMAGED_ROOT).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// containers-storage: the run root (default: from storage.conf as podman reads it)
    /// (also IMAGED_RUNROOT).
    #[arg(long, global = true, value_name = "DIR")]
    runroot: Option<PathBuf>,
    /// containers-storage: the graph driver, overlay or vfs (default: what podman recorded,
    /// storage.conf, else c/storage's choice) (also IMAGED_STORAGE_DRIVER).
    #[arg(long, global = true, value_name = "NAME")]
    storage_driver: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks the store: every referenced blob present with the right digest and size.
    /// Exit 0 when clean, 1 when problems were found.
    Fsck {
        /// Drop images whose blobs are missing or corrupt and remove unreferenced blobs.
        #[arg(long)]
        repair: bool,
    },
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return exit(code);
        }
    };
    let flags = Flags {
        config: cli.config,
        listen: cli.listen,
        store: cli.store,
        root: cli.root,
        runroot: cli.runroot,
        storage_driver: cli.storage_driver,
    };
    let purpose = if cli.command.is_some() {
        Purpose::Fsck
    } else {
        Purpose::Serve
    };
    let is_root = nix::unistd::geteuid().is_root();
    let get = |k: &str| std::env::var(k).ok();
    let settings = match config::load(&flags, &get, is_root, purpose) {
        Ok(s) => s,
        Err(errors) => {
            let n = errors.len();
            eprintln!(
                "imaged: invalid configuration ({n} problem{}):",
                if n == 1 { "" } else { "s" }
            );
            for e in &errors {
                eprintln!("  - {e}");
            }
            return exit(EXIT_CONFIG);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&settings.log))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if let Some(Command::Fsck { repair }) = cli.command {
        return exit(fsck::run(&settings, repair));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imaged: cannot start the runtime: {e}");
            return exit(1);
        }
    };
    let r = rt.block_on(serve::run(settings));
    // Dropping the runtime ends the remaining tasks and waits for running store
    // operations, so the store is closed (dropped) before the process exits.
    drop(rt);
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imaged: {e:#}");
            exit(1)
        }
    }
}
