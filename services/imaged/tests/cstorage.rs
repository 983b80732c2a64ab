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

/// `imaged fsck` without `--repair` changes nothing on containers-storage: a layer left
/// flagged `incomplete` (an interrupted removal) is reported and stays; with `--repair` it
/// is finished, and podman still works on the store.
#[test]
fn fsck_reports_an_interrupted_removal_and_repairs_only_when_asked() {
    let s = PodmanStore::new("vfs").expect("podman store");
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    let layers = s.root.join("vfs-layers").join("layers.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&layers).unwrap()).unwrap();
    let leftover = "ab".repeat(32);
    v.as_array_mut().unwrap().push(serde_json::json!({
        "id": leftover,
        "created": "2026-01-01T00:00:00Z",
        "flags": {"incomplete": true},
    }));
    std::fs::write(&layers, serde_json::to_vec(&v).unwrap()).unwrap();
    let flags = [
        "--store",
        "containers-storage",
        "--root",
        s.root.to_str().unwrap(),
        "--runroot",
        s.run.to_str().unwrap(),
        "--storage-driver",
        "vfs",
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = flags.to_vec();
        a.extend_from_slice(extra);
        imaged(&s, &a, None)
    };
    let (code, out) = with(&["fsck"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("layer {leftover}: flagged incomplete")),
        "{out}"
    );
    let now = std::fs::read_to_string(&layers).unwrap();
    assert!(
        now.contains(&leftover),
        "fsck without --repair changed layers.json"
    );

    let (code, out) = with(&["fsck", "--repair"]);
    assert!(
        !std::fs::read_to_string(&layers)
            .unwrap()
            .contains(&leftover),
        "{out}"
    );
    let _ = code;
    let (code, out) = with(&["fsck"]);
    assert_eq!(code, 0, "{out}");
    s.podman_ok(&["image", "inspect", "localhost/bb:1"])
        .unwrap();
}
