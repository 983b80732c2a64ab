//! Start-up time with a large catalog. Ignored by default (it writes 100k records and
//! 200k files); run it optimised:
//!
//! ```text
//! cargo test -p imaged-store-local --release --test startup -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::raw;
use imaged_core::Digest;
use imaged_core::model::{BlobRef, HistoryEntry, Image, ImageConfig, Layer, RunConfig};
use imaged_core::store::Store;

const IMAGES: usize = 100_000;

/// A realistic record: 5 layers out of a shared pool of 200, 6 history entries, labels,
/// environment, 1 or 2 names.
fn image(i: usize) -> Image {
    let blob = |seed: String, size: u64| BlobRef {
        digest: Digest::of(seed.as_bytes()),
        size,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    let layers = (0..5)
        .map(|l| Layer {
            blob: blob(format!("layer {}", (i * 7 + l * 13) % 200), 30 << 20),
            diff_id: Digest::of(format!("diff {}", (i * 7 + l * 13) % 200).as_bytes()),
        })
        .collect();
    let config = ImageConfig {
        created: Some(1_700_000_000_000_000_000 + i as i64),
        platform: imaged_core::intern::platform("linux", "amd64", ""),
        labels: [
            (
                "org.opencontainers.image.source",
                "https://example.com/repo",
            ),
            ("version", "1.2.3"),
            ("maintainer", "team@example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into(),
        run: RunConfig {
            user: "1000:1000".into(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "LANG=C.UTF-8".into(),
                format!("APP_BUILD={i}"),
            ],
            entrypoint: vec!["/usr/bin/app".into()],
            cmd: vec!["--serve".into()],
            working_dir: "/srv".into(),
            exposed_ports: vec!["8080/tcp".into()],
            ..RunConfig::default()
        }
        .into(),
        history: (0..6)
            .map(|h| {
                Arc::new(HistoryEntry {
                    created: Some(1_700_000_000_000_000_000),
                    created_by: format!("/bin/sh -c #(nop) step {h} of build {i}"),
                    empty_layer: h % 3 == 2,
                    ..HistoryEntry::default()
                })
            })
            .collect(),
    };
    let cfg = blob(format!("config {i}"), 4096);
    let manifest = blob(format!("manifest {i}"), 1024);
    let mut names = vec![format!("registry.example.com/team/app{i}:v1")];
    if i.is_multiple_of(2) {
        names.push(format!("registry.example.com/team/app{i}:latest"));
    }
    Image {
        id: cfg.digest,
        names,
        digests: vec![manifest.digest],
        manifest,
        config_blob: Some(cfg),
        layers,
        config: Arc::new(config),
        instances: None,
        read_only: false,
        added: 1_700_000_000_000_000_000,
        last_used: None,
        stored_size: None,
    }
}

/// CPU time of the whole process (all threads), from `/proc/self/stat`, in 10 ms ticks.
fn cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    std::time::Duration::from_millis((f[0] + f[1]) * 10)
}

/// Where the time goes, each step on one thread: decoding (binary vs JSON) and building
/// the catalog.
#[test]
#[ignore = "benchmark: 100k images; run with --release --ignored"]
fn decode_and_catalog_costs() {
    let images: Vec<Image> = (0..IMAGES).map(image).collect();
    let bin: Vec<Vec<u8>> = images
        .iter()
        .map(imaged_store_local::codec::encode_image)
        .collect();
    let json: Vec<Vec<u8>> = images
        .iter()
        .map(|i| serde_json::to_vec(i).unwrap())
        .collect();
    let size = |v: &[Vec<u8>]| v.iter().map(Vec::len).sum::<usize>() >> 20;
    eprintln!(
        "record bytes: binary {} MiB, JSON {} MiB",
        size(&bin),
        size(&json)
    );
    drop(images);
    let (t, c) = (Instant::now(), cpu());
    let decoded: Vec<Image> = bin
        .iter()
        .map(|b| imaged_store_local::codec::decode_image(b).unwrap())
        .collect();
    eprintln!("binary decode: {:?} wall, {:?} cpu", t.elapsed(), cpu() - c);
    drop(decoded);
    let (t, c) = (Instant::now(), cpu());
    let decoded: Vec<Image> = json
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    eprintln!("JSON decode:   {:?} wall, {:?} cpu", t.elapsed(), cpu() - c);
    let (t, c) = (Instant::now(), cpu());
    let catalog = imaged_core::Catalog::from_records(decoded, []).unwrap();
    eprintln!(
        "Catalog::from_records: {:?} wall, {:?} cpu",
        t.elapsed(),
        cpu() - c
    );
    assert_eq!(catalog.len(), IMAGES);
}

#[test]
#[ignore = "benchmark: 100k images; run with --release --ignored"]
fn open_with_100k_images_profile() {
    let dir = tempfile::tempdir().unwrap();
    drop(imaged_store_local::open(dir.path()).unwrap());
    let images: Vec<Image> = (0..IMAGES).map(image).collect();
    let blobs = dir.path().join("blobs/sha256");
    let mut files = std::collections::HashSet::new();
    for img in &images {
        for b in img.blobs() {
            if files.insert(b.digest) {
                std::fs::File::create(blobs.join(b.digest.hex())).unwrap();
            }
        }
    }
    let t = Instant::now();
    raw::put_images(dir.path(), &images);
    let took = t.elapsed();
    eprintln!(
        "wrote {IMAGES} records and {} blob files ({took:?}); meta.redb is {} MiB",
        files.len(),
        std::fs::metadata(dir.path().join("meta.redb"))
            .unwrap()
            .len()
            >> 20
    );
    drop(images);

    let mut best = std::time::Duration::MAX;
    for _ in 0..3 {
        let (t, c) = (Instant::now(), cpu());
        let store = imaged_store_local::open(dir.path()).unwrap();
        let took = t.elapsed();
        let used = cpu() - c;
        assert_eq!(store.view().len(), IMAGES);
        assert_eq!(
            store.sweep_report(),
            imaged_store_local::SweepReport::default()
        );
        eprintln!("open with {IMAGES} images: {took:?} wall, {used:?} cpu (all threads)");
        best = best.min(took);
    }
    // A profiling aid, not a timed test: the start-up goal is measured by the benchmark
    // harness (tests/bench, BENCHMARKS.md).
    eprintln!("best open: {best:?}");
}
