//! The write path against real podman stores: tag, untag, remove and prune through
//! `imaged_core::Engine` over the containers-storage store, then podman (`images`,
//! `image inspect`, `run`) still works and sees what imaged sees; refusals leave the
//! store untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use imaged_core::catalog::ChangeSet;
use imaged_core::error::ErrorKind;
use imaged_core::ops::{PruneOptions, RemoveOptions};
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

/// id → sorted names, as podman lists them.
fn podman_names(s: &PodmanStore) -> BTreeMap<String, Vec<String>> {
    let out = s.podman_ok(&["images", "-a", "--format", "json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut names: Vec<String> = i["Names"]
                .as_array()
                .map(|a| a.iter().map(|n| n.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            names.sort();
            (i["Id"].as_str().unwrap().to_owned(), names)
        })
        .collect()
}

fn our_names(store: &CStorageStore) -> BTreeMap<String, Vec<String>> {
    store
        .view()
        .images()
        .map(|i| {
            let mut n = i.names.clone();
            n.sort();
            (i.id.hex(), n)
        })
        .collect()
}

fn layers_json(s: &PodmanStore) -> Vec<Value> {
    let p = s
        .root
        .join(format!("{}-layers", s.driver))
        .join("layers.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Nothing half-removed: no flagged layer, no layer without data, the trash emptied (once
/// the store's background emptying settled), no journal.
fn no_leftovers(s: &PodmanStore, store: &CStorageStore) {
    store.settle();
    for l in layers_json(s) {
        assert!(
            l.get("flags").and_then(|f| f.get("incomplete")).is_none(),
            "{l}"
        );
        let id = l["id"].as_str().unwrap();
        let data = if s.driver == "overlay" {
            s.root.join("overlay").join(id)
        } else {
            s.root.join("vfs/dir").join(id)
        };
        assert!(data.exists(), "layer {id} has no data");
    }
    let trash = s.root.join("imaged-trash");
    if trash.exists() {
        assert_eq!(
            std::fs::read_dir(trash).unwrap().count(),
            0,
            "trash emptied"
        );
    }
    assert!(!s.root.join("imaged/cstorage-intent.json").exists());
}

/// A one-layer image with an executable `/bin/busybox` (testkit's `busybox_archive`
/// stores it with mode 0644, which runc refuses to exec).
fn runnable_image(s: &PodmanStore, name: &str) {
    s.buildah_ok(&["from", "--name", "base", "scratch"])
        .unwrap();
    s.buildah_ok(&["copy", "base", "/bin/busybox", "/bin/busybox"])
        .unwrap();
    s.buildah_ok(&["commit", "-q", "base", name]).unwrap();
    s.buildah_ok(&["rm", "base"]).unwrap();
}

fn engine_over(store: &Arc<CStorageStore>) -> Engine {
    Engine::new(Arc::clone(store) as Arc<dyn Store>, EngineConfig::default())
}

fn tag_untag_remove_prune(driver: &'static str) {
    let s = PodmanStore::new(driver).unwrap();
    runnable_image(&s, "localhost/bb:1");
    s.load_archive(&busybox_archive("localhost/arch:1").unwrap())
        .unwrap();
    s.podman_ok(&["tag", "localhost/bb:1", "localhost/bb:2"])
        .unwrap();
    s.buildah_ok(&["from", "--name", "bctr", "localhost/bb:1"])
        .unwrap();
    s.buildah_ok(&["commit", "-q", "bctr", "localhost/child:1"])
        .unwrap();
    s.buildah_ok(&["from", "--name", "bctr2", "localhost/child:1"])
        .unwrap();
    s.buildah_ok(&["copy", "bctr2", "/bin/busybox", "/extra"])
        .unwrap();
    s.buildah_ok(&["commit", "-q", "bctr2", "localhost/child2:1"])
        .unwrap();
    s.buildah_ok(&["rm", "bctr2"]).unwrap();
    let store = open(&s);
    let engine = engine_over(&store);
    assert_eq!(our_names(&store), podman_names(&s));
    let layers_before = layers_json(&s).len();

    // Tag and untag.
    engine
        .tag("localhost/bb:1", &["localhost/bb:new".to_owned()])
        .unwrap();
    engine
        .untag("localhost/bb:1", &["localhost/bb:2".to_owned()])
        .unwrap();
    let names = podman_names(&s);
    assert_eq!(our_names(&store), names);
    let bb = names
        .values()
        .find(|n| n.contains(&"localhost/bb:new".to_owned()))
        .unwrap();
    assert_eq!(
        bb,
        &vec!["localhost/bb:1".to_owned(), "localhost/bb:new".to_owned()]
    );
    let hist = s
        .podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .NamesHistory}}",
            "localhost/bb:new",
        ])
        .unwrap();
    assert!(hist.contains("localhost/bb:new"), "{hist}");

    // Moving a name from one image to another (the image losing it is rewritten too).
    engine
        .tag("localhost/child:1", &["localhost/bb:new".to_owned()])
        .unwrap();
    assert_eq!(our_names(&store), podman_names(&s));

    // Remove child2: its own top layer goes, the shared ones stay.
    engine
        .remove(&RemoveOptions {
            reference: "localhost/child2:1".to_owned(),
            ..RemoveOptions::default()
        })
        .unwrap();
    assert_eq!(our_names(&store), podman_names(&s));
    assert_eq!(podman_names(&s).len(), 3);
    assert_eq!(layers_json(&s).len(), layers_before - 1);
    no_leftovers(&s, &store);
    s.podman_ok(&["image", "inspect", "localhost/bb:1", "localhost/child:1"])
        .unwrap();
    s.podman_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bb:1",
        "/bin/busybox",
        "true",
    ])
    .unwrap();

    // Removing an image a container uses is refused, nothing changes.
    let err = engine
        .remove(&RemoveOptions {
            reference: "localhost/bb:1".to_owned(),
            ..RemoveOptions::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageInUse, "{err:?}");
    assert_eq!(podman_names(&s).len(), 3);

    // The store re-validates on its own: an image a container uses, or one that is gone.
    let bb = store.view().image_by_name("localhost/bb:1").unwrap().id;
    let json_before = std::fs::read(s.root.join(format!("{driver}-images/images.json"))).unwrap();
    let err = store
        .apply(&ChangeSet {
            delete_images: vec![bb],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageInUse, "{err:?}");
    let gone = imaged_core::Digest::of(b"no such image");
    let err = store
        .apply(&ChangeSet {
            delete_images: vec![gone],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConcurrentModification, "{err:?}");
    assert_eq!(
        std::fs::read(s.root.join(format!("{driver}-images/images.json"))).unwrap(),
        json_before,
        "refusals write nothing"
    );

    // Mounted: deleting the (external) container is refused as running.
    s.buildah_ok(&["mount", "bctr"]).unwrap();
    let ctr = store
        .view()
        .containers()
        .find(|c| c.name == "bctr")
        .unwrap()
        .id
        .clone();
    let err = store
        .apply(&ChangeSet {
            delete_containers: vec![ctr],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ContainerRunning, "{err:?}");
    s.buildah_ok(&["umount", "bctr"]).unwrap();

    // Containers can't be registered in containers-storage.
    let img = store.view().images().next().unwrap().id;
    let err = store
        .apply(&ChangeSet {
            put_containers: vec![Arc::new(imaged_core::model::Container {
                id: "a".repeat(64),
                image_id: img,
                state: imaged_core::model::ContainerState::Created,
                external: false,
                name: String::new(),
                created: 0,
            })],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReadOnlyStore);

    // Prune with external containers: the buildah container and every image go.
    let report = engine
        .prune(
            &PruneOptions {
                all: true,
                external: true,
                ..PruneOptions::default()
            },
            None,
        )
        .unwrap();
    assert!(!report.records.is_empty());
    assert!(podman_names(&s).is_empty(), "{:?}", podman_names(&s));
    assert!(store.view().is_empty());
    let ps = s.podman_ok(&["ps", "-a", "--external", "-q"]).unwrap();
    assert_eq!(ps.trim(), "");
    assert!(layers_json(&s).is_empty());
    no_leftovers(&s, &store);

    // podman still writes to the store afterwards.
    runnable_image(&s, "localhost/bb:1");
    s.podman_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bb:1",
        "/bin/busybox",
        "true",
    ])
    .unwrap();
    assert_eq!(our_names(&store), podman_names(&s));
}

#[test]
fn vfs_tag_untag_remove_prune() {
    tag_untag_remove_prune("vfs");
}

#[test]
fn overlay_tag_untag_remove_prune() {
    tag_untag_remove_prune("overlay");
}

/// A change planned on a view that podman changed since (here: podman named the dangling
/// image a prune selected, as a `podman load` does in a second step) is refused whole with
/// `ConcurrentModification`, and the image survives with podman's name.
#[test]
fn a_plan_podman_made_stale_is_refused() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/stale:1").unwrap())
        .unwrap();
    s.podman_ok(&["untag", "localhost/stale:1"]).unwrap();
    let store = open(&s);
    let view = store.view();
    let img = Arc::clone(view.images().next().expect("the dangling image"));
    assert!(img.names.is_empty());
    s.podman_ok(&["tag", &img.id.hex(), "localhost/stale:2"])
        .unwrap();
    let err = store
        .apply(&ChangeSet {
            delete_images: vec![img.id],
            seen: vec![Arc::clone(&img)],
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConcurrentModification, "{err:?}");
    assert_eq!(
        podman_names(&s).get(&img.id.hex()),
        Some(&vec!["localhost/stale:2".to_owned()])
    );
    no_leftovers(&s, &store);
}
