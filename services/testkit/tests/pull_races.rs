//! A pull committing while a prune removes the image whose layer the pull reuses (issue
//! 13: "a pull and a prune racing on the same image never leave a half image"): the pull
//! holds the stored blob, so either the image is committed whole (every blob still
//! readable, the store consistent) or the pull fails and stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::engine::staged::PulledManifest;
use imaged_core::ops::{LoadOptions, PruneOptions};
use imaged_core::{Engine, MemoryStore, Store};
use imaged_testkit::archive::{ArchiveOptions, SynthImage, oci_archive_with};

fn race_on(store: Arc<dyn Store>) {
    let engine = Engine::new(Arc::clone(&store), Default::default());
    let base = SynthImage::new("race-base");
    let child = base.child(b"race-top", "RUN top");
    let gz = ArchiveOptions {
        gzip_layers: true,
        ..ArchiveOptions::default()
    };
    // The base, unnamed: a prune takes it.
    engine
        .load(
            &mut oci_archive_with(std::slice::from_ref(&base), &gz).as_slice(),
            &LoadOptions::default(),
        )
        .unwrap();
    let (layers, config, manifest) = child.oci_blobs(true);
    let mut staging = engine.begin_pull().unwrap();
    staging
        .put_blob(&mut manifest.as_slice(), &Digest::of(&manifest))
        .unwrap();
    staging
        .put_blob(&mut config.as_slice(), &Digest::of(&config))
        .unwrap();
    let shared = Digest::of(&layers[0]);
    assert!(
        staging.hold_blob(&shared, layers[0].len() as u64).unwrap(),
        "the base's layer is reused, not fetched"
    );

    // The prune races the pull: the base image goes while the pull holds its layer.
    let pruned = engine
        .prune(
            &PruneOptions {
                all: true,
                ..PruneOptions::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(pruned.deleted_images, [base.id()]);

    staging
        .put_blob(&mut layers[1].as_slice(), &Digest::of(&layers[1]))
        .unwrap();
    let committed = staging.commit(&PulledManifest {
        digest: Digest::of(&manifest),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: manifest.len() as u64,
        name: Some("localhost/race/child:1".into()),
        extra_digests: Vec::new(),
    });
    let view = engine.view();
    match committed {
        Ok(_) => {
            let img = view.image(&child.id()).expect("committed whole");
            for b in img.blobs() {
                assert!(
                    store.read_blob(&b.digest).unwrap().is_some(),
                    "blob {} of the pulled image is gone",
                    b.digest
                );
            }
        }
        Err(e) => assert_eq!(view.len(), 0, "a failed pull stored something: {e}"),
    }
    assert_eq!(store.check(false).unwrap().problems, Vec::<String>::new());
}

#[test]
fn a_prune_racing_a_pull_leaves_no_half_image_in_memory() {
    race_on(Arc::new(MemoryStore::new()));
}

#[test]
fn a_prune_racing_a_pull_leaves_no_half_image_in_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    race_on(Arc::new(imaged_store_local::open(dir.path()).unwrap()));
}
