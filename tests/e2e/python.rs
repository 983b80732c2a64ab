//! The Python client suite (`tests/python/`, pytest): stubs generated from `proto/` at
//! test time with grpcio-tools, channels over the unix socket with
//! `grpc.default_authority=localhost` and with default options, error details decoded from
//! `grpc-status-details-bin`. Each pytest fixture starts its own `imaged` from the
//! binary passed here, so one `cargo test` runs everything. A password registry (TLS +
//! htpasswd, one image pushed) is started here for the CRI PullImage-with-AuthConfig case
//! and described to pytest in `E2E_AUTH_REGISTRY_*`.

use std::process::Command;
use std::time::Duration;

use imaged_testkit::registry::Registry;
use imaged_tests::archive::{self, ImageSpec};
use imaged_tests::{process, tools};

#[test]
fn python_client_suite() {
    let root = tools::workspace_root();
    let python = tools::python();
    let check = process::run(
        Command::new(&python).args(["-c", "import grpc, grpc_tools, pytest"]),
        Duration::from_secs(60),
    );
    assert!(
        check.status.success(),
        "grpcio, grpcio-tools or pytest missing for {}: {}\n{check}",
        python.display(),
        tools::SETUP_HINT
    );
    let reg = Registry::start_auth("kubelet", "pa55-CRI-secret");
    let img = ImageSpec::new("python-cri-auth").child("top");
    reg.push_archive(
        &archive::oci_archive(std::slice::from_ref(&img)),
        "cri/private:1",
        false,
    );
    let mut cmd = Command::new(&python);
    cmd.current_dir(&root)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/python",
        ])
        .env("E2E_IMAGED_BIN", tools::target_binary("imaged"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("E2E_AUTH_REGISTRY_HOST", reg.host())
        .env("E2E_AUTH_REGISTRY_CA", reg.ca_file())
        .env("E2E_AUTH_REGISTRY_USER", "kubelet")
        .env("E2E_AUTH_REGISTRY_PASSWORD", "pa55-CRI-secret")
        .env("E2E_AUTH_REGISTRY_IMAGE", "cri/private:1")
        .env("E2E_AUTH_REGISTRY_IMAGE_ID", img.id());
    tools::scrub_imaged_env(&mut cmd);
    let run = process::run(&mut cmd, Duration::from_secs(600));
    assert!(
        run.status.success(),
        "pytest failed (exit {}):\n{run}",
        run.code()
    );
    let summary = run.lines().last().copied().unwrap_or_default().to_owned();
    eprintln!("pytest: {summary}");
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "pytest ran no test or skipped some: {summary}\n{run}"
    );
}
