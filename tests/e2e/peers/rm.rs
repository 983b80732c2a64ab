//! `podman rmi` vs `imagectl rm` (SPEC §3.1 PODMAN policy, §3.3 several references): the
//! same archive, the same containers, the same sequence of removals; every step compared
//! (exit code, `Untagged:`/`Deleted:` lines, first error, remaining images and containers).

use super::harness::Pair;
use crate::support::*;

fn short(spec: &ImageSpec) -> String {
    spec.hex_id()[..12].to_owned()
}

#[test]
fn rm_by_name_short_name_id_prefix_and_several_refs() {
    let base = ImageSpec::new("rm-base").named("localhost/e2e/base:1");
    let child = base
        .child("rm-child")
        .named("quay.io/e2e/child:2")
        .named("localhost/e2e/child:latest");
    let mid = base.child("rm-mid");
    let top = mid.child("rm-top").named("localhost/e2e/top:1");
    let loose = ImageSpec::new("rm-loose");
    let busybox = ImageSpec::new("rm-busybox").named("docker.io/library/busybox:latest");
    let multi = ImageSpec::new("rm-multi")
        .named("localhost/e2e/multi:a")
        .named("localhost/e2e/multi:b");
    let p2 = ImageSpec::new("rm-p2");
    let c2 = p2.child("rm-c2").named("localhost/e2e/c2:1");
    let pair = Pair::new(&[
        base.clone(),
        child.clone(),
        mid,
        top,
        loose.clone(),
        busybox,
        multi,
        p2.clone(),
        c2,
    ]);

    // Unknown references: exit 1; ignored with -i, and with -f (force implies ignore).
    pair.rm(&["nope:1"]);
    pair.rm(&["-i", "nope:1"]);
    pair.rm(&["-f", "nope:1"]);
    // By ID, short ID prefix and sha256: ID on an image with two names: exit 125.
    pair.rm(&[&child.hex_id()]);
    pair.rm(&[&short(&child)]);
    pair.rm(&[&child.id()]);
    // By name on a multi-named image: untag only.
    pair.rm(&["localhost/e2e/child:latest"]);
    // A short name resolved through docker.io/library.
    pair.rm(&["busybox"]);
    // Two names of one image in one call: untag, then delete (podman#930); the first as
    // a short name with a path (`localhost/` candidate).
    pair.rm(&["e2e/multi:a", "localhost/e2e/multi:b"]);
    // An unnamed image by short ID prefix.
    pair.rm(&[&short(&loose)]);
    // A missing reference among good ones: the others go, exit 1.
    pair.rm(&["nope:2", "localhost/e2e/top:1"]);
    // A parent with a child: its record goes, reported untagged only.
    pair.rm(&["localhost/e2e/base:1"]);
    // --no-prune keeps the dangling parent; then it goes by ID.
    pair.rm(&["--no-prune", "localhost/e2e/c2:1"]);
    pair.rm(&[&p2.hex_id()]);
    // The last image by ID with force: every name untagged, then deleted.
    pair.rm(&["-f", &child.hex_id()]);
    assert!(super::harness::imaged_images(&pair.d).is_empty());
}

#[test]
fn rm_with_containers() {
    let used = ImageSpec::new("rmc-used").named("localhost/e2e/used:1");
    let two = ImageSpec::new("rmc-two")
        .named("localhost/e2e/two:1")
        .named("localhost/e2e/two:2");
    let free = ImageSpec::new("rmc-free").named("localhost/e2e/free:1");
    let pp = ImageSpec::new("rmc-pp");
    let pc = pp.child("rmc-pc").named("localhost/e2e/pc:1");
    let pair = Pair::new(&[used.clone(), two.clone(), free, pp.clone(), pc.clone()]);
    pair.create("c-used", "localhost/e2e/used:1");
    pair.create("c-used-2", &used.hex_id());
    pair.create("c-two", "localhost/e2e/two:1");

    // In use, by name and by ID: exit 2, nothing changes.
    pair.rm(&["localhost/e2e/used:1"]);
    pair.rm(&[&used.hex_id()]);
    // Several references, one in use: the free one goes, exit 2.
    pair.rm(&["localhost/e2e/used:1", "localhost/e2e/free:1"]);
    // A name of a two-named image in use: untag only, containers are not checked.
    pair.rm(&["localhost/e2e/two:2"]);
    // Force: both containers go with the image.
    pair.rm(&["-f", "localhost/e2e/used:1"]);
    // Force by short ID prefix on the (now single-named) image in use.
    pair.rm(&["-f", &short(&two)]);
    assert!(pair.imaged_containers().is_empty());
    // A child whose unnamed parent is in use: both remove the child and keep the
    // parent, but podman then fails on the parent (libimage returns the parent's in-use
    // error) where imaged's parent pruning is quiet.
    let c = pair.create("c-parent", &pp.hex_id());
    pair.deviation(
        "SPEC §3.1 step 8: parent pruning is quiet",
        &["rmi", "localhost/e2e/pc:1"],
        &["rm", "localhost/e2e/pc:1"],
        |p, i| {
            assert_eq!(p.lines(), i.lines(), "records differ\n{p}\n{i}");
            assert_eq!(
                i.lines(),
                [
                    "Untagged: localhost/e2e/pc:1".to_owned(),
                    format!("Deleted: {}", pc.hex_id())
                ]
            );
            p.exit(2)
                .stderr_has(&format!("Error: image used by {c}: image is in use"));
            i.exit(0);
            assert_eq!(i.stderr.trim(), "", "{i}");
        },
    );
    pair.assert_same_state("removing a child of an image in use");
    // The parent is dangling and in use: prune leaves it, force removes it and its
    // container.
    pair.prune(&[]);
    pair.rm(&["-f", &pp.hex_id()]);
    assert!(super::harness::imaged_images(&pair.d).is_empty());
}

/// Two unnamed images whose IDs share their first two hex digits (deterministic search).
fn twins() -> (ImageSpec, ImageSpec) {
    let mut seen: std::collections::HashMap<String, ImageSpec> = Default::default();
    for n in 0.. {
        let spec = ImageSpec::new(&format!("twin-{n}"));
        let prefix = spec.hex_id()[..2].to_owned();
        if let Some(other) = seen.remove(&prefix) {
            return (other, spec);
        }
        seen.insert(prefix, spec);
    }
    unreachable!()
}

#[test]
fn an_ambiguous_id_prefix_is_a_documented_deviation() {
    let (a, b) = twins();
    let a = a.named("localhost/e2e/twin:a");
    let pair = Pair::new(&[a.clone(), b.clone()]);
    let prefix = a.hex_id()[..2].to_owned();
    pair.deviation(
        "SPEC §2 step 5: AMBIGUOUS_REFERENCE, not \"image not known\" (moby#17247)",
        &["rmi", &prefix],
        &["rm", &prefix],
        |p, i| {
            p.exit(1)
                .stderr_has(&format!("Error: {prefix}: image not known"));
            i.exit(125).stderr_has("ambiguous");
            assert!(p.lines().is_empty() && i.lines().is_empty());
        },
    );
    pair.assert_same_state("an ambiguous prefix");
    // A longer, unique prefix: both remove the image.
    pair.rm(&[&a.hex_id()[..12]]);
    pair.rm(&[&b.hex_id()[..3]]);
}
