//! Shared test helpers: building images through a staging; raw access to the on-disk
//! format and the invariant checker come from the crate's `test-support` feature.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

#[allow(unused_imports)] // each test binary uses a part
pub(crate) use imaged_store_local::test_support::{blob_files, files, invariants, raw};

use std::sync::Arc;

use imaged_core::model::{BlobRef, Container, ContainerState, Image, ImageConfig, Layer};
use imaged_core::store::{Staging, Store};
use imaged_core::{ChangeSet, Digest};

/// Deterministic bytes of layer `n` of a shared pool (1 to ~40 KiB).
pub(crate) fn layer_bytes(n: u32) -> Vec<u8> {
    let len = 1024 + (n as usize * 7919) % (40 << 10);
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(n) as u8)
        .collect()
}

/// Stores `bytes` through `st` and describes them.
pub(crate) fn put(st: &mut dyn Staging, bytes: &[u8], media_type: &str) -> BlobRef {
    let (digest, size) = st
        .put(&mut &bytes[..], Some(&Digest::of(bytes)))
        .expect("put");
    BlobRef {
        digest,
        size,
        media_type: media_type.into(),
    }
}

/// Loads the blobs of an image made of `layers` (pool indexes) and a unique config
/// (`seed`), returning the record (not applied).
pub(crate) fn stage_image(
    st: &mut dyn Staging,
    seed: &str,
    layers: &[u32],
    names: &[&str],
) -> Image {
    let config = put(
        st,
        format!("{{\"config\":\"{seed}\"}}").as_bytes(),
        "config",
    );
    let layers: Vec<Layer> = layers
        .iter()
        .map(|&n| {
            let bytes = layer_bytes(n);
            Layer {
                diff_id: Digest::of(&bytes),
                blob: put(st, &bytes, "layer"),
            }
        })
        .collect();
    let manifest = put(
        st,
        format!("{{\"manifest\":\"{seed}\"}}").as_bytes(),
        "manifest",
    );
    Image {
        id: config.digest,
        names: names.iter().map(|s| (*s).to_owned()).collect(),
        digests: vec![manifest.digest],
        manifest,
        config_blob: Some(config),
        layers,
        config: Arc::new(ImageConfig::default()),
        instances: None,
        read_only: false,
        added: 1,
        last_used: None,
        stored_size: None,
    }
}

/// Stages and applies one image.
pub(crate) fn load(store: &dyn Store, seed: &str, layers: &[u32], names: &[&str]) -> Arc<Image> {
    let mut st = store.stage().expect("stage");
    let img = Arc::new(stage_image(&mut *st, seed, layers, names));
    store
        .apply(&ChangeSet {
            put_images: vec![Arc::clone(&img)],
            ..ChangeSet::default()
        })
        .expect("apply load");
    drop(st);
    img
}

/// A container record on `image`.
pub(crate) fn container(id_seed: u64, image: &Digest) -> Arc<Container> {
    Arc::new(Container {
        id: format!("{id_seed:064x}"),
        image_id: *image,
        state: ContainerState::Created,
        external: false,
        name: String::new(),
        created: 1,
    })
}

/// Turns the closed store at `root`, holding `images`, into a schema v3 store: its image
/// records rewritten in format 1 and `schema_version` = 3, in one transaction.
pub(crate) fn make_v3(root: &std::path::Path, images: &[&Image]) {
    let db = raw::db(root);
    let w = db.begin_write().unwrap();
    {
        let mut t = w.open_table(raw::IMAGES).unwrap();
        for img in images {
            let v = imaged_store_local::codec::encode_image_format_1(img);
            t.insert(img.id.as_bytes().as_slice(), v.as_slice())
                .unwrap();
        }
        w.open_table(raw::META)
            .unwrap()
            .insert("schema_version", 3)
            .unwrap();
    }
    w.commit().unwrap();
}
