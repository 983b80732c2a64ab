//! `docker-archive` (`docker save`, `podman save --format docker-archive`):
//! `manifest.json` = `[{"Config": path, "RepoTags": [..], "Layers": [paths]}]`.
//!
//! Layers may be `<id>/layer.tar` (Docker ≤ 24), `<hex>.tar` with `<id>/layer.tar`
//! symlinks (podman), or `blobs/sha256/<hex>` (Docker ≥ 25); uncompressed (digest = diff
//! ID) or gzip. The config's digest is the image ID, whatever its file is called (as
//! Docker and containers/image do). Each image gets a synthesised OCI manifest stored as
//! its manifest blob; the same archive always gives the same manifest digest.

use std::sync::Arc;

use serde::Deserialize;

use super::stream::Collected;
use super::verify::{self, MT_OCI_CONFIG, MT_OCI_MANIFEST};
use super::{Found, invalid, push_found};
use crate::error::Result;
use crate::model::{BlobRef, Image};
use crate::reference::normalize_name;
use crate::store::{Staging, Store};

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// Reads the images of a docker-archive.
pub(super) fn parse(
    files: &Collected,
    store: &dyn Store,
    staging: &mut dyn Staging,
) -> Result<Vec<Found>> {
    let raw = files
        .meta("manifest.json")
        .ok_or_else(|| invalid("manifest.json: missing from the archive"))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(invalid("manifest.json: lists no image"));
    }
    let mut found = Vec::with_capacity(entries.len());
    for entry in &entries {
        push_found(&mut found, image(files, store, staging, entry)?);
    }
    Ok(found)
}

fn image(
    files: &Collected,
    store: &dyn Store,
    staging: &mut dyn Staging,
    entry: &Entry,
) -> Result<Found> {
    let cfg_blob = files.blob(&entry.config).ok_or_else(|| {
        invalid(format!(
            "manifest.json: config {:?} is missing from the archive",
            entry.config
        ))
    })?;
    let what = format!("config {}", cfg_blob.digest);
    let parsed = verify::parse_config(&files.json(cfg_blob, store, &what)?, &what)?;
    if parsed.diff_ids.len() != entry.layers.len() {
        return Err(invalid(format!(
            "manifest.json: image {} lists {} layers but its config has {} diff IDs",
            cfg_blob.digest,
            entry.layers.len(),
            parsed.diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (path, diff_id) in entry.layers.iter().zip(&parsed.diff_ids) {
        let blob = files.blob(path).ok_or_else(|| {
            invalid(format!(
                "manifest.json: layer {path:?} is missing from the archive"
            ))
        })?;
        layers.push(verify::check_layer(blob, *diff_id, None, path)?);
    }
    let names = entry
        .repo_tags
        .iter()
        .flatten()
        .map(|t| {
            // libimage's NormalizeName, as `podman load` does (SPEC §2: writing a
            // name normalises like libimage): `busybox:latest` -> `localhost/busybox:latest`.
            normalize_name(t)
                .map(|r| r.to_string())
                .map_err(|e| invalid(format!("manifest.json: invalid name {t:?}: {}", e.message)))
        })
        .collect::<Result<Vec<_>>>()?;
    let config_ref = BlobRef {
        digest: cfg_blob.digest,
        size: cfg_blob.size,
        media_type: MT_OCI_CONFIG.into(),
    };
    let layer_refs: Vec<BlobRef> = layers.iter().map(|l| l.blob.clone()).collect();
    let manifest_bytes = verify::manifest_json(&config_ref, &layer_refs)?;
    let (digest, size) = staging.put(&mut manifest_bytes.as_slice(), None)?;
    let manifest = BlobRef {
        digest,
        size,
        media_type: MT_OCI_MANIFEST.into(),
    };
    let image = Image {
        id: cfg_blob.digest,
        names: Vec::new(),
        digests: vec![digest],
        manifest,
        config_blob: Some(config_ref),
        layers,
        config: Arc::new(parsed.config),
        instances: None,
        read_only: false,
        added: 0,
        last_used: None,
        stored_size: None,
    };
    Ok(Found {
        image,
        names: dedup(names),
        top_level: true,
    })
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}
