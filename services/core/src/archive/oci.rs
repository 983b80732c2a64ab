//! `oci-archive`: an OCI image layout in a tar (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`). Entries of `index.json` are image manifests or image indexes
//! (manifest lists), possibly nested.
//!
//! Names, as podman's libimage does it: the annotation `io.containerd.image.name` (Docker
//! ≥ 25, containerd) if present, else `org.opencontainers.image.ref.name`, normalised
//! with libimage's `NormalizeName` (no domain → `localhost/`, no tag → `:latest`). So a
//! full reference keeps its meaning and a bare tag such as `1.0` (what `skopeo copy
//! … oci-archive:x.tar:1.0` writes) becomes `localhost/1.0:latest`, exactly as
//! `podman load` names it.
//!
//! An index is stored as a manifest-list record (ID = index digest) plus each instance
//! present in the archive; instances whose blobs are absent (Docker saves only the
//! platforms it has) stay listed as instances but load nothing. Attestation manifests
//! and artifacts (config not an image config) are skipped.

use std::collections::HashMap;
use std::sync::Arc;

use oci_spec::image::{ANNOTATION_REF_NAME, Descriptor, ImageIndex, ImageManifest, OciLayout};

use super::stream::{Collected, StagedBlob};
use super::verify::{
    self, MT_DOCKER_CONFIG, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_CONFIG, MT_OCI_INDEX,
    MT_OCI_MANIFEST,
};
use super::{Found, invalid, push_found};
use crate::digest::Digest;
use crate::error::Result;
use crate::model::{BlobRef, Image, ManifestInstance, Platform};
use crate::store::Store;

/// The annotation Docker and containerd put the full image name in.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Deepest nesting of indexes followed.
const MAX_DEPTH: usize = 8;

/// Reads the images of an oci-archive.
pub(crate) fn parse(files: &Collected, store: &dyn Store) -> Result<Vec<Found>> {
    let layout = files
        .meta("oci-layout")
        .ok_or_else(|| invalid("oci-layout: missing from the archive"))?;
    let layout: OciLayout =
        serde_json::from_slice(layout).map_err(|e| invalid(format!("oci-layout: {e}")))?;
    if !layout.image_layout_version().starts_with("1.") {
        return Err(invalid(format!(
            "oci-layout: unsupported imageLayoutVersion {:?}",
            layout.image_layout_version()
        )));
    }
    let raw = files
        .meta("index.json")
        .ok_or_else(|| invalid("index.json: missing from the archive"))?;
    let index: ImageIndex =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("index.json: {e}")))?;
    let mut w = Walker {
        files,
        store,
        found: Vec::new(),
    };
    for desc in index.manifests() {
        let names = names_of(desc.annotations().as_ref())?;
        w.walk(desc, names, true, "index.json", 0)?;
    }
    Ok(w.found)
}

/// The name an `index.json` entry gives its image (none when not annotated).
fn names_of(annotations: Option<&HashMap<String, String>>) -> Result<Vec<String>> {
    let Some(a) = annotations else {
        return Ok(Vec::new());
    };
    let pick = |k: &str| a.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let Some(raw) = pick(ANNOTATION_CONTAINERD_NAME).or_else(|| pick(ANNOTATION_REF_NAME)) else {
        return Ok(Vec::new());
    };
    let name = crate::reference::normalize_name(raw).map_err(|e| {
        invalid(format!(
            "index.json: invalid image name {raw:?}: {}",
            e.message
        ))
    })?;
    Ok(vec![name.to_string()])
}

fn digest_of(desc: &Descriptor, referrer: &str) -> Result<Digest> {
    let s = desc.digest().to_string();
    Digest::parse(&s).map_err(|e| invalid(format!("{referrer}: descriptor digest {s:?}: {e}")))
}

fn platform_of(desc: &Descriptor) -> Option<Platform> {
    desc.platform().as_ref().map(|p| Platform {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone().unwrap_or_default(),
    })
}

fn is_attestation(desc: &Descriptor) -> bool {
    let annotated = desc
        .annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest");
    annotated || platform_of(desc).is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

enum Kind {
    Index,
    Manifest,
    Other,
}

fn classify(media_type: &str, bytes: &[u8]) -> Kind {
    match media_type {
        MT_OCI_INDEX | MT_DOCKER_LIST => Kind::Index,
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => Kind::Manifest,
        _ => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) if v.get("manifests").is_some() => Kind::Index,
            Ok(v) if v.get("config").is_some() && v.get("layers").is_some() => Kind::Manifest,
            _ => Kind::Other,
        },
    }
}

struct Walker<'a> {
    files: &'a Collected,
    store: &'a dyn Store,
    found: Vec<Found>,
}

impl<'a> Walker<'a> {
    fn blob(&self, digest: &Digest, what: &str, referrer: &str) -> Result<&'a StagedBlob> {
        self.files.blob_by_digest(digest).ok_or_else(|| {
            invalid(format!(
                "{referrer}: {what} {digest} is missing from the archive"
            ))
        })
    }

    /// Loads what `desc` points to; gives the loaded image's platform, if any. Top-level
    /// descriptors must be present; instances of an index may be absent.
    fn walk(
        &mut self,
        desc: &Descriptor,
        names: Vec<String>,
        top: bool,
        referrer: &str,
        depth: usize,
    ) -> Result<Option<Platform>> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!("{referrer}: indexes nested too deeply")));
        }
        let digest = digest_of(desc, referrer)?;
        let media_type = desc.media_type().to_string();
        if !top && self.files.blob_by_digest(&digest).is_none() {
            return Ok(None);
        }
        let blob = self.blob(&digest, "manifest", referrer)?;
        verify::check_size(blob, desc.size(), &media_type)?;
        let what = format!("manifest {digest}");
        let bytes = self.files.json(blob, self.store, &what)?;
        match classify(&media_type, &bytes) {
            Kind::Index => {
                self.index(blob, &media_type, &bytes, names, top, depth)?;
                Ok(None)
            }
            Kind::Manifest => self.manifest(blob, &media_type, &bytes, names, top),
            Kind::Other => Ok(None),
        }
    }

    fn manifest(
        &mut self,
        blob: &StagedBlob,
        media_type: &str,
        bytes: &[u8],
        names: Vec<String>,
        top: bool,
    ) -> Result<Option<Platform>> {
        let digest = blob.digest;
        let referrer = format!("manifest {digest}");
        let m: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("{referrer}: {e}")))?;
        let cfg_desc = m.config();
        let cfg_mt = cfg_desc.media_type().to_string();
        if cfg_mt != MT_OCI_CONFIG && cfg_mt != MT_DOCKER_CONFIG {
            return Ok(None); // an artifact, not an image
        }
        let cfg_digest = digest_of(cfg_desc, &referrer)?;
        let cfg_blob = self.blob(&cfg_digest, "config", &referrer)?;
        verify::check_size(cfg_blob, cfg_desc.size(), "config")?;
        let what = format!("config {cfg_digest}");
        let parsed = verify::parse_config(&self.files.json(cfg_blob, self.store, &what)?, &what)?;
        if parsed.diff_ids.len() != m.layers().len() {
            return Err(invalid(format!(
                "{referrer}: {} layers but its config has {} diff IDs",
                m.layers().len(),
                parsed.diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(m.layers().len());
        for (ld, diff_id) in m.layers().iter().zip(&parsed.diff_ids) {
            let ld_digest = digest_of(ld, &referrer)?;
            let lb = self.blob(&ld_digest, "layer", &referrer)?;
            let lmt = ld.media_type().to_string();
            verify::check_size(lb, ld.size(), &lmt)?;
            layers.push(verify::check_layer(
                lb,
                *diff_id,
                Some(&lmt),
                &ld_digest.to_string(),
            )?);
        }
        let manifest_mt = m
            .media_type()
            .as_ref()
            .map_or(media_type.to_owned(), |t| t.to_string());
        let platform = (*parsed.config.platform).clone();
        let image = Image {
            id: cfg_digest,
            names: Vec::new(),
            digests: vec![digest],
            manifest: BlobRef {
                digest,
                size: blob.size,
                media_type: manifest_mt.into(),
            },
            config_blob: Some(BlobRef {
                digest: cfg_digest,
                size: cfg_blob.size,
                media_type: cfg_mt.into(),
            }),
            layers,
            config: Arc::new(parsed.config),
            instances: None,
            read_only: false,
            added: 0,
            last_used: None,
            stored_size: None,
        };
        push_found(
            &mut self.found,
            Found {
                image,
                names,
                top_level: top,
            },
        );
        Ok(Some(platform))
    }

    fn index(
        &mut self,
        blob: &StagedBlob,
        media_type: &str,
        bytes: &[u8],
        names: Vec<String>,
        top: bool,
        depth: usize,
    ) -> Result<()> {
        let digest = blob.digest;
        let referrer = format!("index {digest}");
        let ix: ImageIndex =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("{referrer}: {e}")))?;
        let manifest_mt = ix.media_type().as_ref().map_or_else(
            || {
                if media_type.is_empty() {
                    MT_OCI_INDEX.to_owned()
                } else {
                    media_type.to_owned()
                }
            },
            |t| t.to_string(),
        );
        let record = |instances| Image {
            id: digest,
            names: Vec::new(),
            digests: vec![digest],
            manifest: BlobRef {
                digest,
                size: blob.size,
                media_type: manifest_mt.as_str().into(),
            },
            config_blob: None,
            layers: Vec::new(),
            config: Arc::default(),
            instances: Some(instances),
            read_only: false,
            added: 0,
            last_used: None,
            stored_size: None,
        };
        if self.found.iter().any(|f| f.image.id == digest) {
            let found = Found {
                image: record(Vec::new()),
                names,
                top_level: top,
            };
            push_found(&mut self.found, found);
            return Ok(());
        }
        let at = self.found.len();
        let mut instances = Vec::new();
        for child in ix.manifests() {
            if is_attestation(child) {
                continue;
            }
            let child_digest = digest_of(child, &referrer)?;
            let loaded = self.walk(child, Vec::new(), false, &referrer, depth + 1)?;
            let platform = platform_of(child).or(loaded).unwrap_or_default();
            instances.push(ManifestInstance {
                digest: child_digest,
                platform,
            });
        }
        self.found.insert(
            at,
            Found {
                image: record(instances),
                names,
                top_level: top,
            },
        );
        Ok(())
    }
}
