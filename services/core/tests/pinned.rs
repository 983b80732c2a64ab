//! Pinned images (SPEC §4, CRI `pinned`): configured names and globs match the stored and
//! the familiar forms of an image's names; the `io.imaged.pinned=true` label pins too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test assertions

use std::sync::Arc;

use imaged_core::ops::ListOptions;
use imaged_core::{Engine, EngineConfig, MemoryStore};
use imaged_testkit::{ImageSpec, add_images};

/// Whether an image made by `spec` is listed as pinned with these configured entries.
fn pinned_with(entries: &[&str], spec: ImageSpec) -> bool {
    let store = Arc::new(MemoryStore::new());
    add_images(&*store, &[spec]).unwrap();
    let config = EngineConfig {
        pinned_images: entries.iter().map(|s| (*s).to_owned()).collect(),
        ..EngineConfig::default()
    };
    let page = Engine::new(store, config)
        .list(&ListOptions::default())
        .unwrap();
    assert_eq!(page.images.len(), 1);
    page.images[0].pinned
}

fn pins(entries: &[&str], names: &[&str]) -> bool {
    let mut spec = ImageSpec::base("pinned-test", 1);
    for n in names {
        spec = spec.name(n);
    }
    pinned_with(entries, spec)
}

#[test]
fn exact_entries_match_their_normalised_forms() {
    assert!(pins(&["pause:3.9"], &["docker.io/library/pause:3.9"]));
    assert!(pins(&["pause:3.9"], &["localhost/pause:3.9"]));
    assert!(pins(
        &["registry.k8s.io/pause"],
        &["registry.k8s.io/pause:latest"]
    ));
    assert!(pins(
        &["registry.k8s.io/pause:3.9"],
        &["registry.k8s.io/pause:3.9"]
    ));
    assert!(!pins(&["pause:3.9"], &["registry.k8s.io/pause:3.9"]));
    assert!(!pins(&["pause:3.9"], &["docker.io/library/pause:3.10"]));
    assert!(!pins(&["", "  "], &["docker.io/library/pause:3.9"]));
}

#[test]
fn globs_match_stored_and_familiar_names() {
    assert!(pins(&["registry.k8s.io/*"], &["registry.k8s.io/pause:3.9"]));
    assert!(pins(&["pause:*"], &["docker.io/library/pause:3.9"]));
    assert!(pins(&["app/*"], &["localhost/app/web:1"]));
    assert!(!pins(&["pause:*"], &["quay.io/pause:3.9"]));
}

#[test]
fn labels_pin() {
    let labelled = |v: &str| {
        ImageSpec::base("pinned-label", 1)
            .name("localhost/l:1")
            .label("io.imaged.pinned", v)
    };
    assert!(pinned_with(&[], labelled("true")));
    assert!(!pinned_with(&[], labelled("false")));
}
