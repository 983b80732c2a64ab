//! [`Snapshot::settle_wait`]: which unnamed images a removal waits for (an image another
//! program finished since the build before, for `SETTLE`), against a real podman store
//! whose `images.json` is rewritten into the intermediate states of a containers/image
//! commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use imaged_core::Store as _;
use imaged_core::catalog::ChangeSet;
use imaged_testkit::podman::{PodmanStore, busybox_archive};
use serde_json::Value;

use crate::config::{Driver, StoreOptions};

/// Rewrites the record of image `hex` in the vfs store's `images.json` with `edit`; the
/// record goes when `edit` gives `Null`, and comes back when it is missing.
fn edit(s: &PodmanStore, hex: &str, keep: &mut Value, edit: impl FnOnce(&mut Value)) {
    let path = s.root.join("vfs-images/images.json");
    let mut all: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let list = all.as_array_mut().unwrap();
    match list.iter().position(|r| r["id"] == hex) {
        Some(i) => {
            *keep = list[i].clone();
            edit(&mut list[i]);
            if list[i].is_null() {
                list.remove(i);
            } else {
                *keep = list[i].clone();
            }
        }
        None => {
            edit(keep);
            list.push(keep.clone());
        }
    }
    std::fs::write(&path, serde_json::to_vec(&all).unwrap()).unwrap();
}

#[test]
fn a_removal_waits_only_for_unnamed_images_another_program_just_finished() {
    let s = PodmanStore::new("vfs").unwrap();
    s.load_archive(&busybox_archive("localhost/bb:1").unwrap())
        .unwrap();
    let store = crate::open(StoreOptions::new(
        s.root.clone(),
        s.run.clone(),
        Driver::Vfs,
    ))
    .unwrap();
    let id = store.view().image_by_name("localhost/bb:1").unwrap().id;
    let hex = id.hex();
    let wait = || store.lock_snap().settle_wait(&[id]);
    let mut rec = Value::Null;
    assert_eq!(wait(), None, "named");

    // Names taken from a record that was there before: an ordinary dangling image.
    s.podman_ok(&["untag", "localhost/bb:1"]).unwrap();
    assert!(store.view().image(&id).unwrap().names.is_empty());
    assert_eq!(wait(), None, "untagged");

    // containers/image's commit: created without metadata (not in the view yet), then
    // the metadata: finished a moment ago, maybe about to be named.
    let mut metadata = Value::Null;
    edit(&s, &hex, &mut rec, |r| {
        metadata = r.as_object_mut().unwrap().remove("metadata").unwrap();
    });
    assert!(store.view().image(&id).is_none());
    edit(&s, &hex, &mut rec, |r| r["metadata"] = metadata.clone());
    assert!(store.view().image(&id).is_some());
    let w = wait().expect("a just-finished unnamed image waits");
    assert!(w <= std::time::Duration::from_secs(1), "{w:?}");

    // Named meanwhile: nothing to wait for.
    edit(&s, &hex, &mut rec, |r| {
        r["names"] = serde_json::json!(["localhost/bb:1"])
    });
    assert!(store.view().image_by_name("localhost/bb:1").is_some());
    assert_eq!(wait(), None, "named by the commit");

    // A record that appears finished and unnamed between two reads waits too.
    edit(&s, &hex, &mut rec, |r| *r = Value::Null);
    assert!(store.view().image(&id).is_none());
    edit(&s, &hex, &mut rec, |r| {
        r.as_object_mut().unwrap().remove("names");
    });
    assert!(store.view().image(&id).unwrap().names.is_empty());
    assert!(wait().is_some(), "appeared unnamed");

    // The removal waits, then deletes it (nobody named it).
    let img = store.view().image(&id).cloned().unwrap();
    store
        .apply(&ChangeSet {
            delete_images: vec![id],
            seen: vec![img],
            ..ChangeSet::default()
        })
        .unwrap();
    assert!(store.view().image(&id).is_none());
    assert!(s.podman_ok(&["image", "exists", &hex]).is_err());
}
