//! Usage data on a real podman store (SPEC §1 "Usage data", §9.1; issue 15): an image's
//! `last_used` follows its containers (their creation, the moment imaged sees the last
//! one go) and the engine's uses, is kept in `<graph_root>/imaged/usage.json` across
//! re-opens, and podman keeps working on the store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::catalog::ChangeSet;
use imaged_core::model::Image;
use imaged_core::time::now;
use imaged_core::{Engine, EngineConfig, Store};
use imaged_store_cstorage::{CStorageStore, Driver, StoreOptions};
use imaged_testkit::podman::{PodmanStore, busybox_archive};
use serde_json::Value;

fn open(s: &PodmanStore) -> Arc<CStorageStore> {
    let d = Driver::parse(s.driver).expect("a driver imaged manages");
    Arc::new(
        imaged_store_cstorage::open(StoreOptions::new(s.root.clone(), s.run.clone(), d))
            .expect("open the store"),
    )
}

fn image(store: &CStorageStore, name: &str) -> Image {
    Image::clone(
        store
            .view()
            .image_by_name(name)
            .expect("the image is listed"),
    )
}

/// `<graph_root>/imaged/usage.json` as image ID → nanoseconds.
fn usage_file(s: &PodmanStore) -> serde_json::Map<String, Value> {
    let p = s.root.join("imaged").join("usage.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice::<Value>(&bytes)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

/// podman lists and inspects the store (imaged's own directory in the graph root is none
/// of its business) and sees the image.
fn podman_still_works(s: &PodmanStore, id: &str) {
    let out = s.podman_ok(&["images", "-a", "--format", "json"]).unwrap();
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["Id"].as_str() == Some(id)),
        "{out}"
    );
    let out = s.podman_ok(&["image", "inspect", id]).unwrap();
    let inspected: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(inspected[0]["Id"].as_str(), Some(id));
    // And writes to it: a container created and removed again.
    s.podman_ok(&["create", "--name", "after", id]).unwrap();
    s.podman_ok(&["rm", "after"]).unwrap();
}

fn containers_make_and_keep_usage(driver: &'static str) {
    let s = PodmanStore::new(driver).unwrap();
    s.load_archive(&busybox_archive("localhost/use:1").unwrap())
        .unwrap();
    let store = open(&s);
    let img = image(&store, "localhost/use:1");
    let hex = img.id.hex();
    // Never used: last used when it was created in the store (what `added` holds).
    assert!(img.added > 0);
    assert_eq!(img.last_used, Some(img.added));

    // A podman container on it: its creation is a use.
    s.podman_ok(&["create", "--name", "c1", "localhost/use:1"])
        .unwrap();
    let view = store.view();
    let c = view
        .containers()
        .find(|c| c.name == "c1")
        .expect("podman's container is seen");
    assert!(c.created > img.added, "{} <= {}", c.created, img.added);
    let with_container = image(&store, "localhost/use:1");
    assert!(
        with_container.last_used >= Some(c.created),
        "{:?} < {}",
        with_container.last_used,
        c.created
    );
    assert_eq!(usage_file(&s)[&hex].as_i64(), Some(c.created));

    // The container goes: imaged records the moment it sees that.
    let before_rm = now();
    s.podman_ok(&["rm", "c1"]).unwrap();
    let after_rm = image(&store, "localhost/use:1");
    assert!(store.view().containers().next().is_none());
    let seen = after_rm.last_used.unwrap();
    assert!(
        (before_rm..=now()).contains(&seen),
        "{seen} not within the removal"
    );
    assert_eq!(usage_file(&s)[&hex].as_i64(), Some(seen));

    // Kept across closing and opening the store.
    drop(store);
    let store = open(&s);
    assert_eq!(image(&store, "localhost/use:1").last_used, Some(seen));
    drop(store);

    podman_still_works(&s, &hex);
    // podman's own container above was created and removed while imaged was closed: the
    // creation time of a container imaged never saw is not known afterwards.
    let store = open(&s);
    assert_eq!(image(&store, "localhost/use:1").last_used, Some(seen));
}

#[test]
fn vfs_containers_make_and_keep_usage() {
    containers_make_and_keep_usage("vfs");
}

#[test]
fn overlay_containers_make_and_keep_usage() {
    containers_make_and_keep_usage("overlay");
}

#[test]
fn engine_uses_are_kept_in_imaged_usage_data() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/eng:1").unwrap())
        .unwrap();
    // Another image (a child of the first), made before imaged opens the store.
    s.buildah_ok(&["from", "--name", "w", "localhost/eng:1"])
        .unwrap();
    s.buildah_ok(&["commit", "-q", "w", "localhost/gone:1"])
        .unwrap();
    s.buildah_ok(&["rm", "w"]).unwrap();
    let store = open(&s);
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        EngineConfig::default(),
    );
    let img = image(&store, "localhost/eng:1");
    let hex = img.id.hex();

    // TagImage is a use: the names go to images.json, the time to imaged's file.
    let before = now();
    engine.tag("localhost/eng:1", &["eng:2".into()]).unwrap();
    let tagged = image(&store, "localhost/eng:2");
    let t = tagged.last_used.unwrap();
    assert!((before..=now()).contains(&t));
    assert_eq!(usage_file(&s)[&hex].as_i64(), Some(t));

    // A change that moves only `last_used` (nothing for c/storage's files) is kept too.
    let later = t + 1_000_000_000;
    let change = ChangeSet {
        put_images: vec![Arc::new(Image {
            last_used: Some(later),
            ..tagged.clone()
        })],
        ..ChangeSet::default()
    };
    let applied = store.apply(&change).unwrap();
    assert_eq!(
        applied.catalog.image(&img.id).unwrap().last_used,
        Some(later)
    );
    assert_eq!(image(&store, "localhost/eng:1").last_used, Some(later));
    assert_eq!(usage_file(&s)[&hex].as_i64(), Some(later));
    // An older time than the one known changes nothing.
    store
        .apply(&ChangeSet {
            put_images: vec![Arc::new(Image {
                last_used: Some(t),
                ..tagged
            })],
            ..ChangeSet::default()
        })
        .unwrap();
    assert_eq!(image(&store, "localhost/eng:1").last_used, Some(later));

    drop(engine);
    drop(store);
    let store = open(&s);
    assert_eq!(image(&store, "localhost/eng:1").last_used, Some(later));

    // The record of an image that is gone is dropped at the next write.
    let gone = image(&store, "localhost/gone:1");
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        EngineConfig::default(),
    );
    engine.tag("localhost/gone:1", &["gone:2".into()]).unwrap();
    assert!(usage_file(&s).contains_key(&gone.id.hex()));
    s.podman_ok(&["rmi", "-f", &gone.id.hex()]).unwrap();
    engine.tag("localhost/eng:1", &["eng:3".into()]).unwrap();
    let file = usage_file(&s);
    assert!(!file.contains_key(&gone.id.hex()), "{file:?}");
    assert!(file.contains_key(&hex));
    drop(engine);
    drop(store);
    podman_still_works(&s, &hex);
}

#[test]
fn a_corrupt_usage_file_is_ignored_and_replaced() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/cor:1").unwrap())
        .unwrap();
    std::fs::create_dir_all(s.root.join("imaged")).unwrap();
    std::fs::write(s.root.join("imaged/usage.json"), "{ not json").unwrap();
    let store = open(&s);
    let img = image(&store, "localhost/cor:1");
    assert_eq!(img.last_used, Some(img.added), "the store works without it");
    s.podman_ok(&["create", "--name", "c", "localhost/cor:1"])
        .unwrap();
    let c_created = store.view().containers().next().unwrap().created;
    assert_eq!(image(&store, "localhost/cor:1").last_used, Some(c_created));
    assert_eq!(usage_file(&s)[&img.id.hex()].as_i64(), Some(c_created));
}
