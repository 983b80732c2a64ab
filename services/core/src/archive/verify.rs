//! Checks shared by both formats: image configs, layers against their diff IDs, blobs
//! against their descriptors; and the deterministic OCI manifest JSON written for
//! docker-archive images (and by the test archive synthesizer).

use std::collections::BTreeMap;
use std::sync::Arc;

use oci_spec::image::ImageConfiguration;
use serde::Serialize;

use super::invalid;
use super::stream::StagedBlob;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::{BlobRef, HistoryEntry, ImageConfig, Layer, Platform, RunConfig};
use crate::time::parse_rfc3339;

/// OCI image manifest.
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Uncompressed OCI layer.
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip OCI layer.
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Zstd OCI layer.
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A parsed image config: the model's view and the diff IDs.
#[derive(Debug, Clone)]
pub(crate) struct ParsedConfig {
    /// What the model keeps.
    pub config: ImageConfig,
    /// `rootfs.diff_ids`, base first.
    pub diff_ids: Vec<Digest>,
}

/// Parses an image config blob (`what` names it in errors).
pub(crate) fn parse_config(bytes: &[u8], what: &str) -> Result<ParsedConfig> {
    let c: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("{what}: invalid image config: {e}")))?;
    let diff_ids = c
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d).map_err(|e| invalid(format!("{what}: diff ID {d:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let mut config = ImageConfig {
        created: c.created().as_deref().and_then(parse_rfc3339),
        platform: crate::intern::platform(
            &c.os().to_string(),
            &c.architecture().to_string(),
            c.variant().as_deref().unwrap_or_default(),
        ),
        history: c
            .history()
            .iter()
            .flatten()
            .map(|h| {
                Arc::new(HistoryEntry {
                    created: h.created().as_deref().and_then(parse_rfc3339),
                    created_by: h.created_by().clone().unwrap_or_default(),
                    author: h.author().clone().unwrap_or_default(),
                    comment: h.comment().clone().unwrap_or_default(),
                    empty_layer: h.empty_layer().unwrap_or(false),
                })
            })
            .collect(),
        ..ImageConfig::default()
    };
    if let Some(cc) = c.config() {
        config.labels = Arc::new(
            cc.labels()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        config.run = Arc::new(RunConfig {
            user: cc.user().clone().unwrap_or_default(),
            env: cc.env().clone().unwrap_or_default(),
            entrypoint: cc.entrypoint().clone().unwrap_or_default(),
            cmd: cc.cmd().clone().unwrap_or_default(),
            working_dir: cc.working_dir().clone().unwrap_or_default(),
            exposed_ports: sorted(cc.exposed_ports().clone().unwrap_or_default()),
            volumes: sorted(cc.volumes().clone().unwrap_or_default()),
            stop_signal: cc.stop_signal().clone().unwrap_or_default(),
        });
    }
    Ok(ParsedConfig { config, diff_ids })
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Checks a blob's size against its descriptor.
pub(crate) fn check_size(blob: &StagedBlob, want: u64, what: &str) -> Result<()> {
    if blob.size != want {
        return Err(invalid(format!(
            "blob {} ({what}) is {} bytes but its descriptor says {want}",
            blob.digest, blob.size
        )));
    }
    Ok(())
}

/// Checks a layer against its config diff ID and gives the model's layer. `media_type`:
/// the descriptor's (OCI), or `None` to derive it from the content (docker-archive).
pub(crate) fn check_layer(
    blob: &StagedBlob,
    diff_id: Digest,
    media_type: Option<&str>,
    what: &str,
) -> Result<Layer> {
    let content = match &blob.uncompressed {
        None => blob.digest,
        Some(Ok(d)) => *d,
        Some(Err(e)) => {
            return Err(invalid(format!(
                "layer {what} ({}) is not a valid {} stream: {e}",
                blob.digest,
                if blob.zstd { "zstd" } else { "gzip" }
            )));
        }
    };
    if content != diff_id {
        return Err(invalid(format!(
            "layer {what} diff ID mismatch: the config says {diff_id}, the content is {content}"
        )));
    }
    let media_type = match media_type {
        Some(mt) => mt.to_owned(),
        None if blob.gzip => MT_OCI_LAYER_GZIP.to_owned(),
        None if blob.zstd => MT_OCI_LAYER_ZSTD.to_owned(),
        None => MT_OCI_LAYER.to_owned(),
    };
    Ok(Layer {
        blob: BlobRef {
            digest: blob.digest,
            size: blob.size,
            media_type: media_type.into(),
        },
        diff_id,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DescriptorOut<'a> {
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformOut<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct PlatformOut<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    variant: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: DescriptorOut<'a>,
    layers: Vec<DescriptorOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexOut<'a> {
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<&'a str>,
    manifests: Vec<DescriptorOut<'a>>,
}

fn descriptor(b: &BlobRef) -> DescriptorOut<'_> {
    DescriptorOut {
        media_type: &b.media_type,
        digest: b.digest.to_string(),
        size: b.size,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// The OCI manifest of a config and layers, as deterministic compact JSON.
pub fn manifest_json(config: &BlobRef, layers: &[BlobRef]) -> Result<Vec<u8>> {
    let m = ManifestOut {
        schema_version: 2,
        media_type: MT_OCI_MANIFEST,
        config: descriptor(config),
        layers: layers.iter().map(descriptor).collect(),
    };
    serde_json::to_vec(&m).map_err(|e| Error::internal(format!("writing a manifest: {e}")))
}

/// One entry of an index written by [`index_json`].
#[derive(Debug, Clone)]
pub struct IndexEntry<'a> {
    /// The manifest (or nested index).
    pub blob: &'a BlobRef,
    /// Its platform, if any.
    pub platform: Option<&'a Platform>,
    /// Its annotations.
    pub annotations: BTreeMap<&'a str, &'a str>,
}

/// An OCI index as deterministic compact JSON (`media_type` omitted for `index.json`).
pub fn index_json(media_type: Option<&str>, entries: &[IndexEntry<'_>]) -> Result<Vec<u8>> {
    let ix = IndexOut {
        schema_version: 2,
        media_type,
        manifests: entries
            .iter()
            .map(|e| DescriptorOut {
                platform: e.platform.map(|p| PlatformOut {
                    architecture: &p.architecture,
                    os: &p.os,
                    variant: &p.variant,
                }),
                annotations: e.annotations.clone(),
                ..descriptor(e.blob)
            })
            .collect(),
    };
    serde_json::to_vec(&ix).map_err(|e| Error::internal(format!("writing an index: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_docker_style_config() {
        let json = br#"{
            "architecture": "arm64", "os": "linux", "variant": "v8",
            "created": "2024-05-06T07:08:09.123456789Z",
            "config": {"User": "1000:1000", "Env": ["A=1"], "Cmd": ["sh"], "Entrypoint": null,
                       "WorkingDir": "/w", "Labels": {"k": "v"}, "StopSignal": "SIGINT",
                       "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Volumes": {"/data": {}}},
            "container_config": {"Hostname": "x"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]},
            "history": [{"created": "2024-05-06T07:08:09Z", "created_by": "ADD x", "empty_layer": true}]
        }"#;
        let p = parse_config(json, "config").unwrap();
        assert_eq!(p.diff_ids, vec![Digest::of(b"hello")]);
        let c = p.config;
        assert_eq!(
            *c.platform,
            Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: "v8".into()
            }
        );
        assert_eq!(c.created, Some(1_714_979_289_123_456_789));
        assert_eq!(c.run.user, "1000:1000");
        assert_eq!(c.run.env, vec!["A=1"]);
        assert!(c.run.entrypoint.is_empty());
        assert_eq!(c.run.cmd, vec!["sh"]);
        assert_eq!(c.run.working_dir, "/w");
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        assert_eq!(c.run.exposed_ports, vec!["443/tcp", "80/tcp"]);
        assert_eq!(c.run.volumes, vec!["/data"]);
        assert_eq!(c.run.stop_signal, "SIGINT");
        assert_eq!(c.history.len(), 1);
        assert!(c.history[0].empty_layer);
        assert_eq!(c.history[0].created_by, "ADD x");
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(parse_config(b"{}", "c").is_err());
        assert!(parse_config(b"not json", "c").is_err());
        let bad_diff = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["md5:00"]}}"#;
        let e = parse_config(bad_diff, "c").unwrap_err();
        assert!(e.message.contains("diff ID"), "{e}");
    }

    #[test]
    fn manifest_json_is_deterministic_and_valid_oci() {
        let cfg = BlobRef {
            digest: Digest::of(b"c"),
            size: 1,
            media_type: MT_OCI_CONFIG.into(),
        };
        let l = BlobRef {
            digest: Digest::of(b"l"),
            size: 2,
            media_type: MT_OCI_LAYER.into(),
        };
        let a = manifest_json(&cfg, std::slice::from_ref(&l)).unwrap();
        assert_eq!(a, manifest_json(&cfg, &[l]).unwrap());
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&a).unwrap();
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.config().size(), 1);
    }
}
