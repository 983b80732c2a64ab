//! LoadImages with docker-archives: every layout, plain and gzip, names, sharing,
//! idempotence and names moving between images.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load_support;

use imaged_core::Store;
use imaged_core::digest::Digest;
use imaged_core::ops::{ArchiveFormat, EventKind, LoadOptions};
use imaged_testkit::archive::{
    self as synth, ArchiveOptions, DockerLayout, SynthImage, docker_archive, docker_archive_with,
};
use load_support::Rig;

fn base() -> SynthImage {
    let mut b = SynthImage::new("base")
        .named("busybox:latest")
        .label("org.x", "y");
    b.user = "1000:1000".into();
    b
}

fn child() -> SynthImage {
    base()
        .child(b"app bits", "RUN make")
        .named("quay.io/org/app:1")
}

#[test]
fn loads_every_layout_plain_and_gzip() {
    let layouts = [
        DockerLayout::Legacy,
        DockerLayout::Symlinks,
        DockerLayout::Blobs,
    ];
    for docker_layout in layouts {
        for gzip in [false, true] {
            for gzip_layers in [false, true] {
                let opts = ArchiveOptions {
                    gzip,
                    gzip_layers,
                    docker_layout,
                    wrong_diff_id: false,
                };
                let ctx = format!("{opts:?}");
                let rig = Rig::new();
                let bytes = docker_archive_with(&[base(), child()], &opts);
                assert_eq!(synth::is_gzip(&bytes), gzip, "{ctx}");
                let report = rig.load(&bytes).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                let ids: Vec<Digest> = report.images.iter().map(|i| i.id).collect();
                assert_eq!(ids, vec![base().id(), child().id()], "{ctx}");
                assert_eq!(report.images[0].names, vec!["localhost/busybox:latest"]);
                assert_eq!(report.images[1].names, vec!["quay.io/org/app:1"]);
                assert!(report.moved_names.is_empty());

                let c = rig.image(&child().id());
                assert_eq!(
                    c.diff_ids().collect::<Vec<_>>(),
                    child().diff_ids(),
                    "{ctx}"
                );
                let gz_layer = c.layers[0].blob.media_type.ends_with("+gzip");
                assert_eq!(gz_layer, gzip_layers, "{ctx}");
                assert_eq!(c.layers[0].blob.digest == c.layers[0].diff_id, !gzip_layers);
                // layer 0 is shared with the base image: stored once.
                // base: layer + config + manifest; child: 1 more layer + config + manifest.
                assert_eq!(rig.store.blob_count(), 6, "{ctx}");
                let cfg = rig
                    .store
                    .read_blob(&c.config_blob.clone().unwrap().digest)
                    .unwrap();
                assert_eq!(Digest::of(&cfg.unwrap()), c.id, "config digest = image ID");
            }
        }
    }
}

#[test]
fn fills_the_image_record() {
    let rig = Rig::new();
    let before = imaged_core::time::now();
    rig.load(&docker_archive(&[base(), child()], false))
        .unwrap();
    let c = rig.image(&child().id());
    assert!(c.added >= before);
    assert_eq!(c.names, vec!["quay.io/org/app:1"]);
    assert_eq!(c.config.run.user, "1000:1000");
    assert_eq!(c.config.labels.get("org.x").map(String::as_str), Some("y"));
    assert_eq!(
        c.config.created,
        Some(synth::DEFAULT_CREATED + 1_000_000_000)
    );
    assert_eq!(*c.config.platform, imaged_core::model::Platform::host());
    assert_eq!(c.config.history.len(), 2);
    assert_eq!(c.config.history[1].created_by, "RUN make");
    assert_eq!(c.config.run.env.len(), 1);
    assert!(c.instances.is_none() && !c.read_only);
    assert_eq!(c.last_used, Some(c.added), "a load is a use (SPEC §1)");
    // The synthesised manifest is stored, is valid OCI and names config and layers.
    assert_eq!(c.digests, vec![c.manifest.digest]);
    let m = rig
        .store
        .read_blob(&c.manifest.digest)
        .unwrap()
        .expect("manifest stored");
    let m: oci_spec::image::ImageManifest = serde_json::from_slice(&m).unwrap();
    assert_eq!(m.config().digest().to_string(), c.id.to_string());
    let layer_digests: Vec<String> = m.layers().iter().map(|l| l.digest().to_string()).collect();
    let want: Vec<String> = c.layers.iter().map(|l| l.blob.digest.to_string()).collect();
    assert_eq!(layer_digests, want);
}

#[test]
fn the_synthesised_manifest_is_deterministic() {
    let a = Rig::new();
    let b = Rig::new();
    a.load(&docker_archive(&[child()], false)).unwrap();
    b.load(&docker_archive(&[child()], true)).unwrap();
    let (ma, mb) = (a.image(&child().id()), b.image(&child().id()));
    assert_eq!(ma.manifest, mb.manifest);
    // Same image from another layout with the same (uncompressed) layers: same manifest.
    let c = Rig::new();
    let opts = ArchiveOptions {
        docker_layout: DockerLayout::Blobs,
        ..ArchiveOptions::default()
    };
    c.load(&docker_archive_with(&[child()], &opts)).unwrap();
    assert_eq!(c.image(&child().id()).manifest, ma.manifest);
}

#[test]
fn reloading_is_idempotent_but_for_last_used() {
    let rig = Rig::new();
    let bytes = docker_archive(&[base(), child()], true);
    let first = rig.load(&bytes).unwrap();
    let mut snap = rig.snapshot();
    let second = rig.load(&bytes).unwrap();
    assert_eq!(first, second);
    // Loading again is a use (SPEC §1): `last_used` moves, nothing else does.
    let mut after = rig.snapshot();
    for (a, b) in after.images.iter_mut().zip(snap.images.iter_mut()) {
        assert!(
            a.last_used > b.last_used,
            "{:?} → {:?}",
            b.last_used,
            a.last_used
        );
        a.last_used = None;
        b.last_used = None;
    }
    assert_eq!(after, snap);
}

#[test]
fn a_name_moves_from_the_old_image() {
    let rig = Rig::new();
    let old = SynthImage::new("old").named("app:1").named("app:keep");
    rig.load(&docker_archive(std::slice::from_ref(&old), false))
        .unwrap();
    let new = SynthImage::new("new").named("app:1");
    let report = rig
        .load(&docker_archive(std::slice::from_ref(&new), false))
        .unwrap();
    assert_eq!(report.moved_names, vec!["localhost/app:1"]);
    assert_eq!(report.images[0].names, vec!["localhost/app:1"]);
    assert_eq!(rig.image(&old.id()).names, vec!["localhost/app:keep"]);
    assert_eq!(rig.image(&new.id()).names, vec!["localhost/app:1"]);
    let view = rig.store.view();
    assert_eq!(view.image_by_name("localhost/app:1").unwrap().id, new.id());

    // Moving the last name leaves the old image without names (dangling).
    let newer = SynthImage::new("newer").named("app:keep");
    let report = rig
        .load(&docker_archive(std::slice::from_ref(&newer), false))
        .unwrap();
    assert_eq!(report.moved_names, vec!["localhost/app:keep"]);
    assert!(rig.image(&old.id()).names.is_empty());
    assert_eq!(rig.images().len(), 3);
}

#[test]
fn names_swap_between_existing_images() {
    let rig = Rig::new();
    let a = SynthImage::new("a").named("x:1");
    let b = SynthImage::new("b").named("x:2");
    rig.load(&docker_archive(&[a.clone(), b.clone()], false))
        .unwrap();
    let a2 = SynthImage {
        names: vec!["x:2".into()],
        ..a.clone()
    };
    let b2 = SynthImage {
        names: vec!["x:1".into()],
        ..b.clone()
    };
    let report = rig.load(&docker_archive(&[a2, b2], false)).unwrap();
    assert_eq!(report.moved_names, vec!["localhost/x:1", "localhost/x:2"]);
    assert_eq!(rig.image(&a.id()).names, vec!["localhost/x:2"]);
    assert_eq!(rig.image(&b.id()).names, vec!["localhost/x:1"]);
    assert_eq!(
        rig.store.check(false).unwrap().problems,
        Vec::<String>::new()
    );
}

#[test]
fn reloading_with_new_names_merges() {
    let rig = Rig::new();
    let img = SynthImage::new("m").named("m:1");
    rig.load(&docker_archive(std::slice::from_ref(&img), false))
        .unwrap();
    let added = rig.image(&img.id()).added;
    let again = SynthImage {
        names: vec!["m:2".into()],
        ..img.clone()
    };
    let report = rig.load(&docker_archive(&[again], false)).unwrap();
    let names = vec!["localhost/m:2", "localhost/m:1"];
    assert_eq!(report.images[0].names, names);
    let rec = rig.image(&img.id());
    assert_eq!(rec.names, names);
    assert_eq!(rec.added, added);
    assert!(report.moved_names.is_empty());
}

#[test]
fn the_last_image_claiming_a_name_gets_it() {
    let rig = Rig::new();
    let a = SynthImage::new("a").named("dup:1");
    let b = SynthImage::new("b").named("dup:1");
    let report = rig
        .load(&docker_archive(&[a.clone(), b.clone()], false))
        .unwrap();
    assert!(report.images[0].names.is_empty());
    assert_eq!(report.images[1].names, vec!["localhost/dup:1"]);
    assert!(report.moved_names.is_empty());
}

#[test]
fn default_names_go_to_an_unnamed_image() {
    let rig = Rig::new();
    let img = SynthImage::new("anon");
    let opts = LoadOptions {
        format: ArchiveFormat::Docker,
        default_names: vec!["mine".into(), "quay.io/me/x:2".into()],
    };
    let report = rig
        .load_with(&docker_archive(std::slice::from_ref(&img), false), &opts)
        .unwrap();
    assert_eq!(
        report.images[0].names,
        vec!["localhost/mine:latest", "quay.io/me/x:2"]
    );
    // A named image keeps its archive names only.
    let named = SynthImage::new("named").named("n:1");
    let report = rig
        .load_with(&docker_archive(&[named], false), &opts)
        .unwrap();
    assert_eq!(report.images[0].names, vec!["localhost/n:1"]);
    // An invalid default name fails before anything is read.
    let bad = LoadOptions {
        default_names: vec!["UPPER".into()],
        ..LoadOptions::default()
    };
    assert!(rig.load_with(b"not even read", &bad).is_err());
}

#[test]
fn unnamed_images_load_without_names() {
    let rig = Rig::new();
    let img = SynthImage::new("anon");
    let report = rig
        .load(&docker_archive(std::slice::from_ref(&img), false))
        .unwrap();
    assert_eq!(report.images[0].id, img.id());
    assert!(report.images[0].names.is_empty());
}

#[test]
fn one_load_event_per_image() {
    let rig = Rig::new();
    rig.load(&docker_archive(&[base(), SynthImage::new("anon")], false))
        .unwrap();
    let events = rig.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.kind == EventKind::Load));
    assert_eq!(events[0].image_id, Some(base().id()));
    assert_eq!(events[0].name, "localhost/busybox:latest");
    assert_eq!(events[1].name, "");
    // A reload that changes nothing still reports the images it read.
    rig.load(&docker_archive(&[base()], false)).unwrap();
    assert_eq!(rig.events.lock().unwrap().len(), 3);
}

#[test]
fn large_layers_and_a_large_config_stream_through() {
    // 6 MiB of poorly compressible content and a config over the in-memory JSON limit
    // (1 MiB: read back from the store) yet within max_load_metadata_bytes (4 MiB), with
    // gzip layers decompressed on the fly.
    let mut x: u32 = 1;
    let content: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut big = SynthImage::default().named("big:1");
    big.layers.push(content);
    big.labels.insert("padding".into(), "p".repeat(3 << 20));
    for gzip_layers in [false, true] {
        let rig = Rig::new();
        let opts = ArchiveOptions {
            gzip_layers,
            ..ArchiveOptions::default()
        };
        let report = rig
            .load(&docker_archive_with(std::slice::from_ref(&big), &opts))
            .unwrap();
        assert_eq!(report.images[0].id, big.id());
        let img = rig.image(&big.id());
        assert_eq!(img.diff_ids().collect::<Vec<_>>(), big.diff_ids());
        assert_eq!(img.config.labels["padding"].len(), 3 << 20);
    }
}

#[test]
fn read_only_images_are_never_modified() {
    let rig = Rig::new();
    let ro = SynthImage::new("ro").named("ro:1");
    rig.load(&docker_archive(std::slice::from_ref(&ro), false))
        .unwrap();
    let mut rec = rig.image(&ro.id());
    rec.read_only = true;
    let change = imaged_core::ChangeSet {
        put_images: vec![std::sync::Arc::new(rec)],
        ..imaged_core::ChangeSet::default()
    };
    rig.store.apply(&change).unwrap();
    let before = rig.snapshot();
    // Reloading it unchanged is fine.
    rig.load(&docker_archive(std::slice::from_ref(&ro), false))
        .unwrap();
    assert_eq!(rig.snapshot(), before);
    // Taking its name, or adding one to it, is not.
    let thief = SynthImage::new("thief").named("ro:1");
    let err = rig.load(&docker_archive(&[thief], false)).unwrap_err();
    assert_eq!(err.kind, imaged_core::ErrorKind::ReadOnlyImage, "{err}");
    let more = SynthImage {
        names: vec!["ro:2".into()],
        ..ro.clone()
    };
    let err = rig.load(&docker_archive(&[more], false)).unwrap_err();
    assert_eq!(err.kind, imaged_core::ErrorKind::ReadOnlyImage, "{err}");
    assert_eq!(rig.snapshot(), before);
}
