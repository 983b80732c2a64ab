//! `imaged --store containers-storage` on a store real podman built: the flags select it,
//! `imaged fsck` checks it (and reports it as containers-storage), and with no flag at all
//! the store podman would use (here named by `CONTAINERS_STORAGE_CONF`) is found, its
//! driver taken from podman's database.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

use imaged_testkit::podman::{PodmanStore, busybox_archive};

fn imaged(s: &PodmanStore, args: &[&str], conf: Option<&std::path::Path>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imaged"));
    cmd.args(args)
        .env_remove("IMAGED_STORE")
        .env_remove("IMAGED_ROOT")
        .env_remove("IMAGED_RUNROOT")
        .env_remove("IMAGED_STORAGE_DRIVER")
        .env_remove("IMAGED_CONFIG")
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .env_remove("XDG_CONFIG_HOME")
        .env("RUST_LOG", "info");
    match conf {
        Some(c) => cmd.env("CONTAINERS_STORAGE_CONF", c),
        None => cmd.env("CONTAINERS_STORAGE_CONF", s.storage_conf()),
    };
    let out = cmd.output().expect("running imaged");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn fsck_on_a_podman_store_by_flags_and_by_defaults() {
    let s = PodmanStore::new("vfs").expect("podman store");
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    let root = s.root.to_str().unwrap().to_owned();
    let run = s.run.to_str().unwrap().to_owned();

    let (code, out) = imaged(
        &s,
        &[
            "--store",
            "containers-storage",
            "--root",
            &root,
            "--runroot",
            &run,
            "--storage-driver",
            "vfs",
            "fsck",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("store: {root} (containers-storage)")),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "clean"), "{out}");
    assert!(out.contains("checked 1 images"), "{out}");

    // No flags; a storage.conf that names the store but not its driver: podman's database
    // says vfs, as it does for podman.
    let conf = s.dir().join("nodriver.conf");
    std::fs::write(
        &conf,
        format!("[storage]\ngraphroot = \"{root}\"\nrunroot = \"{run}\"\n"),
    )
    .unwrap();
    let (code, out) = imaged(&s, &["--store", "containers-storage", "fsck"], Some(&conf));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("containers-storage store resolved"), "{out}");
    assert!(
        out.contains("driver=\"vfs\"") || out.contains("driver=vfs"),
        "{out}"
    );
    assert!(out.contains("podman database"), "{out}");
    assert!(out.contains("checked 1 images"), "{out}");

    // A driver imaged cannot manage is a configuration error (exit 64).
    let (code, out) = imaged(
        &s,
        &[
            "--store",
            "containers-storage",
            "--storage-driver",
            "zfs",
            "fsck",
        ],
        None,
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("storage_driver"), "{out}");
}
