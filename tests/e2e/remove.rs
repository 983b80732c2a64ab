//! `imagectl rm`: podman's output, exit codes and removal rules (SPEC §3), Docker policy.

use crate::both_stores;
use crate::support::*;

/// Registers a container on `image` and returns its ID (the last word printed).
pub(crate) fn register(d: &Daemon, image: &str, extra: &[&str]) -> String {
    let mut args = vec!["container", "register"];
    args.extend_from_slice(extra);
    args.push(image);
    let run = d.imagectl(&args);
    run.ok();
    let id = run
        .stdout
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(id.len(), 64, "container register prints the new ID:\n{run}");
    assert!(
        container_ids(d).contains(&id),
        "registered container not listed"
    );
    id
}

/// The output of `imagectl container ls --format json` (full IDs).
pub(crate) fn container_ids(d: &Daemon) -> String {
    let run = d.imagectl(&["container", "ls", "--format", "json"]);
    run.ok();
    run.stdout.clone()
}

both_stores!(by_name_deletes_a_single_named_image, |d: Daemon| {
    let img = ImageSpec::new("solo").named("localhost/e2e/solo:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let run = d.imagectl(&["rm", "localhost/e2e/solo:1"]);
    run.ok();
    assert_eq!(
        run.lines(),
        [
            "Untagged: localhost/e2e/solo:1".to_owned(),
            format!("Deleted: {}", img.hex_id())
        ]
    );
    assert!(snapshot(&d, &[]).images.is_empty());
});

both_stores!(child_removal_prunes_the_dangling_parent, |d: Daemon| {
    let base = ImageSpec::new("p-base");
    let child = base.child("p-child").named("localhost/e2e/child:1");
    load(&d, Format::Docker, &[base.clone(), child.clone()]);
    let run = d.imagectl(&["rm", "localhost/e2e/child:1"]);
    run.ok();
    assert_eq!(
        run.lines(),
        [
            "Untagged: localhost/e2e/child:1".to_owned(),
            format!("Deleted: {}", child.hex_id()),
            format!("Deleted: {}", base.hex_id()),
        ]
    );
    assert!(snapshot(&d, &[]).images.is_empty());
});

#[test]
fn no_prune_keeps_the_parent() {
    let d = memory();
    let base = ImageSpec::new("np-base");
    let child = base.child("np-child").named("localhost/e2e/child:1");
    load(&d, Format::Docker, &[base.clone(), child.clone()]);
    let run = d.imagectl(&["rm", "--no-prune", "localhost/e2e/child:1"]);
    assert_eq!(
        run.ok().lines(),
        [
            "Untagged: localhost/e2e/child:1".to_owned(),
            format!("Deleted: {}", child.hex_id())
        ]
    );
    let snap = snapshot(&d, &[]);
    assert_eq!(snap.hex_ids(), [base.hex_id()]);
    assert!(
        snap.images[0].flag("dangling"),
        "the parent is dangling now: {}",
        snap.raw
    );
}

#[test]
fn a_parent_with_children_is_only_untagged() {
    // SPEC §3.1 step 6: children do not block; the parent's record goes (its layers stay
    // for the child) and it is reported untagged, not deleted.
    let d = memory();
    let base = ImageSpec::new("pc-base").named("localhost/e2e/base:1");
    let child = base.child("pc-child").named("localhost/e2e/child:1");
    load(&d, Format::Docker, &[base.clone(), child.clone()]);
    let run = d.imagectl(&["rm", "localhost/e2e/base:1"]);
    assert_eq!(run.ok().lines(), ["Untagged: localhost/e2e/base:1"]);
    let snap = snapshot(&d, &[]);
    assert_eq!(snap.hex_ids(), [child.hex_id()], "{}", snap.raw);
    d.imagectl(&["inspect", "localhost/e2e/child:1"]).ok();
    let run = d.imagectl(&["rm", "localhost/e2e/child:1"]);
    assert_eq!(
        run.ok().lines(),
        [
            "Untagged: localhost/e2e/child:1".to_owned(),
            format!("Deleted: {}", child.hex_id())
        ]
    );
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn by_name_on_a_multi_named_image_untags_only() {
    let d = memory();
    let img = ImageSpec::new("multi")
        .named("localhost/e2e/multi:1")
        .named("localhost/e2e/multi:2");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    // Force changes nothing here (podman#10685).
    let run = d.imagectl(&["rm", "-f", "localhost/e2e/multi:2"]);
    assert_eq!(run.ok().lines(), ["Untagged: localhost/e2e/multi:2"]);
    let snap = snapshot(&d, &[]);
    assert_eq!(
        snap.by_id(&img.id()).expect("kept").names(),
        ["localhost/e2e/multi:1"]
    );
}

#[test]
fn by_id_with_several_names_needs_force() {
    let d = memory();
    let img = ImageSpec::new("byid")
        .named("localhost/e2e/byid:1")
        .named("localhost/e2e/byid:2");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let before = snapshot(&d, &[]);
    for reference in [img.hex_id(), img.id(), img.hex_id()[..12].to_owned()] {
        let run = d.imagectl(&["rm", &reference]);
        run.exit(125)
            .stderr_has("please force removal")
            .stderr_has(&img.hex_id());
        assert_eq!(
            snapshot(&d, &[]).raw,
            before.raw,
            "failed rm changed the store"
        );
    }
    let run = d.imagectl(&["rm", "-f", &img.hex_id()[..12]]);
    let mut lines = run.ok().lines();
    assert_eq!(
        lines.pop(),
        Some(format!("Deleted: {}", img.hex_id()).as_str())
    );
    lines.sort();
    assert_eq!(
        lines,
        [
            "Untagged: localhost/e2e/byid:1",
            "Untagged: localhost/e2e/byid:2"
        ]
    );
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn unknown_references_exit_1_unless_ignored() {
    let d = memory();
    let run = d.imagectl(&["rm", "debian:6.0.10"]);
    run.exit(1).stderr_has("debian:6.0.10: image not known");
    let run = d.imagectl(&["rm", "-i", "debian:6.0.10"]);
    run.ok();
    assert!(run.stdout.is_empty(), "{run}");
}

/// A memory daemon serving Prometheus metrics, and their address.
fn memory_with_metrics() -> (Daemon, String) {
    let d = Daemon::start_custom(
        "memory",
        imaged_tests::daemon::Custom {
            args: Vec::new(),
            env: vec![imaged_tests::metrics::listen_env()],
        },
    );
    let addr = imaged_tests::metrics::address(&d);
    (d, addr)
}

/// The daemon's `imaged_grpc_requests_total` lines for `method`.
fn calls_of(addr: &str, method: &str) -> Vec<String> {
    let needle = format!("grpc_method=\"{method}\"");
    imaged_tests::metrics::scrape(addr)
        .lines()
        .filter(|l| l.starts_with("imaged_grpc_requests_total") && l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn several_references_are_removed_in_order() {
    let (d, metrics) = memory_with_metrics();
    let img = ImageSpec::new("two")
        .named("localhost/e2e/two:a")
        .named("localhost/e2e/two:b");
    let other = ImageSpec::new("other").named("localhost/e2e/other:1");
    load(&d, Format::Docker, &[img.clone(), other.clone()]);
    // Two names of one image: the image is deleted at the end (podman#930); an unknown
    // reference on the way makes the exit code 1 but does not stop the others.
    let run = d.imagectl(&["rm", "localhost/e2e/two:a", "nope", "localhost/e2e/two:b"]);
    run.exit(1).stderr_has("nope: image not known");
    assert_eq!(
        run.lines(),
        [
            "Untagged: localhost/e2e/two:a".to_owned(),
            "Untagged: localhost/e2e/two:b".to_owned(),
            format!("Deleted: {}", img.hex_id()),
        ]
    );
    assert_eq!(snapshot(&d, &[]).hex_ids(), [other.hex_id()]);
    // One RemoveImages call for the three references, no RemoveImage.
    let batch = calls_of(&metrics, "RemoveImages");
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert!(batch[0].ends_with("grpc_code=\"OK\"} 1"), "{batch:?}");
    assert_eq!(calls_of(&metrics, "RemoveImage"), Vec::<String>::new());
}

#[test]
fn in_use_exits_2_and_force_removes_the_container() {
    let d = memory();
    let img = ImageSpec::new("used").named("localhost/e2e/used:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let ctr = register(&d, "localhost/e2e/used:1", &[]);
    let before = snapshot(&d, &[]);
    assert_eq!(before.images[0].number("containers"), 1, "{}", before.raw);

    let run = d.imagectl(&["rm", "localhost/e2e/used:1"]);
    run.exit(2)
        .stderr_has("image is in use by a container")
        .stderr_has(&ctr);
    assert_eq!(snapshot(&d, &[]).raw, before.raw);

    let run = d.imagectl(&["rm", "-f", "localhost/e2e/used:1"]);
    run.ok();
    assert!(
        run.lines()
            .contains(&format!("Deleted: {}", img.hex_id()).as_str()),
        "{run}"
    );
    assert!(snapshot(&d, &[]).images.is_empty());
    assert!(
        !container_ids(&d).contains(&ctr),
        "container removed under force"
    );
}

#[test]
fn a_running_container_blocks_even_with_force() {
    let d = memory();
    let img = ImageSpec::new("running").named("localhost/e2e/running:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let ctr = register(&d, "localhost/e2e/running:1", &["--state", "running"]);
    let before = snapshot(&d, &[]);
    let run = d.imagectl(&["rm", "-f", "localhost/e2e/running:1"]);
    assert_ne!(run.code(), 0, "{run}");
    run.stderr_has(&ctr);
    assert_eq!(snapshot(&d, &[]).raw, before.raw);
    d.imagectl(&["container", "state", &ctr, "stopped"]).ok();
    d.imagectl(&["rm", "-f", "localhost/e2e/running:1"]).ok();
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn dry_run_prints_what_would_happen_and_changes_nothing() {
    let d = memory();
    let base = ImageSpec::new("dry-base");
    let child = base.child("dry-child").named("localhost/e2e/dry:1");
    load(&d, Format::Docker, &[base, child]);
    let before = snapshot(&d, &[]);
    let dry = d.imagectl(&["rm", "--dry-run", "localhost/e2e/dry:1"]);
    dry.ok();
    assert_eq!(
        snapshot(&d, &[]).raw,
        before.raw,
        "dry run changed the store"
    );
    let real = d.imagectl(&["rm", "localhost/e2e/dry:1"]);
    assert_eq!(
        dry.lines(),
        real.ok().lines(),
        "dry run differs from the real removal"
    );
    assert_eq!(real.lines().len(), 3);
}

#[test]
fn docker_policy_conflicts_use_dockers_rules() {
    let d = memory();
    let img = ImageSpec::new("docker")
        .named("localhost/e2e/one:1")
        .named("localhost/e2e/two:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let before = snapshot(&d, &[]);
    let run = d.imagectl(&["rm", "--policy", "docker", &img.hex_id()]);
    // Docker's CLI exits 1 on any failure.
    run.exit(1)
        .stderr_has("(must be forced) - image is referenced in multiple repositories");
    assert_eq!(snapshot(&d, &[]).raw, before.raw);
    let run = d.imagectl(&["rm", "--policy", "docker", "-f", &img.hex_id()]);
    run.ok();
    assert!(
        run.lines()
            .contains(&format!("Deleted: sha256:{}", img.hex_id()).as_str()),
        "{run}"
    );
    assert!(snapshot(&d, &[]).images.is_empty());
}
