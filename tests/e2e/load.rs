//! `imagectl load`: docker-archive and oci-archive, plain and gzip, on both stores.

use crate::both_stores;
use crate::support::*;

/// Loads one named image in `format` and checks the CLI output and the listing.
fn loads_one_image(d: &Daemon, format: Format) {
    let img = ImageSpec::new(&format!("{format:?}")).named("localhost/e2e/alpha:1");
    let run = load(d, format, std::slice::from_ref(&img));
    assert_eq!(
        run.lines(),
        ["Loaded image: localhost/e2e/alpha:1"],
        "{run}"
    );
    let snap = snapshot(d, &[]);
    assert_eq!(snap.hex_ids(), [img.hex_id()], "{}", snap.raw);
    let listed = snap.by_id(&img.id()).unwrap();
    assert_eq!(listed.names(), ["localhost/e2e/alpha:1"]);
    assert!(!listed.flag("dangling"));
    assert!(
        listed.number("size") > 0,
        "size of a loaded image: {}",
        snap.raw
    );
}

both_stores!(docker_archive, |d: Daemon| loads_one_image(
    &d,
    Format::Docker
));
both_stores!(docker_archive_gzip, |d: Daemon| loads_one_image(
    &d,
    Format::DockerGz
));
both_stores!(oci_archive, |d: Daemon| loads_one_image(&d, Format::Oci));
both_stores!(oci_archive_gzip, |d: Daemon| loads_one_image(
    &d,
    Format::OciGz
));

both_stores!(parent_and_child_from_one_archive, |d: Daemon| {
    let base = ImageSpec::new("base");
    let child = base.child("child").named("localhost/e2e/app:1");
    let run = load(&d, Format::Docker, &[base.clone(), child.clone()]);
    assert!(
        run.stdout.contains("Loaded image: localhost/e2e/app:1"),
        "{run}"
    );

    // The unnamed base has a child: intermediate, hidden without -a.
    let all = snapshot(&d, &[]);
    assert_eq!(all.images.len(), 2, "{}", all.raw);
    let b = all.by_id(&base.id()).expect("base listed with -a");
    assert!(b.flag("intermediate") && !b.flag("dangling"), "{}", all.raw);
    assert_eq!(all.by_id(&child.id()).unwrap().parent_hex(), base.hex_id());

    let run = d.imagectl(&["ls", "--format", "json"]);
    run.ok();
    let shown: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&run.stdout)
        .expect("json array")
        .into_iter()
        .map(|v| imaged_tests::listing::Listed(v).hex_id())
        .collect();
    assert_eq!(
        shown,
        [child.hex_id()],
        "intermediate image listed without -a:\n{run}"
    );
});

#[test]
fn oci_archive_with_several_names_and_images() {
    let d = memory();
    let a = ImageSpec::new("oci-a")
        .named("localhost/e2e/oci:a")
        .named("localhost/e2e/oci:latest");
    let b = ImageSpec::new("oci-b").named("quay.io/e2e/other:2");
    let run = load(&d, Format::OciGz, &[a.clone(), b.clone()]);
    for name in [
        "localhost/e2e/oci:a",
        "localhost/e2e/oci:latest",
        "quay.io/e2e/other:2",
    ] {
        assert!(
            run.stdout.contains(&format!("Loaded image: {name}")),
            "{run}"
        );
    }
    let snap = snapshot(&d, &[]);
    let mut names = snap.by_id(&a.id()).expect("a loaded").names();
    names.sort();
    assert_eq!(names, ["localhost/e2e/oci:a", "localhost/e2e/oci:latest"]);
    assert_eq!(
        snap.by_id(&b.id()).expect("b loaded").names(),
        ["quay.io/e2e/other:2"]
    );
}

#[test]
fn docker_short_names_get_libimage_normalisation() {
    // SPEC §2: writing a name (tag, load) normalises like libimage: no domain ->
    // `localhost/`. podman 4.3 loads `busybox:latest` from a docker-archive as
    // `localhost/busybox:latest` too (see peers.rs).
    let d = memory();
    let img = ImageSpec::new("short")
        .named("busybox:latest")
        .named("someone/tool:1.0");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let snap = snapshot(&d, &[]);
    let mut names = snap.by_id(&img.id()).expect("loaded").names();
    names.sort();
    assert_eq!(
        names,
        ["localhost/busybox:latest", "localhost/someone/tool:1.0"]
    );
    let run = d.imagectl(&["rm", "busybox"]);
    assert_eq!(run.lines(), ["Untagged: localhost/busybox:latest"], "{run}");
}

#[test]
fn a_loaded_name_moves_from_the_image_that_had_it() {
    let d = memory();
    let old = ImageSpec::new("old").named("localhost/e2e/moving:1");
    let new = ImageSpec::new("new").named("localhost/e2e/moving:1");
    load(&d, Format::Docker, std::slice::from_ref(&old));
    load(&d, Format::Oci, std::slice::from_ref(&new));
    let snap = snapshot(&d, &[]);
    assert_eq!(
        snap.by_id(&new.id()).expect("new").names(),
        ["localhost/e2e/moving:1"]
    );
    let old_listed = snap.by_id(&old.id()).expect("old image kept, unnamed");
    assert!(
        old_listed.names().is_empty() && old_listed.flag("dangling"),
        "{}",
        snap.raw
    );
    let dangling = snapshot(&d, &["--filter", "dangling=true"]);
    assert_eq!(dangling.hex_ids(), [old.hex_id()]);
}

#[test]
fn loading_the_same_archive_twice_changes_nothing_but_its_last_use() {
    let d = memory();
    let img = ImageSpec::new("twice").named("localhost/e2e/twice:1");
    load(&d, Format::Docker, std::slice::from_ref(&img));
    let before = snapshot(&d, &[]);
    load(&d, Format::DockerGz, std::slice::from_ref(&img));
    let after = snapshot(&d, &[]);
    // A load is a use (SPEC §1 "Usage data"): only `LastUsed` moves, forward.
    let without_use = |s: &imaged_tests::listing::Snapshot| -> Vec<serde_json::Value> {
        s.images
            .iter()
            .map(|i| {
                let mut v = i.0.clone();
                if let Some(o) = v.as_object_mut() {
                    o.remove("LastUsed");
                }
                v
            })
            .collect()
    };
    assert_eq!(without_use(&after), without_use(&before));
    let used = |s: &imaged_tests::listing::Snapshot| {
        s.images[0].0["LastUsed"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(!used(&before).is_empty(), "{}", before.raw);
    assert!(
        used(&after) >= used(&before),
        "{} then {}",
        before.raw,
        after.raw
    );
}
