//! Image archives written independently of the daemon's archive code.
//!
//! The end-to-end tests feed these to `imagectl load`, grpcurl and the Python client.
//! Writing them here (and not with `imaged_core`'s generator) means the daemon's
//! verification is checked against a second, independent writer of the same formats:
//!
//! * `docker-archive` (`docker save`): `manifest.json` = `[{Config, RepoTags, Layers}]`,
//!   the config blob as `<hex>.json`, each layer as `<diff-id-hex>/layer.tar`
//!   (uncompressed, so its digest is its diff ID).
//! * `oci-archive`: `oci-layout`, `index.json` (one descriptor per name, annotated with
//!   `org.opencontainers.image.ref.name`), blobs under `blobs/sha256/<hex>`; layers gzip
//!   compressed, so the blob digest differs from the diff ID.
//!
//! Everything is deterministic: the same [`ImageSpec`] always gives the same image ID.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Gzip-compresses `bytes` (a whole archive or a layer).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)
        .unwrap_or_else(|e| panic!("gzip into memory: {e}"));
    enc.finish()
        .unwrap_or_else(|e| panic!("gzip into memory: {e}"))
}

/// The OCI architecture name of the machine running the tests (the daemon's platform).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// One layer: a tar holding a single regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// Path of the file inside the layer.
    pub path: String,
    /// Content of the file.
    pub content: Vec<u8>,
}

impl LayerSpec {
    /// The uncompressed layer tar (deterministic: mtime 0, root-owned, mode 0644).
    pub fn tar(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        append_file(&mut b, &self.path, &self.content);
        b.into_inner()
            .unwrap_or_else(|e| panic!("finish layer tar: {e}"))
    }

    /// The diff ID: digest of the uncompressed tar.
    pub fn diff_id(&self) -> String {
        sha256(&self.tar())
    }
}

/// Description of one image to put into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Names as written into the archive (`RepoTags` / `ref.name`).
    pub names: Vec<String>,
    /// Layers, base first; history has one entry per layer.
    pub layers: Vec<LayerSpec>,
    /// RFC 3339 creation time of the config.
    pub created: String,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
}

impl ImageSpec {
    /// An unnamed image with one layer whose content is derived from `seed` (different
    /// seeds give different image IDs).
    pub fn new(seed: &str) -> Self {
        Self {
            names: Vec::new(),
            layers: vec![LayerSpec {
                path: format!("{seed}.txt"),
                content: format!("layer of {seed}\n").into_bytes(),
            }],
            created: "2024-01-01T00:00:00Z".to_owned(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds a name (`RepoTags` entry / `ref.name` annotation).
    pub fn named(mut self, name: &str) -> Self {
        self.names.push(name.to_owned());
        self
    }

    /// Sets a config label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the config creation time (RFC 3339).
    pub fn created(mut self, rfc3339: &str) -> Self {
        self.created = rfc3339.to_owned();
        self
    }

    /// An unnamed child of this image in libimage's sense: the same layers plus one,
    /// and this image's history plus one entry.
    pub fn child(&self, seed: &str) -> Self {
        let mut c = self.clone();
        c.names.clear();
        c.layers.push(LayerSpec {
            path: format!("{seed}.txt"),
            content: format!("layer of {seed}\n").into_bytes(),
        });
        c
    }

    /// The config blob exactly as written into archives.
    pub fn config_json(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(LayerSpec::diff_id).collect();
        let history: Vec<Value> = self
            .layers
            .iter()
            .map(|l| json!({"created": self.created, "created_by": format!("ADD {} /", l.path)}))
            .collect();
        let config = json!({
            "architecture": host_architecture(),
            "os": "linux",
            "created": self.created,
            "config": {
                "Cmd": ["/bin/sh"],
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Labels": self.labels,
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        serde_json::to_vec(&config).unwrap_or_else(|e| panic!("encode config: {e}"))
    }

    /// The image ID the daemon must report: `sha256:` + digest of the config blob.
    pub fn id(&self) -> String {
        sha256(&self.config_json())
    }

    /// The ID without `sha256:` (podman prints IDs that way).
    pub fn hex_id(&self) -> String {
        self.id().trim_start_matches("sha256:").to_owned()
    }
}

/// How to spoil an archive while keeping it a well-formed tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tamper {
    /// A correct archive.
    #[default]
    None,
    /// The first layer's bytes differ from what its digests (diff ID in the config; blob
    /// digest in an OCI manifest) say.
    LayerContent,
}

/// A `docker-archive` of `images` (plain tar).
pub fn docker_archive(images: &[ImageSpec]) -> Vec<u8> {
    docker_archive_with(images, Tamper::None)
}

/// A `docker-archive` of `images`, possibly tampered with.
pub fn docker_archive_with(images: &[ImageSpec], tamper: Tamper) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let config = img.config_json();
        let config_path = format!("{}.json", hex_of(&sha256(&config)));
        if written.insert(config_path.clone()) {
            append_file(&mut b, &config_path, &config);
        }
        let mut layer_paths = Vec::new();
        for (j, layer) in img.layers.iter().enumerate() {
            let path = format!("{}/layer.tar", hex_of(&layer.diff_id()));
            if written.insert(path.clone()) {
                let bytes = if tamper == Tamper::LayerContent && i == 0 && j == 0 {
                    tampered(layer).tar()
                } else {
                    layer.tar()
                };
                append_file(&mut b, &path, &bytes);
            }
            layer_paths.push(path);
        }
        manifest.push(json!({"Config": config_path, "RepoTags": img.names, "Layers": layer_paths}));
    }
    let manifest = serde_json::to_vec(&manifest).unwrap_or_else(|e| panic!("manifest: {e}"));
    append_file(&mut b, "manifest.json", &manifest);
    b.into_inner()
        .unwrap_or_else(|e| panic!("finish archive: {e}"))
}

/// An `oci-archive` of `images` (plain tar; layers gzip-compressed inside).
pub fn oci_archive(images: &[ImageSpec]) -> Vec<u8> {
    oci_archive_with(images, Tamper::None)
}

/// An `oci-archive` of `images`, possibly tampered with.
pub fn oci_archive_with(images: &[ImageSpec], tamper: Tamper) -> Vec<u8> {
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut index = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let config = img.config_json();
        let config_digest = sha256(&config);
        let mut layers = Vec::new();
        for (j, layer) in img.layers.iter().enumerate() {
            let blob = gzip(&layer.tar());
            let digest = sha256(&blob);
            layers.push(json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": blob.len(),
            }));
            let stored = if tamper == Tamper::LayerContent && i == 0 && j == 0 {
                gzip(&tampered(layer).tar())
            } else {
                blob
            };
            blobs.insert(digest, stored);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).unwrap_or_else(|e| panic!("manifest: {e}"));
        let manifest_digest = sha256(&manifest);
        let descriptor = |annotations: Value| json!({"mediaType": MANIFEST, "digest": manifest_digest, "size": manifest.len(), "annotations": annotations});
        if img.names.is_empty() {
            index.push(descriptor(json!({})));
        }
        for name in &img.names {
            index.push(descriptor(
                json!({"org.opencontainers.image.ref.name": name}),
            ));
        }
        blobs.insert(config_digest, config);
        blobs.insert(manifest_digest, manifest);
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index,
    });
    let mut b = tar::Builder::new(Vec::new());
    append_file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index = serde_json::to_vec(&index).unwrap_or_else(|e| panic!("index: {e}"));
    append_file(&mut b, "index.json", &index);
    for (digest, bytes) in &blobs {
        append_file(&mut b, &format!("blobs/sha256/{}", hex_of(digest)), bytes);
    }
    b.into_inner()
        .unwrap_or_else(|e| panic!("finish archive: {e}"))
}

/// The same layer with one byte of its file changed.
fn tampered(layer: &LayerSpec) -> LayerSpec {
    let mut l = layer.clone();
    if let Some(b) = l.content.first_mut() {
        *b ^= 0x20;
    } else {
        l.content.push(b'!');
    }
    l
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

fn append_file(b: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, content)
        .unwrap_or_else(|e| panic!("append {path} to tar: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(tar_bytes);
        let mut out = BTreeMap::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            out.insert(path, v);
        }
        out
    }

    #[test]
    fn docker_archive_is_self_consistent() {
        let base = ImageSpec::new("base").named("localhost/a:1");
        let child = base.child("top").named("localhost/b:1");
        let files = entries(&docker_archive(&[base.clone(), child.clone()]));
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        assert_eq!(manifest.as_array().unwrap().len(), 2);
        let entry = &manifest[1];
        let config = &files[entry["Config"].as_str().unwrap()];
        assert_eq!(sha256(config), child.id());
        let config: Value = serde_json::from_slice(config).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(diff_ids.len(), 2);
        for (path, diff_id) in entry["Layers"].as_array().unwrap().iter().zip(diff_ids) {
            assert_eq!(&sha256(&files[path.as_str().unwrap()]), diff_id);
        }
        // The shared base layer is stored once.
        assert_eq!(files.len(), 1 + 2 + 2);
    }

    #[test]
    fn tampered_docker_layer_breaks_its_diff_id() {
        let img = ImageSpec::new("x").named("localhost/x:1");
        let files = entries(&docker_archive_with(
            std::slice::from_ref(&img),
            Tamper::LayerContent,
        ));
        let path = format!("{}/layer.tar", hex_of(&img.layers[0].diff_id()));
        assert_ne!(sha256(&files[&path]), img.layers[0].diff_id());
    }

    #[test]
    fn oci_archive_blobs_match_their_digests() {
        let img = ImageSpec::new("o")
            .named("localhost/o:1")
            .named("localhost/o:2");
        let files = entries(&oci_archive(std::slice::from_ref(&img)));
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
        for (path, bytes) in &files {
            if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256(bytes), format!("sha256:{hex}"));
            }
        }
        assert!(files.contains_key(&format!("blobs/sha256/{}", img.hex_id())));
        let tampered = entries(&oci_archive_with(&[img], Tamper::LayerContent));
        let bad = tampered
            .iter()
            .filter(|(p, b)| {
                p.strip_prefix("blobs/sha256/")
                    .is_some_and(|h| sha256(b) != format!("sha256:{h}"))
            })
            .count();
        assert_eq!(bad, 1);
    }

    #[test]
    fn ids_are_deterministic_and_seed_dependent() {
        assert_eq!(ImageSpec::new("a").id(), ImageSpec::new("a").id());
        assert_ne!(ImageSpec::new("a").id(), ImageSpec::new("b").id());
        assert_ne!(
            ImageSpec::new("a").id(),
            ImageSpec::new("a").label("k", "v").id()
        );
        // Names are not part of the image ID.
        assert_eq!(
            ImageSpec::new("a").id(),
            ImageSpec::new("a").named("x").id()
        );
    }
}
