//! Starting and stopping the daemon; what a `local` store keeps across a restart.

use crate::both_stores;
use crate::support::*;

both_stores!(
    sigterm_stops_gracefully_and_removes_the_socket,
    |mut d: Daemon| {
        let socket = d.socket();
        assert!(socket.exists());
        assert!(d.url().starts_with("unix:///"), "url: {}", d.url());
        let status = d
            .stop()
            .expect("imaged stops within the limit after SIGTERM");
        assert!(
            status.success(),
            "exit status after SIGTERM: {status:?}\n{}",
            d.log()
        );
        assert!(!socket.exists(), "socket left behind after a graceful stop");
    }
);

#[test]
fn local_store_keeps_images_across_restart() {
    let d = Daemon::start("local");
    let a = ImageSpec::new("persist-a").named("localhost/e2e/persist:a");
    let b = a.child("persist-b").named("localhost/e2e/persist:b");
    load(&d, Format::Docker, &[a.clone(), b.clone()]);
    d.imagectl(&["tag", "localhost/e2e/persist:a", "localhost/e2e/extra:1"])
        .ok();
    let before = snapshot(&d, &[]);
    assert_eq!(before.images.len(), 2);

    let d = d.restart();
    let after = snapshot(&d, &[]);
    assert_eq!(
        after.raw, before.raw,
        "the local store changed across a restart"
    );
    let mut names = after.by_id(&a.id()).expect("base kept").names();
    names.sort();
    assert_eq!(names, ["localhost/e2e/extra:1", "localhost/e2e/persist:a"]);

    // A removal committed before a restart stays done.
    d.imagectl(&["rm", "localhost/e2e/persist:b"]).ok();
    let d = d.restart();
    let ids = snapshot(&d, &[]).hex_ids();
    assert_eq!(ids, [a.hex_id()], "only the tagged base survives");
}

#[test]
fn memory_store_starts_empty_after_restart() {
    let d = memory();
    load(
        &d,
        Format::Docker,
        &[ImageSpec::new("volatile").named("localhost/e2e/v:1")],
    );
    assert_eq!(snapshot(&d, &[]).images.len(), 1);
    let d = d.restart();
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn imagectl_reports_an_unreachable_daemon() {
    let mut d = memory();
    d.stop();
    let run = d.imagectl(&["ls"]);
    assert_eq!(run.code(), 125, "no daemon behind IMAGED_HOST:\n{run}");
    assert!(!run.stderr.is_empty(), "no error message:\n{run}");
}

#[test]
fn socket_is_group_accessible_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = memory();
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o} (SPEC §10: 0660)");
}

#[test]
fn bad_configuration_exits_64_reporting_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("never.sock");
    let mut cmd = std::process::Command::new(imaged_tests::tools::target_binary("imaged"));
    cmd.args([
        "--store",
        "bogus-kind",
        "--listen",
        "ftp://nowhere",
        "--root",
    ])
    .arg(dir.path().join("root"));
    imaged_tests::tools::scrub_imaged_env(&mut cmd);
    let run = imaged_tests::process::run(&mut cmd, std::time::Duration::from_secs(30));
    run.exit(64)
        .stderr_has("bogus-kind")
        .stderr_has("ftp://nowhere");
    assert!(!socket.exists());
    let mut cmd = std::process::Command::new(imaged_tests::tools::target_binary("imaged"));
    cmd.arg("--listen")
        .arg(format!("unix://{}", socket.display()));
    cmd.args(["--store", "memory", "--no-such-flag"]);
    imaged_tests::tools::scrub_imaged_env(&mut cmd);
    imaged_tests::process::run(&mut cmd, std::time::Duration::from_secs(30)).exit(64);
    assert!(
        !socket.exists(),
        "a socket was bound before the configuration was valid"
    );
}

#[test]
fn fsck_finds_and_repairs_a_corrupt_blob_in_a_local_store() {
    let mut d = Daemon::start("local");
    let good = ImageSpec::new("fsck-good").named("localhost/e2e/good:1");
    let bad = ImageSpec::new("fsck-bad").named("localhost/e2e/bad:1");
    load(&d, Format::Docker, &[good.clone(), bad.clone()]);
    d.stop();

    let fsck = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(imaged_tests::tools::target_binary("imaged"));
        cmd.args(["--store", "local", "--root"])
            .arg(d.root())
            .arg("fsck")
            .args(extra);
        imaged_tests::tools::scrub_imaged_env(&mut cmd);
        imaged_tests::process::run(&mut cmd, std::time::Duration::from_secs(60))
    };
    fsck(&[]).ok().stdout_has("clean");

    // Corrupt the layer blob of `bad` only (docker-archive layers are stored as is, so
    // the blob digest is the diff ID).
    let layer = d
        .root()
        .join("blobs/sha256")
        .join(bad.layers[0].diff_id().trim_start_matches("sha256:"));
    assert!(
        layer.is_file(),
        "no blob at {} (OCI-layout style store, SPEC §9)",
        layer.display()
    );
    std::fs::write(&layer, b"not the layer any more").unwrap();

    let run = fsck(&[]);
    assert_ne!(run.code(), 0, "fsck missed a corrupt blob:\n{run}");
    run.stdout_has(&bad.hex_id());
    fsck(&["--repair"]);

    let d = d.restart();
    let snap = snapshot(&d, &[]);
    assert_eq!(
        snap.hex_ids(),
        [good.hex_id()],
        "the broken image is dropped, the good one kept"
    );
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let mut d = Daemon::start("local");
    let a = ImageSpec::new("crash-a").named("localhost/e2e/a:1");
    let b = ImageSpec::new("crash-b").named("localhost/e2e/b:1");
    load(&d, Format::Oci, &[a.clone(), b.clone()]);
    d.imagectl(&["rm", "localhost/e2e/b:1"]).ok();
    d.imagectl(&["tag", "localhost/e2e/a:1", "localhost/e2e/a:2"])
        .ok();
    let before = snapshot(&d, &[]);
    d.kill();
    assert!(d.socket().exists(), "SIGKILL leaves the socket file behind");
    // The restart has to cope with the stale socket file and an unclean store.
    let d = d.restart();
    assert_eq!(snapshot(&d, &[]).raw, before.raw);
    assert_eq!(snapshot(&d, &[]).hex_ids(), [a.hex_id()]);
}
