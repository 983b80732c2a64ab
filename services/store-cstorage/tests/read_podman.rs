//! The read path against real podman stores (vfs and overlay): the listing equals
//! `podman images --format json` (IDs, names, digest, created, size), containers are
//! seen with their state, and a change podman makes is visible in the next `view()`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use imaged_core::Store;
use imaged_core::model::ContainerState;
use imaged_store_cstorage::{CStorageStore, Driver, StoreOptions};
use imaged_testkit::podman::{PodmanStore, busybox_archive};
use serde_json::Value;

fn driver(s: &PodmanStore) -> Driver {
    Driver::parse(s.driver).expect("a driver imaged manages")
}

fn open(s: &PodmanStore) -> CStorageStore {
    imaged_store_cstorage::open(StoreOptions::new(s.root.clone(), s.run.clone(), driver(s)))
        .expect("open the store")
}

/// `podman images -a --format json` as id → (sorted names, digest, created s, size).
fn podman_images(s: &PodmanStore) -> BTreeMap<String, (Vec<String>, String, i64, u64)> {
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
            (
                i["Id"].as_str().unwrap().to_owned(),
                (
                    names,
                    i["Digest"].as_str().unwrap().to_owned(),
                    i["Created"].as_i64().unwrap(),
                    i["Size"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn our_images(store: &CStorageStore) -> BTreeMap<String, (Vec<String>, String, i64, u64)> {
    store
        .view()
        .images()
        .map(|i| {
            let mut names = i.names.clone();
            names.sort();
            (
                i.id.hex(),
                (
                    names,
                    i.digest().to_string(),
                    i.config.created.unwrap() / 1_000_000_000,
                    i.stored_size.unwrap(),
                ),
            )
        })
        .collect()
}

fn build(driver: &'static str) -> PodmanStore {
    let s = PodmanStore::new(driver).unwrap();
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    s.podman_ok(&[
        "tag",
        "localhost/bb:1",
        "localhost/bb:2",
        "quay.io/x/bb:latest",
    ])
    .unwrap();
    s.buildah_ok(&["from", "--name", "bctr", "localhost/bb:1"])
        .unwrap();
    s.buildah_ok(&["commit", "-q", "bctr", "localhost/child:1"])
        .unwrap();
    s.podman_ok(&["create", "--name", "c1", "localhost/child:1"])
        .unwrap();
    s
}

fn listing_matches_podman(driver: &'static str) {
    let s = build(driver);
    let store = open(&s);
    let want = podman_images(&s);
    assert_eq!(want.len(), 2, "{want:?}");
    assert_eq!(our_images(&store), want);

    let info = store.info();
    assert_eq!(info.kind, "containers-storage");
    assert!(info.containers_read_only);

    // Containers: the buildah one and podman's, both created (not mounted).
    let view = store.view();
    let names: BTreeMap<String, (ContainerState, bool)> = view
        .containers()
        .map(|c| (c.name.clone(), (c.state, c.external)))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names["bctr"], (ContainerState::Created, true));
    assert_eq!(names["c1"].0, ContainerState::Created);

    // Mounting the buildah container's layer makes it running.
    s.buildah_ok(&["mount", "bctr"]).unwrap();
    let v = store.view();
    let bctr = v.containers().find(|c| c.name == "bctr").unwrap();
    assert_eq!(bctr.state, ContainerState::Running);
    s.buildah_ok(&["umount", "bctr"]).unwrap();
    let v = store.view();
    let bctr = v.containers().find(|c| c.name == "bctr").unwrap();
    assert_eq!(bctr.state, ContainerState::Created);

    // Blobs of manifests and configs are readable and match their digests.
    for img in store.view().images() {
        let m = store.read_blob(&img.manifest.digest).unwrap().unwrap();
        assert_eq!(imaged_core::Digest::of(&m), img.manifest.digest);
        let c = store.read_blob(&img.id).unwrap().unwrap();
        assert_eq!(imaged_core::Digest::of(&c), img.id);
    }
    let usage = store.fs_usage().unwrap();
    assert!(usage.used_bytes > 1_000_000, "{usage:?}");
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{report:?}");
    assert_eq!(report.images_checked, 2);
}

#[test]
fn vfs_listing_matches_podman() {
    listing_matches_podman("vfs");
}

#[test]
fn overlay_listing_matches_podman() {
    listing_matches_podman("overlay");
}

#[test]
fn podman_changes_show_in_the_next_view() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    let store = open(&s);
    let v1 = store.view();
    assert!(
        Arc::ptr_eq(&v1, &store.view()),
        "unchanged store: same snapshot"
    );
    let id = v1.image_by_name("localhost/bb:1").unwrap().id;

    s.podman_ok(&["tag", "localhost/bb:1", "localhost/bb:3"])
        .unwrap();
    let v2 = store.view();
    assert_eq!(v2.image_by_name("localhost/bb:3").unwrap().id, id);

    // `podman images` only touches lock files: a new probe, the same records.
    s.podman_ok(&["images"]).unwrap();
    let v3 = store.view();
    assert_eq!(our_images(&store), podman_images(&s));
    assert_eq!(v3.len(), 1);

    s.podman_ok(&["untag", "localhost/bb:1", "localhost/bb:3"])
        .unwrap();
    assert!(store.view().image_by_name("localhost/bb:3").is_none());

    s.podman_ok(&["rmi", "localhost/bb:1"]).unwrap();
    assert!(store.view().is_empty());
}

/// Images of an additional image store are listed read-only and can't be changed.
#[test]
fn additional_image_stores_are_read_only() {
    let ro = PodmanStore::new("vfs").unwrap();
    ro.load_archive(&busybox_archive("localhost/ro:1").unwrap())
        .unwrap();
    let s = PodmanStore::new("vfs").unwrap();
    let mut opts = StoreOptions::new(s.root.clone(), s.run.clone(), Driver::Vfs);
    opts.additional_image_stores = vec![ro.root.clone()];
    let store = imaged_store_cstorage::open(opts).unwrap();
    let v = store.view();
    let img = v.image_by_name("localhost/ro:1").unwrap();
    assert!(img.read_only);
    assert_eq!(
        img.stored_size,
        our_images(&open(&ro)).values().next().map(|x| x.3)
    );
    let err = store
        .apply(&imaged_core::ChangeSet {
            delete_images: vec![img.id],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, imaged_core::ErrorKind::ReadOnlyImage);
    let mut renamed = (**img).clone();
    renamed.names = vec!["localhost/ro:2".to_owned()];
    let err = store
        .apply(&imaged_core::ChangeSet {
            put_images: vec![Arc::new(renamed)],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, imaged_core::ErrorKind::ReadOnlyImage);
    assert_eq!(
        ro.podman_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .unwrap()
            .trim(),
        "localhost/ro:1"
    );
}

/// Readers that ask at the same time after a podman change all see it: none is served the
/// catalog from before because another reader was refreshing.
#[test]
fn concurrent_readers_all_see_a_finished_podman_change() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/cr:1").unwrap())
        .unwrap();
    let store = Arc::new(open(&s));
    assert!(store.view().image_by_name("localhost/cr:1").is_some());
    for round in 0..5 {
        let name = format!("localhost/cr:r{round}");
        s.podman_ok(&["tag", "localhost/cr:1", &name]).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let seen: Vec<bool> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (store, barrier, name) = (Arc::clone(&store), Arc::clone(&barrier), &name);
                    sc.spawn(move || {
                        barrier.wait();
                        store.view().image_by_name(name).is_some()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(seen.iter().all(|&b| b), "round {round}: {seen:?}");
    }
}

/// Manifest lists as `podman manifest create` / `add` make them: an empty list is a list
/// (its `manifests` is null), and an instance added later shows in the next view although
/// the record's `digest` field keeps the first list's digest.
#[test]
fn manifest_lists_podman_makes_and_grows() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/inst:1").unwrap())
        .unwrap();
    let store = open(&s);
    let inst = store.view().image_by_name("localhost/inst:1").unwrap().id;
    s.podman_ok(&["manifest", "create", "localhost/list:1"])
        .unwrap();
    let v = store.view();
    let list = v.image_by_name("localhost/list:1").unwrap();
    assert_eq!(list.instances.as_deref(), Some(&[][..]), "{list:?}");
    let arch = imaged_core::model::Platform::host().architecture;
    s.podman_ok(&[
        "manifest",
        "add",
        "--os",
        "linux",
        "--arch",
        &arch,
        "localhost/list:1",
        &format!("containers-storage:{}", inst.hex()),
    ])
    .unwrap();
    let v = store.view();
    let list = v.image_by_name("localhost/list:1").unwrap();
    let instances = list.instances.as_ref().unwrap();
    assert_eq!(instances.len(), 1, "{list:?}");
    assert_eq!(instances[0].platform.architecture, arch);
}

/// Rewrites the record of image `hex` in the vfs store's `images.json` with `edit`, as a
/// containers/image commit's intermediate state.
fn edit_image_record(s: &PodmanStore, hex: &str, edit: impl FnOnce(&mut Value)) {
    let path = s.root.join("vfs-images/images.json");
    let mut all: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let rec = all
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["id"] == hex)
        .unwrap();
    edit(rec);
    std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
}

/// A record containers/image is still committing (no names, no metadata yet: `podman
/// load` between its first write and its metadata) is not an image yet: the view leaves it
/// out, so a dangling prune can't take it under podman's feet; once its metadata is there
/// it is an ordinary unnamed image. Regression test for the prune that deleted a `podman
/// load`'s image mid-commit (`e2e::cstorage_concurrency`, "saving metadata for image …:
/// identifier is not a layer, image, or container").
#[test]
fn an_image_containers_image_is_still_committing_is_not_in_the_view() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    let store = open(&s);
    let id = store.view().image_by_name("localhost/bb:1").unwrap().id;
    let hex = id.hex();
    let mut metadata = Value::Null;
    edit_image_record(&s, &hex, |r| {
        metadata = r["metadata"].clone();
        let r = r.as_object_mut().unwrap();
        r.remove("names");
        r.remove("metadata");
    });
    assert!(metadata.is_string(), "podman's record has metadata");
    assert!(
        store.view().image(&id).is_none(),
        "an image record without names and metadata is listed"
    );

    // Metadata written, names not yet: an unnamed image like any other.
    edit_image_record(&s, &hex, |r| r["metadata"] = metadata.clone());
    let v = store.view();
    let img = v.image(&id).expect("the finished record is listed");
    assert!(img.names.is_empty());

    // A named record without metadata (written by another tool) is an image too.
    edit_image_record(&s, &hex, |r| {
        let r = r.as_object_mut().unwrap();
        r.remove("metadata");
        r.insert("names".into(), serde_json::json!(["localhost/bb:1"]));
    });
    assert!(store.view().image_by_name("localhost/bb:1").is_some());
}
