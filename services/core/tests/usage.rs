//! Usage data (SPEC §1 "Usage data", issue 15): loads, pulls and tags set an image's
//! `last_used` in the change set they commit, and the `unused-since` ListImages filter
//! selects images by their last use (`last_used`, else `added`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::engine::staged::PulledManifest;
use imaged_core::error::ErrorKind;
use imaged_core::model::Image;
use imaged_core::ops::{ListOptions, LoadOptions, RegisterContainer};
use imaged_core::time::now;
use imaged_core::{ChangeSet, Engine, EngineConfig, MemoryStore, Store};
use imaged_testkit::archive::{SynthImage, docker_archive};
use imaged_testkit::images::{ImageSpec, add_image};

const S: i64 = 1_000_000_000;

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

/// IDs listed with `filters`, sorted.
fn listed(e: &Engine, filters: &[&str]) -> imaged_core::Result<Vec<Digest>> {
    let page = e.list(&ListOptions {
        filters: filters.iter().map(|f| (*f).to_owned()).collect(),
        all: true,
        ..ListOptions::default()
    })?;
    let mut ids: Vec<Digest> = page.images.iter().map(|i| i.id).collect();
    ids.sort();
    Ok(ids)
}

fn sorted(mut ids: Vec<Digest>) -> Vec<Digest> {
    ids.sort();
    ids
}

/// Sets `last_used` of `id` directly in the store.
fn set_last_used(s: &MemoryStore, id: &Digest, t: Option<i64>) {
    let mut img = image(s, id);
    img.last_used = t;
    s.apply(&ChangeSet {
        put_images: vec![Arc::new(img)],
        ..ChangeSet::default()
    })
    .unwrap();
}

#[test]
fn unused_since_selects_by_last_use_else_added() {
    let (s, e) = engine();
    // Added at 100 s, 200 s and 300 s (Unix time).
    let old = add_image(&*s, &ImageSpec::base("u-old", 100).name("localhost/u:old")).unwrap();
    let mid = add_image(&*s, &ImageSpec::base("u-mid", 200).name("localhost/u:mid")).unwrap();
    let new = add_image(&*s, &ImageSpec::base("u-new", 300).name("localhost/u:new")).unwrap();
    // `old` was used at 400 s: it counts as used after `mid` and `new`.
    set_last_used(&s, &old, Some(400 * S));
    assert_eq!(image(&s, &mid).added, 200 * S);

    // Unix seconds, RFC 3339, date: as `until` takes them.
    assert_eq!(listed(&e, &["unused-since=250"]).unwrap(), vec![mid]);
    assert_eq!(
        listed(&e, &["unused-since=1970-01-01T00:05:01Z"]).unwrap(),
        sorted(vec![mid, new])
    );
    assert_eq!(
        listed(&e, &["unused-since=1970-01-01T00:06:41Z"]).unwrap(),
        sorted(vec![old, mid, new])
    );
    assert_eq!(listed(&e, &["unused-since=1970-01-01"]).unwrap(), vec![]);
    assert_eq!(
        listed(&e, &["unused-since=1970-01-02"]).unwrap(),
        sorted(vec![old, mid, new])
    );
    // The cutoff is exclusive: last used exactly then is not "before".
    assert_eq!(listed(&e, &["unused-since=200"]).unwrap(), vec![]);
    // Negated: used at or after the time.
    assert_eq!(
        listed(&e, &["unused-since!=250"]).unwrap(),
        sorted(vec![old, new])
    );
    // ANDed with the other keys (`until` looks at creation, not use).
    assert_eq!(
        listed(&e, &["unused-since=350", "until=150"]).unwrap(),
        vec![]
    );
    assert_eq!(
        listed(&e, &["unused-since=450", "until=150"]).unwrap(),
        vec![old]
    );

    // Go durations count back from now: a use just now is recent, one long ago is not.
    set_last_used(&s, &new, Some(now()));
    assert_eq!(
        listed(&e, &["unused-since=1h"]).unwrap(),
        sorted(vec![old, mid])
    );
    assert_eq!(listed(&e, &["unused-since!=1h"]).unwrap(), vec![new]);
    assert_eq!(
        listed(&e, &["unused-since=1h30m"]).unwrap(),
        sorted(vec![old, mid])
    );
    // A registered container is a use (RegisterContainer stamps the image).
    e.register_container(&RegisterContainer {
        id: None,
        image: "localhost/u:mid".into(),
        state: imaged_core::model::ContainerState::Stopped,
        external: false,
        name: String::new(),
    })
    .unwrap();
    assert_eq!(listed(&e, &["unused-since=1h"]).unwrap(), vec![old]);
    assert_eq!(listed(&e, &["unused-since=0"]).unwrap(), vec![]);
}

#[test]
fn unused_since_rejects_what_until_rejects() {
    let (_s, e) = engine();
    for bad in ["unused-since=notatime", "unused-since=", "unused-since=1x"] {
        let err = listed(&e, &[bad]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidFilter, "{bad}");
        assert_eq!(err.field_violations[0].field, "filters[0]", "{bad}");
        assert!(
            err.message
                .starts_with("failed to parse value as time or duration"),
            "{bad}: {}",
            err.message
        );
    }
    // A misspelt key is an unknown key, as any other.
    let err = listed(&e, &["unused_since=1h"]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidFilter);
}
