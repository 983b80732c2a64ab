//! Shared helpers of the containers-storage end-to-end tests (issue 12): a private podman
//! store ([`PodmanStore`]) with a real `imaged --store containers-storage` on it, the
//! tools run as [`Run`]s, and both sides' views of the store (images with their names,
//! containers with their image and kind) read and compared.
//!
//! Nothing is skipped: a missing podman, buildah or busybox-static fails the test.

use std::time::Duration;

use imaged_testkit::podman::PodmanStore;
use imaged_tests::daemon::Custom;
use imaged_tests::listing::Listed;
use imaged_tests::process::{self, Run};
use serde_json::Value;

use crate::support::Daemon;

/// Longest one podman / buildah call may take (a debug daemon and podman share 2 cores).
const TOOL_LIMIT: Duration = Duration::from_secs(180);

/// A new private podman store with `driver`; panics with the reason when podman cannot
/// create it.
pub(crate) fn store(driver: &'static str) -> PodmanStore {
    PodmanStore::new(driver).unwrap_or_else(|e| panic!("podman store ({driver}): {e}"))
}

/// `imaged --store containers-storage --root R --runroot RR --storage-driver D` on `s`,
/// with podman's environment (skopeo, which LoadImages drives, reads it).
pub(crate) fn daemon(s: &PodmanStore) -> Daemon {
    Daemon::start_custom("containers-storage", custom(s))
}

/// The flags and environment of a daemon on `s`.
pub(crate) fn custom(s: &PodmanStore) -> Custom {
    Custom {
        args: vec![
            "--root".into(),
            s.root.clone().into(),
            "--runroot".into(),
            s.run.clone().into(),
            "--storage-driver".into(),
            s.driver.into(),
        ],
        env: s.env_vars(),
    }
}

/// Runs podman on `s`; the run whatever its exit code.
pub(crate) fn podman(s: &PodmanStore, args: &[&str]) -> Run {
    process::run(&mut s.podman_cmd(args), TOOL_LIMIT)
}

/// Runs podman on `s` and requires success.
#[track_caller]
pub(crate) fn podman_ok(s: &PodmanStore, args: &[&str]) -> Run {
    let r = podman(s, args);
    r.ok();
    r
}

/// Runs buildah on `s` and requires success.
#[track_caller]
pub(crate) fn buildah_ok(s: &PodmanStore, args: &[&str]) -> Run {
    let r = process::run(&mut s.buildah_cmd(args), TOOL_LIMIT);
    r.ok();
    r
}

/// `podman load` of archive bytes; the loaded images' IDs are not parsed.
#[track_caller]
pub(crate) fn podman_load(s: &PodmanStore, name: &str, bytes: &[u8]) {
    let path = s.dir().join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    podman_ok(
        s,
        &["load", "-q", "-i", path.to_str().expect("utf-8 temp path")],
    );
    let _ = std::fs::remove_file(&path);
}

/// The last non-empty line of a run (the ID podman / buildah print).
#[track_caller]
pub(crate) fn last_line(r: &Run) -> String {
    r.lines()
        .last()
        .map(|l| l.trim().trim_start_matches("sha256:").to_owned())
        .unwrap_or_else(|| panic!("no output:\n{r}"))
}

/// An image as both sides list it: bare hex ID, sorted names, number of containers.
pub(crate) type ImageEntry = (String, Vec<String>, u64);

/// A container as both sides list it: ID, bare hex image ID, external (storage-only).
pub(crate) type ContainerEntry = (String, String, bool);

fn json_array(r: &Run, what: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(&r.stdout) {
        Ok(Value::Array(a)) => a,
        Ok(Value::Null) => Vec::new(),
        Ok(other) => panic!("{what} printed no JSON array: {other}\n{r}"),
        Err(e) => panic!("{what} printed no JSON ({e}):\n{r}"),
    }
}

/// Parses `… --format json` image listings (podman's or imagectl's): one entry per image
/// (podman repeats an image per repository), sorted.
pub(crate) fn parse_images(r: &Run, what: &str) -> Vec<ImageEntry> {
    let mut out: Vec<ImageEntry> = json_array(r, what)
        .into_iter()
        .map(|i| {
            let l = Listed(i);
            let mut names = l.names();
            names.sort();
            let containers = l.number("containers");
            (l.hex_id(), names, containers)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every image podman lists (`podman images -a --format json`).
#[track_caller]
pub(crate) fn podman_images(s: &PodmanStore) -> Vec<ImageEntry> {
    parse_images(
        &podman_ok(s, &["images", "-a", "--format", "json"]),
        "podman images",
    )
}

/// Every image imaged lists (`imagectl ls -a --format json`).
#[track_caller]
pub(crate) fn imaged_images(d: &Daemon) -> Vec<ImageEntry> {
    let r = d.imagectl(&["ls", "-a", "--format", "json"]);
    r.ok();
    parse_images(&r, "imagectl ls")
}

/// Every container podman knows, its own and the storage-only ones
/// (`podman ps -a --external --format json`; external ones have state `storage`).
#[track_caller]
pub(crate) fn podman_containers(s: &PodmanStore) -> Vec<ContainerEntry> {
    let r = podman_ok(s, &["ps", "-a", "--external", "--format", "json"]);
    let mut out: Vec<ContainerEntry> = json_array(&r, "podman ps")
        .into_iter()
        .map(|c| {
            let id = c["Id"].as_str().unwrap_or_default().to_owned();
            let image = c["ImageID"].as_str().unwrap_or_default().to_owned();
            let external = c["State"].as_str() == Some("storage");
            (id, image.trim_start_matches("sha256:").to_owned(), external)
        })
        .collect();
    out.sort();
    out
}

/// Every container imaged reports (`imagectl container ls --format json`).
#[track_caller]
pub(crate) fn imaged_containers(d: &Daemon) -> Vec<ContainerEntry> {
    let r = d.imagectl(&["container", "ls", "--format", "json"]);
    r.ok();
    let mut out: Vec<ContainerEntry> = json_array(&r, "imagectl container ls")
        .into_iter()
        .map(|c| {
            let id = c["Id"].as_str().unwrap_or_default().to_owned();
            let image = c["ImageId"].as_str().unwrap_or_default();
            let external = c["External"].as_bool().unwrap_or(false);
            (id, image.trim_start_matches("sha256:").to_owned(), external)
        })
        .collect();
    out.sort();
    out
}

/// Both views of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Views {
    /// Images.
    pub images: Vec<ImageEntry>,
    /// Containers.
    pub containers: Vec<ContainerEntry>,
}

/// podman's view.
#[track_caller]
pub(crate) fn podman_view(s: &PodmanStore) -> Views {
    Views {
        images: podman_images(s),
        containers: podman_containers(s),
    }
}

/// imaged's view.
#[track_caller]
pub(crate) fn imaged_view(d: &Daemon) -> Views {
    Views {
        images: imaged_images(d),
        containers: imaged_containers(d),
    }
}

/// Panics unless podman and imaged list the same images (IDs, names) and the same
/// containers (IDs, images, kind); returns podman's view.
#[track_caller]
pub(crate) fn assert_agree(s: &PodmanStore, d: &Daemon, after: &str) -> Views {
    let p = podman_view(s);
    let i = imaged_view(d);
    assert_eq!(
        i.images, p.images,
        "images differ after {after} (left: imaged, right: podman)"
    );
    assert_eq!(
        i.containers, p.containers,
        "containers differ after {after} (left: imaged, right: podman)"
    );
    p
}

/// No layer of the store carries c/storage's `incomplete` flag, and every layer's driver
/// data exists (`vfs/dir/<id>` or `overlay/<id>`): the state after a complete removal or
/// after the next open finished an interrupted one.
#[track_caller]
pub(crate) fn assert_no_incomplete_layers(s: &PodmanStore, after: &str) {
    let path = s
        .root
        .join(format!("{}-layers", s.driver))
        .join("layers.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let layers: Vec<Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is no JSON array after {after}: {e}", path.display()));
    for l in &layers {
        let id = l["id"].as_str().unwrap_or_default();
        assert!(
            l["flags"]["incomplete"].as_bool() != Some(true),
            "layer {id} still flagged incomplete after {after}"
        );
        let data = match s.driver {
            "vfs" => s.root.join("vfs").join("dir").join(id),
            _ => s.root.join("overlay").join(id),
        };
        assert!(
            data.is_dir(),
            "layer {id} listed but {} missing after {after}",
            data.display()
        );
    }
}

/// Every image podman lists can be inspected and saved; `runnable` (names) also runs
/// `/bin/busybox true` with `podman run --rm --network none`.
#[track_caller]
pub(crate) fn assert_images_usable(s: &PodmanStore, runnable: &[&str], after: &str) {
    for (id, _, _) in podman_images(s) {
        let r = podman(s, &["image", "inspect", &id]);
        assert!(r.status.success(), "after {after}: inspect {id}:\n{r}");
        let out = s.dir().join(format!("save-{id}.tar"));
        let r = podman(
            s,
            &[
                "save",
                "-q",
                "-o",
                out.to_str().expect("utf-8 temp path"),
                &id,
            ],
        );
        assert!(r.status.success(), "after {after}: save {id}:\n{r}");
        let _ = std::fs::remove_file(&out);
    }
    for name in runnable {
        let r = podman(
            s,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                name,
                "/bin/busybox",
                "true",
            ],
        );
        assert!(r.status.success(), "after {after}: run {name}:\n{r}");
    }
}

/// The runnable base image: static busybox in one layer, named `name`.
pub(crate) fn busybox(name: &str) -> Vec<u8> {
    imaged_testkit::podman::busybox_archive(name).unwrap_or_else(|e| panic!("busybox: {e}"))
}
