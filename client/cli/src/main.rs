//! `imagectl`: the command-line client of imaged, with podman's output and exit codes.
//!
//! Decisions where podman offers no exact model:
//! * `ls --format ids` prints one 12-character ID per image like `podman images -q`
//!   (`sha256:<64 hex>` with `--no-trunc`).
//! * `prune` asks for confirmation only when standard input is a terminal; from a pipe or
//!   a script it proceeds without asking (no `-f` needed); `--dry-run` never asks.
//! * Usage errors exit 125 (podman's code), `--help`/`--version` exit 0.
//! * An image without a creation time shows `N/A` in the CREATED column.
//! * `gc` (no podman equivalent) prints a podman-aligned table of the images a run chose,
//!   then plain summary lines (`would free …`/`freed …`, `not reached …`), and exits like
//!   `prune`; `gc policy --set` checks its values before connecting (exit 125).

mod args;
mod cmd;
mod exit;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use imaged_client::{Client, ConnectOptions};

use crate::args::Cli;
use crate::exit::{Failure, Report};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = if err.use_stderr() {
                exit::FAILURE
            } else {
                exit::OK
            };
            // Printing help or a usage error to a closed stream: nothing more to do.
            let _ = err.print();
            return exit_code(code);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return finish(Failure::new(format!("starting the runtime: {e}")).into()),
    };
    let report = runtime.block_on(run(&cli)).unwrap_or_else(Report::from);
    finish(report)
}

async fn run(cli: &Cli) -> Result<Report, Failure> {
    let url = cli
        .host
        .clone()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(imaged_client::default_url);
    let mut opts = ConnectOptions {
        tls_ca: cli.tls_ca.clone(),
        tls_cert: cli.tls_cert.clone(),
        tls_key: cli.tls_key.clone(),
        ..ConnectOptions::default()
    };
    if let Some(path) = &cli.token_file {
        opts = opts
            .with_token_file(path)
            .map_err(|e| Failure::new(e.message))?;
    }
    // `rm` without references fails before connecting, as podman does.
    if let args::Command::Rm(rm) = &cli.command
        && rm.refs.is_empty()
    {
        return Err(Failure::new("image name or ID must be specified"));
    }
    // A bad `gc policy --set` is a usage error, reported before connecting.
    if let args::Command::Gc(args::GcArgs {
        command: Some(args::GcCommand::Policy(p)),
        ..
    }) = &cli.command
    {
        cmd::gc_policy::parse_sets(&p.set)?;
    }
    let client = Client::connect_with(&url, opts)
        .await
        .map_err(|e| Failure::from_client(&url, &e))?;
    cmd::dispatch(&client, &cli.command).await
}

fn finish(report: Report) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    // A closed standard output (`imagectl ls | head -1`) is not an error worth reporting.
    let _ = stdout
        .write_all(report.stdout.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);
    let mut stderr = std::io::stderr().lock();
    for err in &report.errors {
        let _ = writeln!(stderr, "Error: {err}");
    }
    exit_code(report.code)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
