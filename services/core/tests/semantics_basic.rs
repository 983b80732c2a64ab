//! Milestone-1 behaviour of the engine over the MemoryStore: resolution, list, remove
//! (PODMAN), prune, tag/untag, containers, CRI helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::error::ErrorKind;
use imaged_core::model::ContainerState;
use imaged_core::ops::{
    ListOptions, Order, PruneOptions, Record, RegisterContainer, RemoveOptions,
};
use imaged_core::{Digest, Engine, EngineConfig, MemoryStore, Store};
use imaged_testkit::images::{ImageSpec, add_image, add_images};

fn engine() -> (Arc<MemoryStore>, Engine) {
    let store = Arc::new(MemoryStore::new());
    let e = Engine::new(store.clone() as Arc<dyn Store>, EngineConfig::default());
    (store, e)
}

fn rm(e: &Engine, r: &str) -> imaged_core::Result<imaged_core::ops::RemoveReport> {
    e.remove(&RemoveOptions {
        reference: r.into(),
        ..RemoveOptions::default()
    })
}

fn ids(e: &Engine, all: bool) -> Vec<Digest> {
    let page = e
        .list(&ListOptions {
            all,
            ..ListOptions::default()
        })
        .unwrap();
    page.images.iter().map(|i| i.id).collect()
}

#[test]
fn resolves_names_ids_prefixes_and_fuzzy() {
    let (s, e) = engine();
    let a = add_image(
        &*s,
        &ImageSpec::base("a", 10).name("quay.io/libpod/alpine:latest"),
    )
    .unwrap();
    let b = add_image(
        &*s,
        &ImageSpec::base("b", 20).name("localhost/busybox:latest"),
    )
    .unwrap();
    for r in [
        "alpine",
        "alpine:latest",
        "libpod/alpine",
        "quay.io/libpod/alpine",
    ] {
        assert_eq!(e.inspect(r).unwrap().summary.id, a, "{r}");
    }
    assert_eq!(e.inspect("busybox").unwrap().summary.id, b);
    assert_eq!(e.inspect(&a.to_string()).unwrap().summary.id, a);
    assert_eq!(e.inspect(&a.hex()).unwrap().summary.id, a);
    assert_eq!(e.inspect(&a.hex()[..12]).unwrap().summary.id, a);
    let err = e.inspect("alpine:wrongtag").unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (ErrorKind::ImageNotKnown, "alpine:wrongtag: image not known")
    );
    let err = e.inspect("sha256:aa").unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidReference);
    assert!(
        err.message
            .contains("invalid format: no 64-byte hexadecimal value")
    );
    assert_eq!(
        e.inspect(" ").unwrap_err().message,
        "image name cannot be blank"
    );
    assert!(
        e.inspect("UPPER")
            .unwrap_err()
            .message
            .contains("repository name must be lowercase")
    );
    let d = e.inspect("alpine").unwrap().summary.digest;
    assert_eq!(
        e.inspect(&format!("alpine:ignored@{d}"))
            .unwrap()
            .summary
            .id,
        a
    );
}

#[test]
fn ambiguous_prefix_lists_candidates() {
    let (s, e) = engine();
    // Find two images whose IDs share a first hex character.
    let mut specs = Vec::new();
    for i in 0..40 {
        specs.push(ImageSpec::base(&format!("l{i}"), i));
    }
    let all = add_images(&*s, &specs).unwrap();
    let c = all[0].hex().chars().next().unwrap().to_string();
    let n = all.iter().filter(|d| d.hex().starts_with(&c)).count();
    if n >= 2 {
        let err = e.inspect(&c).unwrap_err();
        assert_eq!(err.kind, ErrorKind::AmbiguousReference);
        assert_eq!(err.metadata["candidates"].split(',').count(), n);
    }
}

#[test]
fn podman_remove_untags_then_deletes_and_prunes_parents() {
    let (s, e) = engine();
    let base = ImageSpec::base("base", 1);
    let child = base.child("top", 2).name("localhost/child:latest");
    let base_id = add_image(&*s, &base).unwrap();
    let child_id = add_image(&*s, &child.clone().name("localhost/other:1")).unwrap();
    assert_eq!(e.inspect("child").unwrap().summary.parent_id, Some(base_id));
    // By name with two names: untag only.
    let r = rm(&e, "child").unwrap();
    assert_eq!(
        r.records,
        vec![Record::Untagged("localhost/child:latest".into())]
    );
    // By ID with one name left: whole image, then the dangling parent.
    let r = rm(&e, &child_id.to_string()).unwrap();
    assert_eq!(
        r.records,
        vec![
            Record::Untagged("localhost/other:1".into()),
            Record::Deleted(child_id),
            Record::Deleted(base_id)
        ]
    );
    assert!(r.reclaimed_bytes > 0);
    assert!(ids(&e, true).is_empty());
    assert_eq!(s.blob_count(), 0, "every blob released");
    let err = rm(&e, "child").unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageNotKnown);
    let ok = e
        .remove(&RemoveOptions {
            reference: "child".into(),
            ignore_missing: true,
            ..Default::default()
        })
        .unwrap();
    assert!(ok.records.is_empty());
}

#[test]
fn podman_by_id_with_names_and_in_use() {
    let (s, e) = engine();
    let id = add_image(
        &*s,
        &ImageSpec::base("x", 1)
            .name("localhost/a:1")
            .name("localhost/b:1"),
    )
    .unwrap();
    let err = rm(&e, &id.hex()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::MultipleNames);
    assert!(
        err.message
            .starts_with(&format!("unable to delete image \"{}\" by ID", id.hex()))
    );
    let c = e
        .register_container(&RegisterContainer {
            id: None,
            image: "localhost/a:1".into(),
            state: ContainerState::Stopped,
            external: false,
            name: String::new(),
        })
        .unwrap();
    assert!(
        e.inspect("localhost/a:1")
            .unwrap()
            .summary
            .last_used
            .is_some()
    );
    rm(&e, "localhost/a:1").unwrap();
    let err = rm(&e, "localhost/b:1").unwrap_err();
    assert_eq!(err.kind, ErrorKind::ImageInUse);
    assert_eq!(err.metadata["container_ids"], c.id);
    // Dry run reports what force would do and changes nothing.
    let opts = RemoveOptions {
        reference: "localhost/b:1".into(),
        force: true,
        dry_run: true,
        ..Default::default()
    };
    let dry = e.remove(&opts).unwrap();
    assert_eq!(dry.removed_containers, vec![c.id.clone()]);
    assert_eq!(e.list_containers("").unwrap().len(), 1);
    let real = e
        .remove(&RemoveOptions {
            dry_run: false,
            ..opts
        })
        .unwrap();
    assert_eq!(real, dry);
    assert!(e.list_containers("").unwrap().is_empty());
}

#[test]
fn running_container_blocks_force() {
    let (s, e) = engine();
    add_image(&*s, &ImageSpec::base("x", 1).name("localhost/a:1")).unwrap();
    e.register_container(&RegisterContainer {
        id: Some("c1".into()),
        image: "localhost/a:1".into(),
        state: ContainerState::Running,
        external: false,
        name: String::new(),
    })
    .unwrap();
    let opts = RemoveOptions {
        reference: "localhost/a:1".into(),
        force: true,
        ..Default::default()
    };
    assert_eq!(
        e.remove(&opts).unwrap_err().kind,
        ErrorKind::ContainerRunning
    );
    assert_eq!(
        e.cri_remove("localhost/a:1").unwrap_err().kind,
        ErrorKind::ContainerRunning
    );
    e.set_container_state("c1", ContainerState::Stopped)
        .unwrap();
    let r = e.cri_remove("localhost/a:1").unwrap();
    assert_eq!(r.removed_containers, vec!["c1".to_string()]);
    assert!(e.cri_remove("localhost/a:1").unwrap().records.is_empty());
}

#[test]
fn list_orders_pages_and_filters() {
    let (s, e) = engine();
    let mut specs = Vec::new();
    for i in 0..25 {
        specs.push(ImageSpec::base(&format!("l{i}"), i).name(&format!("localhost/img{i}:latest")));
    }
    specs.push(ImageSpec::base("dangling", 100));
    add_images(&*s, &specs).unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = e
            .list(&ListOptions {
                page_size: 7,
                page_token: token.clone(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.total_size, 26);
        seen.extend(page.images.iter().map(|i| i.created));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 26);
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "created descending");
    let dangling = e
        .list(&ListOptions {
            filters: vec!["dangling=true".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(dangling.images.len(), 1);
    let err = e
        .list(&ListOptions {
            filters: vec!["dangling=maybe".into()],
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidFilter);
    assert_eq!(err.field_violations[0].field, "filters[0]");
    let p1 = e
        .list(&ListOptions {
            page_size: 5,
            ..Default::default()
        })
        .unwrap();
    let err = e
        .list(&ListOptions {
            page_size: 5,
            page_token: p1.next_page_token,
            order: Order::Id,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidPageToken);
    assert_eq!(
        e.list(&ListOptions {
            page_size: -1,
            ..Default::default()
        })
        .unwrap_err()
        .kind,
        ErrorKind::InvalidArgument
    );
}

#[test]
fn prune_removes_dangling_to_a_fixpoint() {
    let (s, e) = engine();
    let base = ImageSpec::base("base", 1);
    let mid = base.child("mid", 2);
    let top = mid.child("top", 3);
    let named = ImageSpec::base("kept", 4).name("localhost/kept:latest");
    add_images(&*s, &[base, mid, top, named]).unwrap();
    assert_eq!(ids(&e, false).len(), 2, "intermediate images are hidden");
    let dry = e
        .prune(
            &PruneOptions {
                dry_run: true,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(dry.deleted_images.len(), 3);
    let real = e.prune(&PruneOptions::default(), None).unwrap();
    assert_eq!(real, dry);
    assert_eq!(ids(&e, true).len(), 1);
    let all = e
        .prune(
            &PruneOptions {
                all: true,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(all.untagged, vec!["localhost/kept:latest".to_string()]);
    assert_eq!(s.blob_count(), 0);
}

#[test]
fn tag_moves_names_and_untag_rules() {
    let (s, e) = engine();
    let a = add_image(&*s, &ImageSpec::base("a", 1).name("localhost/a:latest")).unwrap();
    let b = add_image(&*s, &ImageSpec::base("b", 2)).unwrap();
    let r = e
        .tag(&b.to_string(), &["a".into(), "docker.io/foo".into()])
        .unwrap();
    assert_eq!(
        r.names,
        vec!["localhost/a:latest", "docker.io/library/foo:latest"]
    );
    assert!(e.inspect(&a.to_string()).unwrap().summary.names.is_empty());
    assert_eq!(
        e.inspect(&b.to_string()).unwrap().summary.names,
        vec!["docker.io/library/foo:latest", "localhost/a:latest"]
    );
    assert!(
        e.tag("a", &["x@sha256:".to_string() + &"a".repeat(64)])
            .is_err()
    );
    let err = e.untag("a", &["donotexist".into()]).unwrap_err();
    assert_eq!(err.message, "localhost/donotexist:latest: tag not known");
    let u = e.untag("a", &["localhost/a".into()]).unwrap();
    assert_eq!(u.untagged, vec!["localhost/a:latest"]);
    let u = e.untag(&b.to_string(), &[]).unwrap();
    assert_eq!(u.untagged, vec!["docker.io/library/foo:latest"]);
}
