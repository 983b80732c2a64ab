//! "image is in use by a container" names the container podman names: the most recently
//! created one (c/storage's `DeleteImage`); among equal times the first in store order. The
//! metadata lists every user.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;

use imaged_core::model::{Container, ContainerState};
use imaged_core::ops::RemoveOptions;
use imaged_core::{ChangeSet, Engine, ErrorKind, MemoryStore, Store};
use imaged_testkit::{ImageSpec, add_images};

/// The error of removing an image used by containers `(id, created)`, put in this order.
fn in_use_error(containers: &[(&str, i64)]) -> imaged_core::Error {
    let store = Arc::new(MemoryStore::new());
    let ids = add_images(
        &*store,
        &[ImageSpec::base("in-use", 1).name("localhost/u:1")],
    )
    .unwrap();
    let change = ChangeSet {
        put_containers: containers
            .iter()
            .map(|(id, created)| {
                Arc::new(Container {
                    id: (*id).to_owned(),
                    image_id: ids[0],
                    state: ContainerState::Created,
                    external: false,
                    name: String::new(),
                    created: *created,
                })
            })
            .collect(),
        ..ChangeSet::default()
    };
    store.apply(&change).unwrap();
    let engine = Engine::new(store, Default::default());
    let opts = RemoveOptions {
        reference: "localhost/u:1".into(),
        ..RemoveOptions::default()
    };
    let err = engine.remove(&opts).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageInUse);
    err
}

#[test]
fn in_use_names_the_newest_container_like_podman() {
    let e = in_use_error(&[("aaa", 30), ("bbb", 10), ("ccc", 20)]);
    assert!(e.message.starts_with("image used by aaa:"), "{}", e.message);
    assert_eq!(e.metadata["container_ids"], "aaa,bbb,ccc");
    // Equal registration times: the first in order.
    let e = in_use_error(&[("xxx", 5), ("yyy", 5)]);
    assert!(e.message.starts_with("image used by xxx:"), "{}", e.message);
}
