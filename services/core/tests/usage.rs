//! Usage data (SPEC §1 "Usage data", issue 15): loads, pulls and tags set an image's
//! `last_used` in the change set they commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::engine::staged::PulledManifest;
use imaged_core::model::Image;
use imaged_core::ops::LoadOptions;
use imaged_core::time::now;
use imaged_core::{ChangeSet, Engine, EngineConfig, MemoryStore, Store};
use imaged_testkit::archive::{SynthImage, docker_archive};
use imaged_testkit::images::{ImageSpec, add_image};

fn engine() -> (Arc<MemoryStore>, Engine) {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    (store, e)
}

fn image(store: &MemoryStore, id: &Digest) -> Image {
    Image::clone(store.view().image(id).expect("image present"))
}

fn load(e: &Engine, images: &[SynthImage]) {
    e.load(
        &mut docker_archive(images, false).as_slice(),
        &LoadOptions::default(),
    )
    .unwrap();
}

#[test]
fn a_load_stamps_new_and_reloaded_images_not_those_losing_a_name() {
    let (s, e) = engine();
    let a = SynthImage::new("use-a").named("use/a:1");
    let b = SynthImage::new("use-b").named("use/b:1");
    let before = now();
    load(&e, &[a.clone(), b.clone()]);
    let after = now();
    for id in [a.id(), b.id()] {
        let img = image(&s, &id);
        assert_eq!(
            img.last_used,
            Some(img.added),
            "a new image is used when added"
        );
        assert!((before..=after).contains(&img.added));
    }
    let b_first = image(&s, &b.id()).last_used;

    // `a` loaded again, taking `b`'s name: `a` is used, `b` (which only lost a name) not.
    let again = SynthImage {
        names: vec!["use/b:1".into()],
        ..a.clone()
    };
    let before = now();
    load(&e, &[again]);
    let a_now = image(&s, &a.id());
    assert!(a_now.last_used.unwrap() >= before, "{:?}", a_now.last_used);
    assert!(a_now.last_used.unwrap() > a_now.added);
    assert_eq!(a_now.names, vec!["localhost/use/b:1", "localhost/use/a:1"]);
    let b_now = image(&s, &b.id());
    assert!(b_now.names.is_empty());
    assert_eq!(b_now.last_used, b_first);
}

#[test]
fn a_read_only_image_loaded_again_is_left_alone() {
    let (s, e) = engine();
    let ro = SynthImage::new("use-ro").named("use/ro:1");
    load(&e, std::slice::from_ref(&ro));
    let mut rec = image(&s, &ro.id());
    rec.read_only = true;
    rec.last_used = None;
    s.apply(&ChangeSet {
        put_images: vec![Arc::new(rec.clone())],
        ..ChangeSet::default()
    })
    .unwrap();
    load(&e, std::slice::from_ref(&ro));
    assert_eq!(
        image(&s, &ro.id()),
        rec,
        "read-only records are never modified"
    );
}

#[test]
fn a_pull_stamps_the_image_it_commits() {
    let (s, e) = engine();
    let img = SynthImage::new("use-pulled");
    let (layers, config, manifest) = img.oci_blobs(false);
    let mut staging = e.begin_pull().unwrap();
    for blob in layers.iter().chain([&config, &manifest]) {
        staging
            .put_blob(&mut blob.as_slice(), &Digest::of(blob))
            .unwrap();
    }
    let before = now();
    staging
        .commit(&PulledManifest {
            digest: Digest::of(&manifest),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: manifest.len() as u64,
            name: Some("quay.io/use/pulled:1".into()),
            extra_digests: Vec::new(),
        })
        .unwrap();
    let got = image(&s, &img.id());
    assert_eq!(got.names, vec!["quay.io/use/pulled:1"]);
    assert_eq!(got.last_used, Some(got.added));
    assert!(got.added >= before);
}

#[test]
fn a_tag_that_adds_a_name_stamps_the_image() {
    let (s, e) = engine();
    let id = add_image(&*s, &ImageSpec::base("use-tag", 10).name("localhost/t:1")).unwrap();
    let other = add_image(&*s, &ImageSpec::base("use-other", 20).name("localhost/t:2")).unwrap();
    assert_eq!(image(&s, &id).last_used, None);

    // A name the image has already: nothing is written, no use recorded.
    e.tag("localhost/t:1", &["t:1".into()]).unwrap();
    assert_eq!(image(&s, &id).last_used, None);

    let before = now();
    e.tag("localhost/t:1", &["t:new".into(), "t:2".into()])
        .unwrap();
    let after = now();
    let tagged = image(&s, &id);
    assert!(
        tagged
            .last_used
            .is_some_and(|t| (before..=after).contains(&t)),
        "{:?}",
        tagged.last_used
    );
    // The image that lost `t:2` was not used.
    let lost = image(&s, &other);
    assert!(lost.names.is_empty());
    assert_eq!(lost.last_used, None);

    // Untagging is not a use.
    e.untag("localhost/t:new", &["t:new".into()]).unwrap();
    assert_eq!(image(&s, &id).last_used, tagged.last_used);
}
