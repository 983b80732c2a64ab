//! Tests of [`Loads`]: staging on its own, then imports checked with real skopeo and
//! podman on private stores (they fail when the tools are missing: `scripts/setup`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use imaged_core::archive::{
    MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_MANIFEST, manifest_json,
};
use imaged_core::digest::Digest;
use imaged_core::error::ErrorKind;
use imaged_core::model::{BlobRef, Image, ImageConfig, Layer};
use imaged_core::store::Staging;
use imaged_testkit::archive::{SynthImage, corrupt, gzip};
use imaged_testkit::podman::{PodmanStore, busybox_archive};

use super::{Loads, skopeo_error};
use crate::config::{Driver, StoreOptions};

fn loads(dir: &tempfile::TempDir) -> Arc<Loads> {
    Arc::new(Loads::new(dir.path().join("imaged-staging")))
}

fn put(s: &mut dyn Staging, bytes: &[u8]) -> (Digest, u64) {
    s.put(&mut &bytes[..], Some(&Digest::of(bytes))).unwrap()
}

fn count_entries(p: &std::path::Path) -> usize {
    std::fs::read_dir(p).map_or(0, |d| d.count())
}

#[test]
fn put_verifies_the_digest_and_lays_out_an_oci_layout() {
    let dir = tempfile::tempdir().unwrap();
    let l = loads(&dir);
    let mut s = l.stage(Arc::default()).unwrap();
    let (d, size) = put(s.as_mut(), b"hello");
    assert_eq!(size, 5);
    assert_eq!(l.read_blob(&d).as_deref(), Some(&b"hello"[..]));
    // Same bytes again: one file.
    put(s.as_mut(), b"hello");
    // Wrong expected digest: InvalidArchive, nothing kept.
    let wrong = Digest::of(b"other");
    let e = s.put(&mut &b"bytes"[..], Some(&wrong)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArchive);
    assert_eq!(l.read_blob(&Digest::of(b"bytes")), None);
    // Without an expected digest the computed one is returned.
    let (d2, _) = s.put(&mut &b"free"[..], None).unwrap();
    assert_eq!(d2, Digest::of(b"free"));

    let layouts: Vec<PathBuf> = std::fs::read_dir(l.root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(layouts.len(), 1);
    let layout = &layouts[0];
    assert_eq!(
        std::fs::read(layout.join("oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_eq!(count_entries(&layout.join("blobs/sha256")), 2);
    assert_eq!(
        count_entries(&layout.join("ingest")),
        0,
        "no temporary left"
    );
    assert!(layout.join("blobs/sha256").join(d.hex()).is_file());

    drop(s);
    assert_eq!(
        l.read_blob(&d),
        None,
        "the registry forgets a dropped staging"
    );
    assert_eq!(count_entries(l.root()), 0, "the layout is removed");
}

#[test]
fn hold_shares_a_blob_of_another_live_staging() {
    let dir = tempfile::tempdir().unwrap();
    let l = loads(&dir);
    let mut a = l.stage(Arc::default()).unwrap();
    let mut b = l.stage(Arc::default()).unwrap();
    let (d, _) = put(a.as_mut(), b"shared");
    assert!(!b.hold(&Digest::of(b"nowhere")).unwrap());
    assert!(b.hold(&d).unwrap());
    assert!(a.hold(&d).unwrap(), "its own blob");
    drop(a);
    assert_eq!(
        l.read_blob(&d).as_deref(),
        Some(&b"shared"[..]),
        "b still holds it"
    );
    drop(b);
    assert_eq!(l.read_blob(&d), None);
    assert_eq!(count_entries(l.root()), 0);
}

#[test]
fn sweep_removes_what_dead_processes_left() {
    let dir = tempfile::tempdir().unwrap();
    let l = loads(&dir);
    let live = l.stage(Arc::default()).unwrap();
    // pid_max is at most 2^22: this pid never exists.
    std::fs::create_dir_all(l.root().join("99999999-0123/blobs")).unwrap();
    std::fs::create_dir_all(l.root().join("import-0123")).unwrap();
    std::fs::create_dir_all(l.root().join("unrelated")).unwrap();
    // An import directory is kept while a staging of this process is live.
    assert_eq!(l.sweep().unwrap(), 1);
    drop(live);
    assert_eq!(l.sweep().unwrap(), 1);
    let left: Vec<String> = std::fs::read_dir(l.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec!["unrelated".to_owned()]);
}

#[test]
fn skopeo_failures_map_to_imaged_errors() {
    let img = record(&[], b"{}");
    let cases = [
        (
            "Error: writing blob: storing blob to file \"/x\": write /x: no space left on device",
            ErrorKind::NoSpace,
        ),
        (
            "Error: writing blob: adding layer with blob \"sha256:ab\": processing tar file(archive/tar: invalid tar header): exit status 1",
            ErrorKind::InvalidArchive,
        ),
        (
            "Error: initializing destination: mkdir /r: permission denied",
            ErrorKind::Internal,
        ),
    ];
    for (stderr, kind) in cases {
        let e = skopeo_error(&img, "exit status: 1", stderr);
        assert_eq!(e.kind, kind, "{stderr}");
        assert!(e.message.contains(stderr), "{}", e.message);
    }
    let long = "é".repeat(10_000);
    let e = skopeo_error(&img, "exit status: 1", &long);
    assert!(e.message.len() < 5000);
}

/// An image record as the engine would commit it: OCI manifest over `layers` (plain tars)
/// and `config`.
fn record(layers: &[Vec<u8>], config: &[u8]) -> Image {
    let layer_refs: Vec<BlobRef> = layers
        .iter()
        .map(|l| BlobRef {
            digest: Digest::of(l),
            size: l.len() as u64,
            media_type: if imaged_testkit::archive::is_gzip(l) {
                MT_OCI_LAYER_GZIP
            } else {
                MT_OCI_LAYER
            }
            .into(),
        })
        .collect();
    let config_ref = BlobRef {
        digest: Digest::of(config),
        size: config.len() as u64,
        media_type: MT_OCI_CONFIG.into(),
    };
    let manifest = manifest_json(&config_ref, &layer_refs).unwrap();
    Image {
        id: config_ref.digest,
        names: Vec::new(),
        digests: vec![Digest::of(&manifest)],
        manifest: BlobRef {
            digest: Digest::of(&manifest),
            size: manifest.len() as u64,
            media_type: MT_OCI_MANIFEST.into(),
        },
        config_blob: Some(config_ref),
        layers: layer_refs
            .into_iter()
            .map(|blob| Layer {
                diff_id: blob.digest,
                blob,
            })
            .collect(),
        config: Arc::new(ImageConfig::default()),
        instances: None,
        read_only: false,
        added: 0,
        last_used: None,
        stored_size: None,
    }
}

/// Stages `layers`, `config` and the OCI manifest the engine writes; the record.
fn stage_image(s: &mut dyn Staging, layers: &[Vec<u8>], config: &[u8]) -> Image {
    let img = record(layers, config);
    for l in layers {
        put(s, l);
    }
    put(s, config);
    let refs: Vec<BlobRef> = img.layers.iter().map(|l| l.blob.clone()).collect();
    let manifest = manifest_json(img.config_blob.as_ref().unwrap(), &refs).unwrap();
    assert_eq!(put(s, &manifest).0, img.manifest.digest);
    img
}

/// The layer and config of `imaged_testkit::podman::busybox_archive`.
fn busybox_parts() -> (Vec<u8>, Vec<u8>) {
    let archive = busybox_archive("localhost/unused:1").unwrap();
    let paths = corrupt::entry_paths(&archive);
    let layer = paths.iter().find(|p| p.ends_with("layer.tar")).unwrap();
    let config = paths
        .iter()
        .find(|p| p.ends_with(".json") && *p != "manifest.json")
        .unwrap();
    let mut layer_tar = corrupt::entry_data(&archive, layer).unwrap();
    let mut config = String::from_utf8(corrupt::entry_data(&archive, config).unwrap()).unwrap();
    // The testkit writes every file 0644; make /bin/busybox executable (and the config's
    // diff ID follow).
    let old_diff_id = Digest::of(&layer_tar).to_string();
    make_executable(&mut layer_tar, "bin/busybox");
    config = config.replace(&old_diff_id, &Digest::of(&layer_tar).to_string());
    (layer_tar, config.into_bytes())
}

/// Sets mode 0755 on the ustar entry `path` of `tar`, fixing the header checksum.
fn make_executable(tar: &mut [u8], path: &str) {
    let mut off = 0;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let size_field = std::str::from_utf8(&h[124..136]).unwrap();
        let size = u64::from_str_radix(size_field.trim_matches(['\0', ' ']), 8).unwrap();
        if &h[..name_end] == path.as_bytes() {
            let hdr = &mut tar[off..off + 512];
            hdr[100..108].copy_from_slice(b"0000755\0");
            hdr[148..156].copy_from_slice(b"        ");
            let sum: u32 = hdr.iter().map(|b| u32::from(*b)).sum();
            hdr[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            return;
        }
        off += 512 + usize::try_from(size.div_ceil(512) * 512).unwrap();
    }
    panic!("{path} not in the layer");
}

fn options(ps: &PodmanStore) -> StoreOptions {
    let driver = Driver::parse(ps.driver).expect("a driver imaged manages");
    StoreOptions::new(ps.root.clone(), ps.run.clone(), driver)
}

/// `podman images` rows `ID NAME` (full IDs, `<none>` for none), sorted.
fn podman_images(ps: &PodmanStore) -> Vec<String> {
    let out = ps
        .podman_ok(&[
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ])
        .unwrap();
    let mut rows: Vec<String> = out.lines().map(str::to_owned).collect();
    rows.sort();
    rows
}

fn imports_a_runnable_image(driver: &'static str) {
    let ps = PodmanStore::new(driver).unwrap();
    let opts = options(&ps);
    let l = Arc::new(Loads::new(ps.root.join("imaged-staging")));
    let (layer, config) = busybox_parts();
    let mut s = l.stage(Arc::default()).unwrap();
    let img = stage_image(s.as_mut(), std::slice::from_ref(&layer), &config);

    // No name: stored without one, under the config digest.
    l.import(&opts, &img, "").unwrap();
    assert_eq!(
        podman_images(&ps),
        vec![format!("{} <none>:<none>", img.id)]
    );
    // Already there: the name is added, nothing else changes.
    l.import(&opts, &img, "localhost/bb:1").unwrap();
    assert_eq!(
        podman_images(&ps),
        vec![format!("{} localhost/bb:1", img.id)]
    );
    drop(s);
    assert_eq!(count_entries(&ps.root.join("imaged-staging")), 0);

    let inspect = ps
        .podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Digest}} {{len .RootFS.Layers}}",
            "localhost/bb:1",
        ])
        .unwrap();
    assert_eq!(
        inspect.trim(),
        format!("{} {} 1", img.id.hex(), img.manifest.digest)
    );
    let out = ps
        .podman_ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/bb:1",
            "/bin/busybox",
            "echo",
            "loaded",
        ])
        .unwrap();
    assert_eq!(out.trim(), "loaded");
    // podman save rebuilds the layer from what was stored (tar-split): same diff ID.
    let saved = ps.dir().join("saved.tar");
    let saved_s = saved.to_str().unwrap();
    ps.podman_ok(&["save", "-q", "-o", saved_s, "localhost/bb:1"])
        .unwrap();
    let bytes = std::fs::read(&saved).unwrap();
    let layer_tar = corrupt::entry_paths(&bytes)
        .into_iter()
        .filter_map(|p| corrupt::entry_data(&bytes, &p))
        .find(|d| Digest::of(d) == Digest::of(&layer));
    assert!(
        layer_tar.is_some(),
        "podman save gives back the loaded layer byte for byte"
    );
}

#[test]
fn imports_a_runnable_image_overlay() {
    imports_a_runnable_image("overlay");
}

#[test]
fn imports_a_runnable_image_vfs() {
    imports_a_runnable_image("vfs");
}

#[test]
fn imports_images_sharing_layers_from_two_stagings() {
    let ps = PodmanStore::new("overlay").unwrap();
    let opts = options(&ps);
    let l = Arc::new(Loads::new(ps.root.join("imaged-staging")));
    let base = SynthImage::new("base");
    let child = base.child(b"child content", "RUN child");
    let base_layers: Vec<Vec<u8>> = (0..base.layers.len()).map(|i| base.layer_tar(i)).collect();
    let child_layers: Vec<Vec<u8>> = (0..child.layers.len())
        .map(|i| child.layer_tar(i))
        .collect();

    let mut a = l.stage(Arc::default()).unwrap();
    let base_img = stage_image(a.as_mut(), &base_layers, &base.config_json());
    let mut b = l.stage(Arc::default()).unwrap();
    // The second load holds the base layer the first one staged.
    assert!(b.hold(&base_img.layers[0].blob.digest).unwrap());
    put(b.as_mut(), &child_layers[1]);
    put(b.as_mut(), &child.config_json());
    let child_img = record(&child_layers, &child.config_json());
    let refs: Vec<BlobRef> = child_img.layers.iter().map(|x| x.blob.clone()).collect();
    put(
        b.as_mut(),
        &manifest_json(child_img.config_blob.as_ref().unwrap(), &refs).unwrap(),
    );
    drop(a);
    l.import(&opts, &child_img, "localhost/child:1").unwrap();
    assert_eq!(
        podman_images(&ps),
        vec![format!("{} localhost/child:1", child.id())]
    );
    // The base image is not staged any more.
    let e = l.import(&opts, &base_img, "localhost/base:1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    drop(b);
}

#[test]
fn a_layer_containers_storage_refuses_is_an_invalid_archive() {
    let ps = PodmanStore::new("vfs").unwrap();
    let opts = options(&ps);
    let l = Arc::new(Loads::new(ps.root.join("imaged-staging")));
    // Digests all match, but the "layer" is not a tar stream.
    let garbage = gzip(b"this is not a tar archive at all").repeat(3);
    let config = SynthImage::new("bad").config_json();
    let mut s = l.stage(Arc::default()).unwrap();
    let img = stage_image(s.as_mut(), &[garbage], &config);
    let e = l.import(&opts, &img, "localhost/bad:1").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArchive, "{}", e.message);
    assert!(e.message.contains("skopeo copy failed"), "{}", e.message);
    assert!(podman_images(&ps).is_empty());
}

#[test]
fn a_missing_skopeo_is_an_internal_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let l = loads(&dir);
    let mut opts = StoreOptions::new(dir.path().join("root"), dir.path().join("run"), Driver::Vfs);
    opts.skopeo = dir.path().join("no-skopeo-here");
    let mut s = l.stage(Arc::default()).unwrap();
    let img = stage_image(s.as_mut(), &[b"x".to_vec()], b"{}");
    let e = l.import(&opts, &img, "").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Internal);
    assert!(e.message.contains("no-skopeo-here"), "{}", e.message);
    // The import directory is gone; only the staging remains.
    assert_eq!(count_entries(l.root()), 1);
}

#[test]
fn store_paths_skopeo_cannot_parse_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let l = loads(&dir);
    let opts = StoreOptions::new(
        dir.path().join("ro+ot"),
        dir.path().join("run"),
        Driver::Vfs,
    );
    let mut s = l.stage(Arc::default()).unwrap();
    let img = stage_image(s.as_mut(), &[b"x".to_vec()], b"{}");
    let e = l.import(&opts, &img, "").unwrap_err();
    assert!(e.message.contains("ro+ot"), "{}", e.message);
    let good = StoreOptions::new(dir.path().join("r"), dir.path().join("run"), Driver::Vfs);
    let e = l.import(&good, &img, "localhost/x@sha256:00").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
}

#[test]
fn a_gzip_layer_keeps_the_manifest_digest() {
    let ps = PodmanStore::new("overlay").unwrap();
    let opts = options(&ps);
    let l = Arc::new(Loads::new(ps.root.join("imaged-staging")));
    let synth = SynthImage::new("gz");
    let layer = gzip(&synth.layer_tar(0));
    let mut s = l.stage(Arc::default()).unwrap();
    let img = stage_image(s.as_mut(), &[layer], &synth.config_json());
    l.import(&opts, &img, "localhost/gz:1").unwrap();
    let inspect = ps
        .podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Digest}}",
            "localhost/gz:1",
        ])
        .unwrap();
    assert_eq!(
        inspect.trim(),
        format!("{} {}", synth.id().hex(), img.manifest.digest)
    );
}
