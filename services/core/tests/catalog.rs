//! Catalog snapshots: the bulk builder used at open and the blob accounting of change sets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;

use imaged_core::Digest;
use imaged_core::catalog::{BlobEntry, Catalog, ChangeSet};
use imaged_core::model::{Container, ContainerState, Image};
use imaged_testkit::ImageSpec;

/// Everything a catalog holds, through its public accessors, in a comparable order.
#[derive(Debug, PartialEq)]
struct Contents {
    images: Vec<Image>,
    names: Vec<(String, Digest)>,
    blobs: Vec<(Digest, BlobEntry)>,
    blob_usage: (u64, u64),
    containers: Vec<Container>,
    users: Vec<(Digest, Vec<String>)>,
}

fn contents(c: &Catalog) -> Contents {
    let mut images: Vec<Image> = c.images().map(|i| (**i).clone()).collect();
    images.sort_by_key(|i| i.id);
    let mut names: Vec<(String, Digest)> = c.names().map(|(n, id)| (n.clone(), *id)).collect();
    names.sort();
    let mut blobs: Vec<(Digest, BlobEntry)> = c.blobs().map(|(d, e)| (*d, *e)).collect();
    blobs.sort_by_key(|(d, _)| *d);
    let mut containers: Vec<Container> = c.containers().map(|x| (**x).clone()).collect();
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    let users = images
        .iter()
        .map(|i| {
            let ids = c
                .containers_of(&i.id)
                .iter()
                .map(|x| x.id.clone())
                .collect();
            (i.id, ids)
        })
        .collect();
    Contents {
        images,
        names,
        blobs,
        blob_usage: c.blob_usage(),
        containers,
        users,
    }
}

fn sum(c: &Catalog) -> (u64, u64) {
    (
        c.blobs().map(|(_, e)| e.size).sum(),
        c.blobs().count() as u64,
    )
}

#[test]
fn from_records_builds_what_one_change_set_would() {
    let base = ImageSpec::base("rec-base", 1).name("localhost/base:1");
    let specs = [
        base.clone(),
        base.child("rec-a", 2)
            .name("localhost/a:1")
            .name("localhost/a:2"),
        base.child("rec-b", 3),
    ];
    let images: Vec<Image> = specs.iter().map(|s| s.build().1).collect();
    let container = Container {
        id: "c1".into(),
        image_id: images[1].id,
        state: ContainerState::Running,
        external: false,
        name: String::new(),
        created: 1,
    };
    let bulk = Catalog::from_records(images.clone(), [container.clone()]).unwrap();
    let change = ChangeSet {
        put_images: images.iter().cloned().map(Arc::new).collect(),
        put_containers: vec![Arc::new(container.clone())],
        ..ChangeSet::default()
    };
    let one = Catalog::new().apply(&change).unwrap().catalog;
    assert_eq!(bulk.generation(), one.generation());
    assert_eq!(contents(&bulk), contents(&one));
    // A name on two images is refused, as by `apply`.
    let mut twice = images.clone();
    twice[2].names = vec!["localhost/base:1".into()];
    let err = Catalog::from_records(twice, []).unwrap_err();
    assert!(err.message.contains("is held by"), "{err}");
    let orphan = Container {
        image_id: Digest::of(b"nothing"),
        ..container
    };
    assert!(Catalog::from_records(images, [orphan]).is_err());
}

#[test]
fn blob_usage_follows_puts_and_deletes() {
    let base = ImageSpec::base("usage-base", 1).name("localhost/a:1");
    let child = base.child("usage-child", 2).name("localhost/b:1");
    let (_, a) = base.build();
    let (_, b) = child.build();
    let put = ChangeSet {
        put_images: vec![Arc::new(a.clone()), Arc::new(b.clone())],
        ..ChangeSet::default()
    };
    let c1 = Catalog::new().apply(&put).unwrap().catalog;
    assert!(c1.blob_usage().0 > 0);
    assert_eq!(c1.blob_usage(), sum(&c1));
    let del = ChangeSet {
        delete_images: vec![b.id],
        ..ChangeSet::default()
    };
    let c2 = c1.apply(&del).unwrap().catalog;
    assert_eq!(c2.blob_usage(), sum(&c2));
    assert!(c2.blob_usage().0 < c1.blob_usage().0);
    let del = ChangeSet {
        delete_images: vec![a.id],
        ..ChangeSet::default()
    };
    let c3 = c2.apply(&del).unwrap().catalog;
    assert_eq!(c3.blob_usage(), (0, 0));
}

/// Families of images sharing base layers, some named, a few in use by containers.
fn families(n: usize) -> (Vec<Image>, Vec<Container>) {
    let mut images = Vec::new();
    for f in 0..n {
        let base = ImageSpec::base(&format!("bulk-{f}"), 1).name(&format!("localhost/base{f}:1"));
        let mid = base.child(&format!("bulk-mid-{f}"), 2);
        let top = mid
            .child(&format!("bulk-top-{f}"), 3)
            .name(&format!("localhost/top{f}:1"));
        let other = base.child(&format!("bulk-other-{f}"), 4);
        for s in [base, mid, top, other] {
            images.push(s.build().1);
        }
    }
    let containers = images
        .iter()
        .step_by(7)
        .enumerate()
        .map(|(i, img)| Container {
            id: format!("bulk-c{i}"),
            image_id: img.id,
            state: ContainerState::Stopped,
            external: false,
            name: String::new(),
            created: 1,
        })
        .collect();
    (images, containers)
}

#[test]
fn deleting_most_images_at_once_gives_what_one_deletion_after_another_gives() {
    // 2000 images, of which 1500 go (with the containers of some of them): the tables
    // rebuilt from the survivors.
    same_as_one_by_one(500, |i| i % 4 != 0);
}

#[test]
fn deleting_many_images_at_once_gives_what_one_deletion_after_another_gives() {
    // 4000 images, of which 1500 go: the blob table updated on a second thread.
    same_as_one_by_one(1000, |i| i % 8 < 3);
}

/// A large deletion (with the containers of some of the images) must give the same
/// catalog and released blobs as deleting the images one change set at a time.
fn same_as_one_by_one(n: usize, goes: impl Fn(usize) -> bool) {
    let (images, containers) = families(n);
    let start = Catalog::from_records(images.clone(), containers.clone()).unwrap();
    let gone: Vec<Digest> = images
        .iter()
        .enumerate()
        .filter(|(i, _)| goes(*i))
        .map(|(_, img)| img.id)
        .collect();
    assert!(gone.len() >= 1024);
    let gone_containers: Vec<String> = containers
        .iter()
        .filter(|c| gone.contains(&c.image_id))
        .map(|c| c.id.clone())
        .collect();
    let bulk = start
        .apply(&ChangeSet {
            delete_images: gone.clone(),
            delete_containers: gone_containers.clone(),
            ..ChangeSet::default()
        })
        .unwrap();

    let mut one_by_one = start
        .apply(&ChangeSet {
            delete_containers: gone_containers,
            ..ChangeSet::default()
        })
        .unwrap()
        .catalog;
    let mut released = Vec::new();
    for id in &gone {
        let a = one_by_one
            .apply(&ChangeSet {
                delete_images: vec![*id],
                ..ChangeSet::default()
            })
            .unwrap();
        released.extend(a.released);
        one_by_one = a.catalog;
    }
    released.sort_by_key(|(d, _)| *d);
    assert!(!released.is_empty());
    assert_eq!(bulk.released, released);
    assert!(bulk.added.is_empty());
    assert_eq!(contents(&bulk.catalog), contents(&one_by_one));
    assert_eq!(bulk.catalog.blob_usage(), sum(&bulk.catalog));
    assert_eq!(bulk.catalog.generation(), start.generation() + 1);
}

#[test]
fn a_large_deletion_refuses_a_missing_or_repeated_image_and_a_used_one() {
    for n in [400, 1000] {
        large_deletion_refuses(n);
    }
}

fn large_deletion_refuses(n: usize) {
    let (images, containers) = families(n);
    let start = Catalog::from_records(images.clone(), containers.clone()).unwrap();
    // 1200 images: most of 1600 (the rebuild), or under half of 4000 (the blob table on a
    // second thread).
    let mut ids: Vec<Digest> = images.iter().map(|i| i.id).take(1200.max(n)).collect();
    // An image listed twice.
    let mut twice = ids.clone();
    twice.push(ids[3]);
    let e = start
        .apply(&ChangeSet {
            delete_images: twice,
            delete_containers: containers.iter().map(|c| c.id.clone()).collect(),
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert!(e.message.contains("vanished"), "{e}");
    // Images whose containers stay.
    let e = start
        .apply(&ChangeSet {
            delete_images: ids.clone(),
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert!(e.message.contains("missing image"), "{e}");
    // An image that is not there.
    ids[5] = Digest::from_bytes([7; 32]);
    let e = start
        .apply(&ChangeSet {
            delete_images: ids,
            delete_containers: containers.iter().map(|c| c.id.clone()).collect(),
            ..ChangeSet::default()
        })
        .unwrap_err();
    assert!(e.message.contains("vanished"), "{e}");
}
