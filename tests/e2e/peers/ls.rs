//! `podman images --filter …` vs `imagectl ls --filter …` (SPEC §5.3): every filter key
//! podman 4.3 knows, positive, negated and malformed, with and without `-a`; compared are
//! the exit code, the first error line and the listed images with their names.
//!
//! Not compared: `digest=` — podman stores the docker-archive's image under a manifest it
//! writes itself, imaged under its own synthesised OCI manifest (SPEC §6 leaves the
//! manifest of a docker-archive image open), so the digests differ by construction.

use super::harness::Pair;
use crate::support::*;

fn images() -> Vec<ImageSpec> {
    // A child keeps its parent's creation time (the archive writer dates every history
    // entry with the image's time, and libimage's parent rule compares history).
    let base = ImageSpec::new("ls-base")
        .created("2024-01-01T00:00:00Z")
        .label("tier", "gold")
        .label("owner", "e2e")
        .named("localhost/e2e/base:1");
    let child = base
        .child("ls-child")
        .named("quay.io/e2e/child:2")
        .named("localhost/e2e/child:latest");
    let mid = base.child("ls-mid");
    let top = mid.child("ls-top").named("localhost/e2e/top:1");
    let loose = ImageSpec::new("ls-loose")
        .created("2024-03-01T00:00:00Z")
        .label("tier", "silver");
    let busybox = ImageSpec::new("ls-busybox")
        .created("2023-01-01T00:00:00Z")
        .named("docker.io/library/busybox:latest");
    let newest = ImageSpec::new("ls-new")
        .created("2024-06-01T00:00:00Z")
        .label("com.example.version", "2")
        .named("localhost/e2e/new:1");
    vec![base, child, mid, top, loose, busybox, newest]
}

#[test]
fn ls_filters_agree() {
    let images = images();
    let pair = Pair::new(&images);
    pair.create("c-new", "localhost/e2e/new:1");
    let id_filter = format!("id={}", images[0].hex_id());
    let filters: Vec<Vec<&str>> = vec![
        vec![],
        vec!["dangling=true"],
        vec!["dangling=false"],
        vec!["dangling!=true"],
        vec!["intermediate=false"],
        vec!["reference=localhost/e2e/*"],
        vec!["reference=busybox"],
        vec!["reference=child"],
        vec!["reference=e2e/child"],
        vec!["reference=*:2"],
        vec!["reference=busybox", "reference=top"],
        vec!["reference!=localhost/e2e/*"],
        vec!["label=tier"],
        vec!["label=tier=gold"],
        vec!["label!=tier=gold"],
        vec!["label=com.example.*"],
        vec!["before=localhost/e2e/new:1"],
        vec!["since=docker.io/library/busybox:latest"],
        vec!["after=busybox"],
        vec!["since=busybox", "before=localhost/e2e/new:1"],
        vec![&id_filter],
        vec!["containers=true"],
        vec!["containers=false"],
        vec!["until=2024-02-01T00:00:00Z"],
        vec!["manifest=false"],
        vec!["readonly=false"],
        vec!["dangling=false", "label=tier"],
        // Malformed: the same error on both sides.
        vec!["foo=bar"],
        vec!["nofilter"],
        vec!["before=nope:1"],
        vec!["containers=maybe"],
        vec!["dangling=true", "dangling=false"],
        vec!["until=yesterday"],
    ];
    // `-a` with intermediate=true: compared like the others. Without `-a`, podman 4.3
    // appends its implicit `intermediate=false` even when the user asked for
    // `intermediate=true` and fails on the contradiction; later podman skips the implicit
    // filter then (peers-semantics §5.2, scenario #67) and lists the intermediate images,
    // as imaged does (SPEC §5.2 hides intermediates only by default, §5.3 filters).
    let intermediates = pair.ls(&["-a", "--filter", "intermediate=true"]);
    assert_eq!(intermediates.len(), 1, "{intermediates:?}");
    pair.deviation(
        "peers-semantics §5.2: podman 4.3's implicit intermediate=false",
        &[
            "images",
            "--format",
            "json",
            "--filter",
            "intermediate=true",
        ],
        &["ls", "--format", "json", "--filter", "intermediate=true"],
        |p, i| {
            p.exit(125).stderr_has(
                "specifying \"intermediate\" filter more than once with different values",
            );
            i.ok();
            assert_eq!(super::harness::parse_imaged_images(i), intermediates);
        },
    );
    for all in [&[][..], &["-a"][..]] {
        for name in ["quay.io/e2e/child:2", "localhost/e2e/child:latest"] {
            let filter = format!("reference={name}");
            let mut args = all.to_vec();
            args.extend(["--filter", &filter]);
            pair.ls_narrowed(&args, &[name]);
        }
    }
    // Repeated keys: SPEC §5.3 ANDs every filter, repeated `label=` included (libimage
    // today, peers-semantics §5.4); podman 4.3's libimage ORs the values of one key.
    let tier = pair.ls(&["--filter", "label=tier"]);
    let owner = pair.ls(&["--filter", "label=owner=e2e"]);
    let (p, i) = pair.ls_both(&["--filter", "label=tier", "--filter", "label=owner=e2e"]);
    eprintln!("documented peer-version difference (SPEC §5.3 repeated keys ANDed)");
    let and: Vec<_> = tier.iter().filter(|e| owner.contains(e)).cloned().collect();
    let mut or: Vec<_> = tier.iter().chain(&owner).cloned().collect();
    or.sort();
    or.dedup();
    assert!(and.len() < or.len(), "the images must tell AND from OR");
    assert_eq!(i, and, "imaged ANDs repeated label filters");
    assert_eq!(p, or, "podman 4.3 ORs repeated label filters");
    // `id=` with a prefix: SPEC §5.3 `id=<prefix>` (libimage today, peers-semantics
    // §5.4: "image ID starts with value"); podman 4.3's libimage wants the whole ID.
    let prefix = format!("id={}", &images[0].hex_id()[..8]);
    let (p, i) = pair.ls_both(&["--filter", &prefix]);
    eprintln!("documented peer-version difference (SPEC §5.3 id=<prefix>)");
    assert!(p.is_empty(), "podman 4.3 matched an ID prefix: {p:?}");
    assert_eq!(i, pair.ls(&["--filter", &id_filter]));
    assert_eq!(i.len(), 1);
    super::harness::bad_boolean(
        &pair,
        &["images", "--format", "json"],
        &["ls", "--format", "json"],
    );
    for f in &filters {
        for all in [false, true] {
            let mut args: Vec<&str> = Vec::new();
            if all {
                args.push("-a");
            }
            for x in f {
                args.extend(["--filter", x]);
            }
            pair.ls(&args);
        }
    }
}
