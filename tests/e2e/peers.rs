//! imaged checked against podman (differential tests, issue 3): podman loads every
//! archive the tests write (so a rejection by imaged is imaged's fault) and rejects the
//! tampered ones; then podman and imaged get the same archives and the same containers
//! and run the same `rm` / `prune` / `ls --filter` sequences, compared command by command
//! ([`harness::Pair`]). podman 4.3 runs on a private vfs store in a temporary directory;
//! it comes from `scripts/setup` (apt).
//!
//! * [`rm`]: removal by name, short name, ID, short ID prefix, `sha256:` ID, several
//!   references, `-f` with containers, `-i`, `--no-prune`, parents with children.
//! * [`prune`]: `prune`, `prune -a`, `prune --filter …` with containers and chains.
//! * [`ls`]: `ls --filter …` for every filter key podman 4.3 knows, with and without `-a`,
//!   and the malformed forms.
//!
//! Every difference the tests allow is a documented SPEC deviation, asserted explicitly
//! with its SPEC section ([`harness::Pair::deviation`]).

mod harness;
mod ls;
mod prune;
mod rm;

use harness::{Pair, podman, podman_images};

use crate::support::*;

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

#[test]
fn imaged_and_podman_agree_on_load_rm_and_prune() {
    let base = ImageSpec::new("agree-base").named("localhost/e2e/base:1");
    let child = base
        .child("agree-child")
        .named("quay.io/e2e/child:2")
        .named("localhost/e2e/child:latest");
    let loose = ImageSpec::new("agree-loose");
    let pair = Pair::new(&[base, child.clone(), loose]);
    // Unknown reference: exit 1, "image not known".
    pair.rm(&["nope:1"]);
    // By ID with several names: exit 125, must force.
    pair.rm(&[&child.hex_id()]);
    // By name on a multi-named image: untag only.
    pair.rm(&["localhost/e2e/child:latest"]);
    // A parent with a child: untagged, not deleted.
    pair.rm(&["localhost/e2e/base:1"]);
    // The child: untagged and deleted.
    pair.rm(&["quay.io/e2e/child:2"]);
    // The unnamed image is dangling: prune takes it.
    pair.prune(&[]);
    assert!(harness::imaged_images(&pair.d).is_empty());
}
