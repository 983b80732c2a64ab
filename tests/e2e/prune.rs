//! `imagectl prune`: selection, fixpoint, filters, dry run (SPEC §4).

use crate::both_stores;
use crate::remove::register;
use crate::support::*;

both_stores!(prunes_dangling_images_only, |d: Daemon| {
    let named = ImageSpec::new("keep").named("localhost/e2e/keep:1");
    let loose = ImageSpec::new("loose");
    load(&d, Format::Docker, &[named.clone(), loose.clone()]);
    let run = d.imagectl(&["prune", "-f"]);
    run.ok().stdout_has(&loose.hex_id());
    assert!(!run.stdout.contains(&named.hex_id()), "{run}");
    assert_eq!(snapshot(&d, &[]).hex_ids(), [named.hex_id()]);

    // Nothing left to prune: no output.
    let run = d.imagectl(&["prune", "-f"]);
    assert!(run.ok().stdout.trim().is_empty(), "{run}");
});

both_stores!(prune_all_removes_every_unused_image, |d: Daemon| {
    let used = ImageSpec::new("used").named("localhost/e2e/used:1");
    let unused = ImageSpec::new("unused").named("localhost/e2e/unused:1");
    let base = ImageSpec::new("base");
    let child = base.child("child").named("localhost/e2e/child:1");
    load(
        &d,
        Format::Docker,
        &[used.clone(), unused.clone(), base.clone(), child.clone()],
    );
    register(&d, "localhost/e2e/used:1", &[]);
    let run = d.imagectl(&["prune", "-a", "-f"]);
    run.ok();
    for gone in [&unused, &base, &child] {
        run.stdout_has(&gone.hex_id());
    }
    assert_eq!(snapshot(&d, &[]).hex_ids(), [used.hex_id()]);
});

#[test]
fn prune_repeats_until_nothing_is_left() {
    // An unnamed chain: only the top is dangling; its parent becomes dangling once the top
    // is gone, and the fixpoint removes it too.
    let d = memory();
    let base = ImageSpec::new("fix-base");
    let mid = base.child("fix-mid");
    let top = mid.child("fix-top");
    load(
        &d,
        Format::Docker,
        &[base.clone(), mid.clone(), top.clone()],
    );
    let run = d.imagectl(&["prune", "-f"]);
    run.ok();
    for img in [&base, &mid, &top] {
        run.stdout_has(&img.hex_id());
    }
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn prune_with_label_filter() {
    let d = memory();
    let scratch = ImageSpec::new("scratch")
        .named("localhost/e2e/s:1")
        .label("tier", "scratch");
    let keep = ImageSpec::new("keepme")
        .named("localhost/e2e/k:1")
        .label("tier", "prod");
    load(&d, Format::Docker, &[scratch.clone(), keep.clone()]);
    let run = d.imagectl(&["prune", "-a", "-f", "--filter", "label=tier=scratch"]);
    run.ok().stdout_has(&scratch.hex_id());
    assert_eq!(snapshot(&d, &[]).hex_ids(), [keep.hex_id()]);
}

#[test]
fn prune_dry_run_changes_nothing() {
    let d = memory();
    let loose = ImageSpec::new("dry-loose");
    let named = ImageSpec::new("dry-named").named("localhost/e2e/n:1");
    load(&d, Format::Docker, &[loose.clone(), named]);
    let before = snapshot(&d, &[]);
    let dry = d.imagectl(&["prune", "-a", "-f", "--dry-run"]);
    dry.ok().stdout_has(&loose.hex_id());
    assert_eq!(
        snapshot(&d, &[]).raw,
        before.raw,
        "dry run changed the store"
    );
    let real = d.imagectl(&["prune", "-a", "-f"]);
    assert_eq!(dry.lines(), real.ok().lines());
    assert!(snapshot(&d, &[]).images.is_empty());
}

#[test]
fn external_containers_hold_images_unless_external() {
    let d = memory();
    let img = ImageSpec::new("ext").named("localhost/e2e/ext:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let ctr = register(&d, "localhost/e2e/ext:1", &["--external"]);
    let run = d.imagectl(&["prune", "-a", "-f"]);
    assert!(run.ok().stdout.trim().is_empty(), "{run}");
    assert_eq!(snapshot(&d, &[]).hex_ids(), [img.hex_id()]);
    d.imagectl(&["prune", "-a", "-f", "--external"])
        .ok()
        .stdout_has(&img.hex_id());
    assert!(snapshot(&d, &[]).images.is_empty());
    assert!(
        !crate::remove::container_ids(&d).contains(&ctr),
        "external container removed"
    );
}
