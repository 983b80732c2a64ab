//! Per-request lookups (issue 14): InspectImage of a manifest list's name gives the
//! instance for the platform asked (the daemon's by default), the list itself when no
//! instance for it is stored or with `manifest`; `manifest` on a plain image is
//! NOT_A_MANIFEST_LIST; `containers-storage:` references resolve, other transports are
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::model::Platform;
use imaged_core::reference::resolve::Lookup;
use imaged_core::{Engine, ErrorKind, MemoryStore};
use imaged_testkit::{ImageSpec, add_images};

#[test]
fn inspect_follows_the_request_platform_and_lookup_manifest() {
    let store = Arc::new(MemoryStore::new());
    let inst = ImageSpec::base("lookup-inst", 1);
    let inst_digest = inst.build().1.digest();
    let other = Platform {
        os: "plan9".into(),
        architecture: "mips".into(),
        variant: String::new(),
    };
    let list = ImageSpec::list(
        vec![
            (imaged_core::Digest::of(b"absent"), other.clone()),
            (inst_digest, Platform::host()),
        ],
        3,
    )
    .name("localhost/list:latest");
    let plain = ImageSpec::base("lookup-plain", 2).name("localhost/plain:1");
    let ids = add_images(store.as_ref(), &[inst, list, plain]).unwrap();
    let engine = Engine::new(store, Default::default());
    let list_name = "localhost/list:latest";

    assert_eq!(engine.inspect(list_name).unwrap().summary.id, ids[0]);
    let for_other = Lookup {
        platform: Some(other),
        manifest: false,
    };
    let got = engine.inspect_with(list_name, &for_other).unwrap();
    assert_eq!(got.summary.id, ids[1], "no local instance: the list itself");
    let the_list = Lookup {
        platform: None,
        manifest: true,
    };
    let got = engine.inspect_with(list_name, &the_list).unwrap();
    assert!(got.summary.is_manifest_list && got.summary.id == ids[1]);
    let e = engine
        .inspect_with("localhost/plain:1", &the_list)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotAManifestList);
    assert_eq!(e.message, "localhost/plain:1: image is not a manifest list");

    let by_storage = format!(
        "containers-storage:[vfs@/x+/y]localhost/plain:1@{}",
        ids[2].hex()
    );
    assert_eq!(engine.inspect(&by_storage).unwrap().summary.id, ids[2]);
    assert_eq!(
        engine
            .inspect("containers-storage:localhost/plain:1")
            .unwrap()
            .summary
            .id,
        ids[2]
    );
    let e = engine.inspect("docker://localhost/plain:1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidReference);
    assert_eq!(
        e.message,
        "unsupported transport \"docker\" for looking up local images"
    );
    // A registry host with a port is no transport.
    assert_eq!(
        engine.inspect("localhost:5000/none:1").unwrap_err().kind,
        ErrorKind::ImageNotKnown
    );
}

#[test]
fn tag_and_untag_follow_the_request_platform_and_lookup_manifest() {
    let store = Arc::new(MemoryStore::new());
    let inst = ImageSpec::base("tag-inst", 1);
    let inst_digest = inst.build().1.digest();
    let other = Platform {
        os: "plan9".into(),
        architecture: "mips".into(),
        variant: String::new(),
    };
    let list = ImageSpec::list(
        vec![
            (imaged_core::Digest::of(b"absent"), other.clone()),
            (inst_digest, Platform::host()),
        ],
        3,
    )
    .name("localhost/list:latest");
    let ids = add_images(store.as_ref(), &[inst, list]).unwrap();
    let engine = Engine::new(store, Default::default());
    let list_name = "localhost/list:latest";
    let names = |n: &str| vec![n.to_owned()];

    // By name: the daemon's platform's instance.
    let r = engine.tag(list_name, &names("inst:1")).unwrap();
    assert_eq!(r.image_id, ids[0]);
    // Another platform with no local instance: the list itself.
    let for_other = Lookup {
        platform: Some(other),
        manifest: false,
    };
    let r = engine
        .tag_with(list_name, &names("list:other"), &for_other)
        .unwrap();
    assert_eq!(r.image_id, ids[1]);
    let the_list = Lookup {
        platform: None,
        manifest: true,
    };
    let r = engine
        .untag_with(list_name, &names("list:other"), &the_list)
        .unwrap();
    assert_eq!(r.image_id, ids[1]);
    let e = engine
        .tag_with("localhost/inst:1", &names("x:1"), &the_list)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotAManifestList);
    let e = engine
        .untag_with("localhost/inst:1", &[], &the_list)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotAManifestList);
    assert_eq!(
        engine.inspect("localhost/inst:1").unwrap().summary.names,
        ["localhost/inst:1"]
    );
}
