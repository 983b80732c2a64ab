//! LoadImages with oci-archives: plain and gzip, compressed layers, podman's naming
//! rules, and image indexes (manifest lists).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load_support;

use imaged_core::Store;
use imaged_core::digest::Digest;
use imaged_core::model::Platform;
use imaged_core::ops::{ArchiveFormat, LoadOptions};
use imaged_testkit::archive::{
    self as synth, ArchiveOptions, SynthImage, corrupt, docker_archive, oci_archive,
    oci_archive_with, oci_index_archive,
};
use load_support::Rig;

fn img(seed: &str) -> SynthImage {
    SynthImage::new(seed).label("seed", seed)
}

#[test]
fn loads_plain_and_gzip_with_plain_and_gzip_layers() {
    for gzip in [false, true] {
        for gzip_layers in [false, true] {
            let ctx = format!("gzip={gzip} gzip_layers={gzip_layers}");
            let rig = Rig::new();
            let parent = img("p").named("quay.io/org/p:1");
            let kid = parent.child(b"kid", "RUN kid").named("quay.io/org/kid:1");
            let opts = ArchiveOptions {
                gzip,
                gzip_layers,
                ..ArchiveOptions::default()
            };
            let report = rig
                .load(&oci_archive_with(&[parent.clone(), kid.clone()], &opts))
                .unwrap();
            let ids: Vec<Digest> = report.images.iter().map(|i| i.id).collect();
            assert_eq!(ids, vec![parent.id(), kid.id()], "{ctx}");
            let k = rig.image(&kid.id());
            assert_eq!(k.names, vec!["quay.io/org/kid:1"]);
            assert_eq!(k.digests, vec![kid.manifest_digest(gzip_layers)], "{ctx}");
            assert_eq!(k.diff_ids().collect::<Vec<_>>(), kid.diff_ids());
            assert_eq!(
                k.layers[1].blob.digest == k.layers[1].diff_id,
                !gzip_layers,
                "{ctx}"
            );
            assert_eq!(
                k.manifest.media_type,
                "application/vnd.oci.image.manifest.v1+json"
            );
            assert_eq!(
                k.config_blob.as_ref().unwrap().media_type,
                "application/vnd.oci.image.config.v1+json"
            );
            assert_eq!(k.config.labels.get("seed").map(String::as_str), Some("p"));
            // p: layer, config, manifest; kid: one more layer, config, manifest.
            assert_eq!(rig.store.blob_count(), 6, "{ctx}");
        }
    }
}

#[test]
fn names_follow_podman() {
    let rig = Rig::new();
    let a = img("a")
        .named("quay.io/a/b:2")
        .named("busybox:1")
        .named("1.0");
    let b = img("b"); // no annotation: unnamed
    let report = rig
        .load(&oci_archive(&[a.clone(), b.clone()], false))
        .unwrap();
    assert_eq!(
        report.images.len(),
        2,
        "one image per manifest, names merged"
    );
    assert_eq!(
        report.images[0].names,
        vec![
            "quay.io/a/b:2",
            "localhost/busybox:1",
            "localhost/1.0:latest"
        ]
    );
    assert_eq!(report.images[1].id, b.id());
    assert!(report.images[1].names.is_empty());
}

#[test]
fn the_containerd_name_annotation_wins() {
    let one = img("redis");
    let archive = oci_archive(std::slice::from_ref(&one), false);
    let d = one.manifest_digest(false);
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{},"annotations":{{"io.containerd.image.name":"docker.io/library/redis:7","org.opencontainers.image.ref.name":"7"}}}}]}}"#,
        corrupt::entry_data(&archive, &format!("blobs/sha256/{}", d.hex()))
            .unwrap()
            .len()
    );
    let archive = corrupt::replace_entry(&archive, "index.json", index.as_bytes());
    let rig = Rig::new();
    let report = rig.load(&archive).unwrap();
    assert_eq!(report.images[0].names, vec!["docker.io/library/redis:7"]);
}

fn platforms() -> Vec<SynthImage> {
    vec![
        img("multi").on("linux", "amd64", ""),
        img("multi").on("linux", "arm64", "v8"),
        img("multi").on("linux", "s390x", ""),
    ]
}

#[test]
fn an_index_loads_as_a_manifest_list_and_its_instances() {
    let rig = Rig::new();
    let instances = platforms();
    let (bytes, index_digest) = oci_index_archive(
        Some("quay.io/m/multi:1"),
        &instances,
        &ArchiveOptions::default(),
    );
    let report = rig.load(&bytes).unwrap();
    let ids: Vec<Digest> = report.images.iter().map(|i| i.id).collect();
    let mut want = vec![index_digest];
    want.extend(instances.iter().map(SynthImage::id));
    assert_eq!(
        ids, want,
        "the list first, then its instances in index order"
    );
    assert_eq!(report.images[0].names, vec!["quay.io/m/multi:1"]);
    assert!(report.images[1..].iter().all(|i| i.names.is_empty()));

    let list = rig.image(&index_digest);
    assert!(list.is_manifest_list());
    assert!(list.config_blob.is_none() && list.layers.is_empty());
    assert_eq!(list.manifest.digest, index_digest);
    assert_eq!(
        list.manifest.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let got = list.instances.clone().unwrap();
    assert_eq!(got.len(), 3);
    for (inst, want) in got.iter().zip(&instances) {
        assert_eq!(inst.digest, want.manifest_digest(false));
        assert_eq!(inst.platform, want.platform);
        assert_eq!(
            rig.image(&want.id()).config.platform,
            std::sync::Arc::new(want.platform.clone())
        );
    }
    let arm = &got[1].platform;
    assert_eq!(
        *arm,
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into()
        }
    );
    assert!(
        rig.store.read_blob(&index_digest).unwrap().is_some(),
        "index blob stored"
    );
}

#[test]
fn absent_instances_stay_listed_but_load_nothing() {
    let instances = platforms();
    let (bytes, index_digest) = oci_index_archive(None, &instances, &ArchiveOptions::default());
    // Drop the s390x manifest (as `docker save` does for platforms it lacks).
    let gone = instances[2].manifest_digest(false);
    let bytes = corrupt::remove_entries(&bytes, |p| p == format!("blobs/sha256/{}", gone.hex()));
    let rig = Rig::new();
    let report = rig.load(&bytes).unwrap();
    assert_eq!(report.images.len(), 3, "list + 2 instances");
    assert!(rig.store.view().image(&instances[2].id()).is_none());
    let list = rig.image(&index_digest);
    assert_eq!(list.instances.as_ref().unwrap().len(), 3);
    assert!(list.names.is_empty());
    // The blobs of the absent instance (its config, present in the archive) are not kept.
    let cfg = instances[2].id();
    assert!(rig.store.read_blob(&cfg).unwrap().is_none());
}

#[test]
fn docker_and_oci_archives_of_one_image_give_one_record() {
    let rig = Rig::new();
    let one = img("same").named("same:1");
    rig.load(&docker_archive(std::slice::from_ref(&one), false))
        .unwrap();
    let first = rig.image(&one.id());
    let opts = LoadOptions {
        format: ArchiveFormat::Oci,
        ..LoadOptions::default()
    };
    // Same uncompressed layers: the OCI manifest equals the one synthesised for the
    // docker-archive (one writer); compressed layers make another manifest.
    let plain = oci_archive(std::slice::from_ref(&one), true);
    rig.load_with(&plain, &opts).unwrap();
    assert_eq!(rig.image(&one.id()).digests, first.digests);
    let gz_layers = ArchiveOptions {
        gzip_layers: true,
        ..ArchiveOptions::default()
    };
    rig.load_with(
        &oci_archive_with(std::slice::from_ref(&one), &gz_layers),
        &opts,
    )
    .unwrap();
    let merged = rig.image(&one.id());
    assert_eq!(rig.images().len(), 1);
    // Both formats normalise the short name like libimage, so the name is shared.
    assert_eq!(merged.names, vec!["localhost/same:1"]);
    assert_eq!(
        merged.manifest, first.manifest,
        "the record keeps its blobs"
    );
    assert_eq!(merged.digests.len(), 2, "the new manifest digest is added");
    assert_eq!(merged.added, first.added);
}

#[test]
fn format_can_be_forced() {
    let one = img("f");
    let rig = Rig::new();
    let opts = LoadOptions {
        format: ArchiveFormat::Docker,
        ..LoadOptions::default()
    };
    let err = rig
        .load_with(&oci_archive(std::slice::from_ref(&one), false), &opts)
        .unwrap_err();
    assert!(err.message.contains("manifest.json"), "{err}");
    let opts = LoadOptions {
        format: ArchiveFormat::Oci,
        ..LoadOptions::default()
    };
    let err = rig
        .load_with(&docker_archive(std::slice::from_ref(&one), false), &opts)
        .unwrap_err();
    assert!(err.message.contains("oci-layout"), "{err}");
    assert!(synth::is_gzip(&synth::gzip(b"x")));
}

/// zstd layers (`+zstd`, as podman and containerd push them) load: the diff ID is the
/// digest of the decompressed tar; a zstd layer whose content is not the config's diff
/// ID is refused.
#[test]
fn loads_zstd_layers() {
    use imaged_core::archive::{
        IndexEntry, MT_OCI_CONFIG, MT_OCI_LAYER_ZSTD, MT_OCI_MANIFEST, index_json, manifest_json,
    };
    use imaged_core::model::BlobRef;
    let image = img("z").named("quay.io/org/z:1");
    let build = |layer_tar: &[u8]| {
        let layer = zstd::stream::encode_all(layer_tar, 3).unwrap();
        let config = image.config_json();
        let lref = BlobRef {
            digest: Digest::of(&layer),
            size: layer.len() as u64,
            media_type: MT_OCI_LAYER_ZSTD.into(),
        };
        let cref = BlobRef {
            digest: Digest::of(&config),
            size: config.len() as u64,
            media_type: MT_OCI_CONFIG.into(),
        };
        let manifest = manifest_json(&cref, std::slice::from_ref(&lref)).unwrap();
        let mref = BlobRef {
            digest: Digest::of(&manifest),
            size: manifest.len() as u64,
            media_type: MT_OCI_MANIFEST.into(),
        };
        let mut t = synth::TarOut::new();
        t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        for b in [&layer, &config, &manifest] {
            t.file(&format!("blobs/sha256/{}", Digest::of(b).hex()), b);
        }
        let annotations = std::collections::BTreeMap::from([(
            "org.opencontainers.image.ref.name",
            "quay.io/org/z:1",
        )]);
        let index = index_json(
            None,
            &[IndexEntry {
                blob: &mref,
                platform: None,
                annotations,
            }],
        )
        .unwrap();
        t.file("index.json", &index);
        (t.finish(), lref.digest)
    };
    let rig = Rig::new();
    let (archive, layer_digest) = build(&image.layer_tar(0));
    let report = rig.load(&archive).unwrap();
    assert_eq!(report.images[0].id, image.id());
    let loaded = rig.image(&image.id());
    assert_eq!(loaded.layers[0].blob.digest, layer_digest);
    assert_eq!(loaded.layers[0].blob.media_type, MT_OCI_LAYER_ZSTD);
    assert_eq!(loaded.diff_ids().collect::<Vec<_>>(), image.diff_ids());

    let rig = Rig::new();
    let (bad, _) = build(b"not the layer the config describes");
    let err = rig.load(&bad).unwrap_err();
    assert!(err.message.contains("diff ID mismatch"), "{err}");
    assert_eq!(rig.store.blob_count(), 0);
}
