//! LoadImages failures: every malformed, truncated or corrupt archive is
//! `InvalidArchive` (over the limit: `TooLarge`) and leaves the store exactly as it was:
//! same images, same names, no staged blob left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load_support;

use imaged_core::ops::{ArchiveFormat, LoadOptions};
use imaged_core::{EngineConfig, ErrorKind};
use imaged_testkit::archive::{
    ArchiveOptions, DockerLayout, SynthImage, corrupt, docker_archive, docker_archive_with,
    oci_archive, oci_archive_with,
};
use load_support::Rig;

/// A store holding one image already, so "unchanged" means something.
fn rig() -> Rig {
    let rig = Rig::new();
    rig.load(&docker_archive(
        &[SynthImage::new("resident").named("resident:1")],
        false,
    ))
    .unwrap();
    rig
}

fn images() -> Vec<SynthImage> {
    let p = SynthImage::new("p").named("p:1");
    let c = p.child(b"child layer content", "RUN c").named("c:1");
    vec![p, c]
}

/// Loads `bytes`, expects `InvalidArchive` with `needle` in the message, and checks the
/// store did not change.
fn rejects(bytes: &[u8], needle: &str, ctx: &str) {
    rejects_with(bytes, &LoadOptions::default(), needle, ctx);
}

fn rejects_with(bytes: &[u8], opts: &LoadOptions, needle: &str, ctx: &str) {
    let rig = rig();
    let before = rig.snapshot();
    let events = rig.events.lock().unwrap().len();
    let err = rig.load_with(bytes, opts).expect_err(ctx);
    assert_eq!(err.kind, ErrorKind::InvalidArchive, "{ctx}: {err}");
    assert!(
        err.message.contains(needle),
        "{ctx}: {needle:?} not in {:?}",
        err.message
    );
    assert_eq!(rig.snapshot(), before, "{ctx}: the store changed");
    assert_eq!(
        rig.events.lock().unwrap().len(),
        events,
        "{ctx}: an event was sent"
    );
}

fn all_formats() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for gzip in [false, true] {
        v.push((
            format!("docker gzip={gzip}"),
            docker_archive(&images(), gzip),
        ));
        v.push((format!("oci gzip={gzip}"), oci_archive(&images(), gzip)));
    }
    v
}

#[test]
fn garbage_and_empty_input() {
    rejects(b"", "empty", "empty");
    rejects(
        b"hello, this is not a tar",
        "not a tar archive",
        "short garbage",
    );
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    rejects(&noise, "not a tar archive", "noise");
    rejects(
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1, 2, 3],
        "",
        "garbage gzip",
    );
    rejects(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0], "zstd", "zstd");
    rejects(&[0u8; 1024], "not an image archive", "an empty tar");
}

#[test]
fn truncated_archives() {
    for (ctx, bytes) in all_formats() {
        let len = bytes.len();
        let mut cuts = vec![600, len / 3, len / 2];
        if ctx.contains("gzip=true") {
            cuts.push(len - 1); // inside the gzip trailer
        } else {
            // Exactly where the end-of-archive blocks start: every entry is complete,
            // but the archive does not say it ended.
            cuts.push(len - 1024);
        }
        for cut in cuts {
            rejects(
                &corrupt::truncate(&bytes, cut),
                "truncated",
                &format!("{ctx} cut at {cut}"),
            );
        }
    }
}

#[test]
fn truncated_at_an_entry_boundary() {
    let bytes = docker_archive(&images(), false);
    let mut a = tar::Archive::new(bytes.as_slice());
    let starts: Vec<u64> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().raw_header_position())
        .collect();
    for cut in &starts[1..] {
        let cut = usize::try_from(*cut).unwrap();
        rejects(
            &corrupt::truncate(&bytes, cut),
            "truncated",
            &format!("boundary {cut}"),
        );
    }
}

#[test]
fn a_flipped_byte_in_a_layer() {
    for gzip in [false, true] {
        // docker-archive: nothing names the layer's digest; its diff ID catches it.
        let bytes = corrupt::flip_layer_byte(&docker_archive(&images(), gzip));
        rejects(&bytes, "diff ID mismatch", &format!("docker gzip={gzip}"));
        // oci-archive: the blob no longer matches its name.
        let bytes = corrupt::flip_layer_byte(&oci_archive(&images(), gzip));
        rejects(
            &bytes,
            "does not match its digest",
            &format!("oci gzip={gzip}"),
        );
        // gzip layers in a docker-archive: corrupt deflate data or a wrong diff ID.
        let opts = ArchiveOptions {
            gzip,
            gzip_layers: true,
            ..ArchiveOptions::default()
        };
        let bytes = corrupt::flip_layer_byte(&docker_archive_with(&images(), &opts));
        rejects(&bytes, "layer", &format!("docker gzip layers gzip={gzip}"));
    }
}

#[test]
fn a_wrong_diff_id() {
    for gzip_layers in [false, true] {
        let opts = ArchiveOptions {
            gzip_layers,
            wrong_diff_id: true,
            ..ArchiveOptions::default()
        };
        rejects(
            &docker_archive_with(&images(), &opts),
            "diff ID mismatch",
            "docker",
        );
        rejects(
            &oci_archive_with(&images(), &opts),
            "diff ID mismatch",
            "oci",
        );
        let opts = ArchiveOptions {
            docker_layout: DockerLayout::Symlinks,
            ..opts
        };
        rejects(
            &docker_archive_with(&images(), &opts),
            "diff ID mismatch",
            "docker symlinks",
        );
    }
}

#[test]
fn missing_pieces() {
    let imgs = images();
    let docker = docker_archive(&imgs, false);
    let cfg = format!("{}.json", imgs[1].id().hex());
    rejects(
        &corrupt::remove_entries(&docker, |p| p == cfg),
        "config",
        "docker config",
    );
    rejects(
        &corrupt::remove_entries(&docker, |p| p.ends_with("layer.tar")),
        "is missing from the archive",
        "docker layer",
    );
    let no_manifest = corrupt::remove_entries(&docker, |p| p == "manifest.json");
    rejects(
        &no_manifest,
        "not an image archive",
        "no manifest.json, auto",
    );
    let docker_fmt = LoadOptions {
        format: ArchiveFormat::Docker,
        ..LoadOptions::default()
    };
    rejects_with(
        &no_manifest,
        &docker_fmt,
        "manifest.json",
        "no manifest.json, docker",
    );

    let oci = oci_archive(&imgs, true);
    let cfg = format!("blobs/sha256/{}", imgs[1].id().hex());
    rejects(
        &corrupt::remove_entries(&oci, |p| p == cfg),
        "is missing from the archive",
        "oci config",
    );
    let manifest = format!("blobs/sha256/{}", imgs[0].manifest_digest(false).hex());
    rejects(
        &corrupt::remove_entries(&oci, |p| p == manifest),
        "is missing",
        "oci manifest",
    );
    let oci_fmt = LoadOptions {
        format: ArchiveFormat::Oci,
        ..LoadOptions::default()
    };
    rejects_with(
        &corrupt::remove_entries(&oci, |p| p == "oci-layout"),
        &oci_fmt,
        "oci-layout",
        "no oci-layout",
    );
}

#[test]
fn malformed_metadata() {
    let imgs = images();
    let docker = docker_archive(&imgs, false);
    rejects(
        &corrupt::replace_entry(&docker, "manifest.json", b"[{"),
        "manifest.json",
        "json",
    );
    rejects(
        &corrupt::replace_entry(&docker, "manifest.json", b"[]"),
        "no image",
        "empty list",
    );
    let bad_tag = br#"[{"Config":"x.json","RepoTags":["UPPER:1"],"Layers":[]}]"#;
    rejects(
        &corrupt::replace_entry(&docker, "manifest.json", bad_tag),
        "config",
        "bad config",
    );
    let cfg = format!("{}.json", imgs[0].id().hex());
    let layer = format!("{}/layer.tar", imgs[0].diff_ids()[0].hex());
    let bad_name = format!(r#"[{{"Config":"{cfg}","RepoTags":["UPPER:1"],"Layers":["{layer}"]}}]"#);
    rejects(
        &corrupt::replace_entry(&docker, "manifest.json", bad_name.as_bytes()),
        "invalid name",
        "name",
    );
    let few = format!(r#"[{{"Config":"{cfg}","RepoTags":null,"Layers":[]}}]"#);
    rejects(
        &corrupt::replace_entry(&docker, "manifest.json", few.as_bytes()),
        "diff IDs",
        "count",
    );
    rejects(
        &corrupt::replace_entry(&docker, &cfg, b"{\"os\":1}"),
        "invalid image config",
        "cfg",
    );

    let oci = oci_archive(&imgs, false);
    rejects(
        &corrupt::replace_entry(&oci, "index.json", b"{"),
        "index.json",
        "index json",
    );
    let index = String::from_utf8(corrupt::entry_data(&oci, "index.json").unwrap()).unwrap();
    let size = corrupt::entry_data(
        &oci,
        &format!("blobs/sha256/{}", imgs[0].manifest_digest(false).hex()),
    )
    .unwrap()
    .len();
    let wrong = index.replacen(
        &format!("\"size\":{size}"),
        &format!("\"size\":{}", size + 1),
        1,
    );
    assert_ne!(wrong, index);
    rejects(
        &corrupt::replace_entry(&oci, "index.json", wrong.as_bytes()),
        "descriptor says",
        "size",
    );
    rejects(
        &corrupt::flip_byte_in(&oci, "index.json"),
        "index.json",
        "flipped index",
    );
}

#[test]
fn a_blob_under_a_wrong_name() {
    let imgs = images();
    let oci = oci_archive(&imgs, false);
    let cfg = format!("blobs/sha256/{}", imgs[0].id().hex());
    rejects(
        &corrupt::replace_entry(&oci, &cfg, b"{}"),
        "does not match its digest",
        "config",
    );
}

#[test]
fn too_large() {
    for (ctx, bytes) in all_formats() {
        let len = bytes.len() as u64;
        let small = Rig::with_config(EngineConfig {
            max_load_bytes: len - 1,
            ..EngineConfig::default()
        });
        let err = small.load(&bytes).expect_err(&ctx);
        assert_eq!(err.kind, ErrorKind::TooLarge, "{ctx}: {err}");
        assert_eq!(
            err.metadata.get("limit").map(String::as_str),
            Some((len - 1).to_string().as_str())
        );
        assert!(small.images().is_empty(), "{ctx}");
        assert_eq!(
            small.store.blob_count(),
            0,
            "{ctx}: staged blobs left behind"
        );
        let exact = Rig::with_config(EngineConfig {
            max_load_bytes: len,
            ..EngineConfig::default()
        });
        exact.load(&bytes).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    }
}
