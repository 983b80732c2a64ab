//! The archive writer and imaged checked against the peers: podman loads every archive
//! the tests write (so a rejection by imaged is imaged's fault), rejects the tampered
//! ones, and ends with the same image IDs and names as imaged. podman runs on a private
//! vfs store in a temporary directory; it comes from `scripts/setup` (apt).

use std::process::Command;
use std::time::Duration;

use imaged_tests::process::{self, Run};
use imaged_tests::tools;

use crate::support::*;

/// `podman` on a store of its own under `dir`.
fn podman(dir: &std::path::Path, args: &[&str]) -> Run {
    let bin = tools::on_path("podman")
        .unwrap_or_else(|| panic!("podman not found on PATH: {}", tools::SETUP_HINT));
    let mut cmd = Command::new(bin);
    cmd.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs", "--events-backend", "none"])
        .args(args)
        .env_remove("CONTAINERS_STORAGE_CONF");
    process::run(&mut cmd, Duration::from_secs(180))
}

/// `(id hex, sorted names)` of every image podman holds, sorted, once per image.
fn podman_images(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let run = podman(dir, &["images", "-a", "--format", "json"]);
    run.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("podman images json");
    let mut out: Vec<(String, Vec<String>)> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|i| {
            let mut names: Vec<String> = i["Names"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            (i["Id"].as_str().expect("Id").to_owned(), names)
        })
        .collect();
    // podman prints one entry per repository of an image.
    out.sort();
    out.dedup();
    out
}

fn imaged_images(d: &Daemon) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = snapshot(d, &[])
        .images
        .iter()
        .map(|i| {
            let mut names = i.names();
            names.sort();
            (i.hex_id(), names)
        })
        .collect();
    out.sort();
    out
}

fn sample() -> Vec<ImageSpec> {
    let base = ImageSpec::new("peer-base").named("localhost/e2e/base:1");
    let child = base
        .child("peer-child")
        .named("quay.io/e2e/child:2")
        .named("busybox:latest");
    vec![base, child]
}

#[test]
fn podman_accepts_our_archives_and_rejects_tampered_ones() {
    let dir = tempfile::tempdir().unwrap();
    // podman 4.3 cannot read a gzip-compressed docker-archive ("unexpected EOF") and takes
    // one image per oci-archive.
    let oci = [ImageSpec::new("peer-oci").named("localhost/e2e/oci:1")];
    for (format, images) in [(Format::Docker, sample()), (Format::Oci, oci.to_vec())] {
        let path = dir.path().join(format!("{format:?}.tar"));
        std::fs::write(&path, format.bytes(&images)).unwrap();
        let store = dir.path().join(format!("store-{format:?}"));
        podman(&store, &["load", "-i", path.to_str().unwrap()]).ok();
        let mut want: Vec<(String, Vec<String>)> = images
            .iter()
            .map(|i| {
                let mut names = i.names.clone();
                names.sort();
                (i.hex_id(), names)
            })
            .collect();
        // Short names in a docker-archive get libimage's write normalisation
        // (`busybox:latest` -> `localhost/busybox:latest`, SPEC §2), as podman does.
        for (_, names) in &mut want {
            for n in names.iter_mut() {
                if n == "busybox:latest" {
                    *n = "localhost/busybox:latest".to_owned();
                }
            }
            names.sort();
        }
        want.sort();
        assert_eq!(
            podman_images(&store),
            want,
            "podman's view of our {format:?} archive"
        );
    }
    for (name, bytes) in [
        (
            "bad-docker.tar",
            archive::docker_archive_with(&sample(), Tamper::LayerContent),
        ),
        (
            "bad-oci.tar",
            archive::oci_archive_with(&oci, Tamper::LayerContent),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let store = dir.path().join(format!("store-{name}"));
        let run = podman(&store, &["load", "-i", path.to_str().unwrap()]);
        assert_ne!(run.code(), 0, "podman loaded a tampered archive:\n{run}");
        run.stderr_has("Digest did not match");
    }
}

/// `… ([b a]) …` -> `… ([a b]) …`: podman lists a freshly loaded image's names newest
/// first (reverse archive order), imaged in archive order; the SPEC leaves the order of
/// loaded names open, so messages are compared with their name lists sorted.
fn sort_name_list(line: &str) -> String {
    let (Some(start), Some(end)) = (line.find("(["), line.find("])")) else {
        return line.to_owned();
    };
    let mut names: Vec<&str> = line[start + 2..end].split(' ').collect();
    names.sort_unstable();
    format!(
        "{}([{}]){}",
        &line[..start],
        names.join(" "),
        &line[end + 2..]
    )
}

/// Runs the same command on podman and imagectl and checks they agree on the exit code,
/// the output lines, the error message and, afterwards, the stores.
fn same(d: &Daemon, podman_dir: &std::path::Path, podman_args: &[&str], imagectl_args: &[&str]) {
    let p = podman(podman_dir, podman_args);
    let i = d.imagectl(imagectl_args);
    assert_eq!(
        i.code(),
        p.code(),
        "exit codes differ\npodman:\n{p}\nimagectl:\n{i}"
    );
    assert_eq!(
        i.lines(),
        p.lines(),
        "outputs differ\npodman:\n{p}\nimagectl:\n{i}"
    );
    let first_error = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("Error: "))
            .map(sort_name_list)
    };
    assert_eq!(
        first_error(&i.stderr),
        first_error(&p.stderr),
        "errors differ\npodman:\n{p}\nimagectl:\n{i}"
    );
    assert_eq!(
        imaged_images(d),
        podman_images(podman_dir),
        "stores differ after {imagectl_args:?}"
    );
}

#[test]
fn imaged_and_podman_agree_on_load_rm_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let d = memory();
    let base = ImageSpec::new("agree-base").named("localhost/e2e/base:1");
    let child = base
        .child("agree-child")
        .named("quay.io/e2e/child:2")
        .named("localhost/e2e/child:latest");
    let loose = ImageSpec::new("agree-loose");
    let path = d.write_file(
        "agree.tar",
        &Format::Docker.bytes(&[base, child.clone(), loose]),
    );
    let path = path.to_str().unwrap();
    podman(dir.path(), &["load", "-i", path]).ok();
    d.imagectl(&["load", "-i", path]).ok();
    assert_eq!(imaged_images(&d), podman_images(dir.path()));

    let p = dir.path();
    // Unknown reference: exit 1, "image not known".
    same(&d, p, &["rmi", "nope:1"], &["rm", "nope:1"]);
    // By ID with several names: exit 125, must force.
    same(&d, p, &["rmi", &child.hex_id()], &["rm", &child.hex_id()]);
    // By name on a multi-named image: untag only.
    same(
        &d,
        p,
        &["rmi", "localhost/e2e/child:latest"],
        &["rm", "localhost/e2e/child:latest"],
    );
    // A parent with a child: untagged, not deleted.
    same(
        &d,
        p,
        &["rmi", "localhost/e2e/base:1"],
        &["rm", "localhost/e2e/base:1"],
    );
    // The child: untagged and deleted.
    same(
        &d,
        p,
        &["rmi", "quay.io/e2e/child:2"],
        &["rm", "quay.io/e2e/child:2"],
    );
    // The unnamed image is dangling: prune takes it.
    same(&d, p, &["image", "prune", "-f"], &["prune", "-f"]);
    assert!(imaged_images(&d).is_empty());
}
