//! A generator of real, valid image archives in memory, for tests, benchmarks and e2e
//! runs: describe images with [`SynthImage`], then write them as a `docker-archive`
//! ([`docker_archive`]), an `oci-archive` ([`oci_archive`]) or an OCI index of several
//! platforms ([`oci_index_archive`]). [`corrupt`] breaks archives on purpose.
//!
//! Output is deterministic: the same images and options always give the same bytes, so
//! [`SynthImage::id`] (the config digest) is known before loading. A child made with
//! [`SynthImage::child`] has its parent's layers and history plus one of each, so
//! libimage's parent rule holds between them.
//!
//! The writers only fail on bugs (they write into memory) and panic then.

pub mod corrupt;
mod tarw;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use imaged_core::archive::{
    IndexEntry, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_LAYER_GZIP, MT_OCI_MANIFEST,
    index_json, manifest_json,
};
use imaged_core::digest::Digest;
use imaged_core::model::{BlobRef, HistoryEntry, Platform};
use imaged_core::time::{UnixNanos, format_rfc3339};
pub use tarw::{TarOut, gzip, is_gzip};

/// 2024-01-01T00:00:00Z, the default creation time.
pub const DEFAULT_CREATED: UnixNanos = 1_704_067_200_000_000_000;

/// One image to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthImage {
    /// Layers, base first: each is the content of one file, made into a real tar layer
    /// holding `file-<index>` (so equal content at equal positions gives equal layers).
    pub layers: Vec<Vec<u8>>,
    /// Config history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Config creation time.
    pub created: Option<UnixNanos>,
    /// Config user.
    pub user: String,
    /// Names as the archive writes them (`RepoTags` / `ref.name`), e.g. `busybox:1`.
    pub names: Vec<String>,
    /// Config platform (also the index platform in [`oci_index_archive`]).
    pub platform: Platform,
}

impl Default for SynthImage {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            history: Vec::new(),
            labels: BTreeMap::new(),
            created: Some(DEFAULT_CREATED),
            user: String::new(),
            names: Vec::new(),
            platform: Platform::host(),
        }
    }
}

impl SynthImage {
    /// A base image with one layer holding `seed` and one history entry.
    pub fn new(seed: &str) -> Self {
        let mut img = Self::default();
        img.push_layer(
            seed.as_bytes(),
            &format!("/bin/sh -c #(nop) ADD file:{seed} in /"),
        );
        img
    }

    fn push_layer(&mut self, content: &[u8], created_by: &str) {
        self.layers.push(content.to_vec());
        self.history.push(HistoryEntry {
            created: self.created,
            created_by: created_by.to_owned(),
            ..HistoryEntry::default()
        });
    }

    /// Adds a name.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.names.push(name.to_owned());
        self
    }

    /// Adds a config label.
    #[must_use]
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the platform.
    #[must_use]
    pub fn on(mut self, os: &str, architecture: &str, variant: &str) -> Self {
        self.platform = Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
        };
        self
    }

    /// A child: this image's layers and history plus one layer holding `content` and one
    /// history entry; no names; created one second later.
    pub fn child(&self, content: &[u8], created_by: &str) -> Self {
        let mut c = self.clone();
        c.names.clear();
        c.created = self.created.map(|t| t + 1_000_000_000);
        c.push_layer(content, created_by);
        c
    }

    /// A layer-less child: same layers, one more (empty-layer) history entry.
    pub fn empty_child(&self, created_by: &str) -> Self {
        let mut c = self.clone();
        c.names.clear();
        c.created = self.created.map(|t| t + 1_000_000_000);
        c.history.push(HistoryEntry {
            created: c.created,
            created_by: created_by.to_owned(),
            empty_layer: true,
            ..HistoryEntry::default()
        });
        c
    }

    /// The uncompressed tar of layer `index`.
    pub fn layer_tar(&self, index: usize) -> Vec<u8> {
        let mut t = TarOut::new();
        t.file(
            &format!("file-{index}"),
            self.layers.get(index).map_or(&[][..], Vec::as_slice),
        );
        t.finish()
    }

    /// The layers' diff IDs, base first.
    pub fn diff_ids(&self) -> Vec<Digest> {
        (0..self.layers.len())
            .map(|i| Digest::of(&self.layer_tar(i)))
            .collect()
    }

    /// The config JSON.
    pub fn config_json(&self) -> Vec<u8> {
        self.config_with(false)
    }

    fn config_with(&self, wrong_diff_id: bool) -> Vec<u8> {
        let mut diff_ids: Vec<String> = self.diff_ids().iter().map(Digest::to_string).collect();
        if wrong_diff_id && let Some(first) = diff_ids.first_mut() {
            *first = Digest::of(b"not the layer").to_string();
        }
        let history: Vec<Value> = self.history.iter().map(history_json).collect();
        let mut v = json!({
            "architecture": self.platform.architecture,
            "os": self.platform.os,
            "config": {
                "User": self.user,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Labels": self.labels,
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if !self.platform.variant.is_empty() {
            v["variant"] = json!(self.platform.variant);
        }
        if let Some(t) = self.created {
            v["created"] = json!(format_rfc3339(t));
        }
        to_json(&v)
    }

    /// The image ID a load gives: the config digest.
    pub fn id(&self) -> Digest {
        Digest::of(&self.config_json())
    }

    /// The digest of the OCI manifest [`oci_archive`] writes (`gzip_layers` as in
    /// [`ArchiveOptions`]).
    pub fn manifest_digest(&self, gzip_layers: bool) -> Digest {
        Digest::of(
            &self
                .blobs(&ArchiveOptions {
                    gzip_layers,
                    ..ArchiveOptions::default()
                })
                .2,
        )
    }

    /// Layer blobs (as a registry serves them), config bytes and OCI manifest bytes of
    /// the image [`oci_archive`] writes (`gzip_layers` as in [`ArchiveOptions`]).
    pub fn oci_blobs(&self, gzip_layers: bool) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
        self.blobs(&ArchiveOptions {
            gzip_layers,
            ..ArchiveOptions::default()
        })
    }

    /// Layer blobs (as stored), config bytes and OCI manifest bytes.
    fn blobs(&self, opts: &ArchiveOptions) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
        let layers: Vec<Vec<u8>> = (0..self.layers.len())
            .map(|i| {
                let t = self.layer_tar(i);
                if opts.gzip_layers { gzip(&t) } else { t }
            })
            .collect();
        let config = self.config_with(opts.wrong_diff_id);
        let cref = blob_ref(&config, MT_OCI_CONFIG);
        let lt = if opts.gzip_layers {
            MT_OCI_LAYER_GZIP
        } else {
            MT_OCI_LAYER
        };
        let lrefs: Vec<BlobRef> = layers.iter().map(|l| blob_ref(l, lt)).collect();
        let manifest =
            manifest_json(&cref, &lrefs).unwrap_or_else(|e| panic!("writing a manifest: {e}"));
        (layers, config, manifest)
    }
}

fn history_json(h: &HistoryEntry) -> Value {
    let mut v = json!({ "created_by": h.created_by });
    if let Some(t) = h.created {
        v["created"] = json!(format_rfc3339(t));
    }
    if !h.author.is_empty() {
        v["author"] = json!(h.author);
    }
    if !h.comment.is_empty() {
        v["comment"] = json!(h.comment);
    }
    if h.empty_layer {
        v["empty_layer"] = json!(true);
    }
    v
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|e| panic!("writing JSON: {e}"))
}

fn blob_ref(bytes: &[u8], media_type: &str) -> BlobRef {
    BlobRef {
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        media_type: media_type.into(),
    }
}

/// Where a docker-archive puts its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DockerLayout {
    /// Docker ≤ 24: `<id>/layer.tar`, `<config hex>.json`.
    #[default]
    Legacy,
    /// podman: layers stored as `<hex>.tar`, `manifest.json` naming them through
    /// `<id>/layer.tar` symlinks (so the reader must follow links).
    Symlinks,
    /// Docker ≥ 25: `blobs/sha256/<hex>` for layers and config (no `index.json`).
    Blobs,
}

/// Options of the writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArchiveOptions {
    /// Gzip the whole archive.
    pub gzip: bool,
    /// Store layers gzip-compressed (OCI `tar+gzip`; docker-archive layer files too).
    pub gzip_layers: bool,
    /// docker-archive file layout.
    pub docker_layout: DockerLayout,
    /// Fault: the config's first diff ID does not match the first layer.
    pub wrong_diff_id: bool,
}

fn finish(t: TarOut, opts: &ArchiveOptions) -> Vec<u8> {
    let bytes = t.finish();
    if opts.gzip { gzip(&bytes) } else { bytes }
}

/// A `docker-archive` of `images` with the default (legacy) layout.
pub fn docker_archive(images: &[SynthImage], gzip: bool) -> Vec<u8> {
    docker_archive_with(
        images,
        &ArchiveOptions {
            gzip,
            ..ArchiveOptions::default()
        },
    )
}

/// A `docker-archive` of `images`.
pub fn docker_archive_with(images: &[SynthImage], opts: &ArchiveOptions) -> Vec<u8> {
    let mut t = TarOut::new();
    let mut written = BTreeSet::new();
    let mut entries = Vec::new();
    for img in images {
        let (layers, config, _) = img.blobs(opts);
        let mut paths = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let hex = Digest::of(l).hex();
            let legacy = Digest::of(format!("{hex}/{i}").as_bytes()).hex();
            let (stored, named) = match opts.docker_layout {
                DockerLayout::Legacy => (format!("{hex}/layer.tar"), format!("{hex}/layer.tar")),
                DockerLayout::Symlinks => (format!("{hex}.tar"), format!("{legacy}/layer.tar")),
                DockerLayout::Blobs => {
                    (format!("blobs/sha256/{hex}"), format!("blobs/sha256/{hex}"))
                }
            };
            if written.insert(stored.clone()) {
                if opts.docker_layout == DockerLayout::Legacy {
                    t.dir(&format!("{hex}/"));
                    t.file(&format!("{hex}/VERSION"), b"1.0");
                    t.file(
                        &format!("{hex}/json"),
                        format!("{{\"id\":\"{hex}\"}}").as_bytes(),
                    );
                }
                t.file(&stored, l);
            }
            if stored != named && written.insert(named.clone()) {
                t.dir(&format!("{legacy}/"));
                t.symlink(&named, &format!("../{hex}.tar"));
            }
            paths.push(named);
        }
        let chex = Digest::of(&config).hex();
        let cpath = match opts.docker_layout {
            DockerLayout::Blobs => format!("blobs/sha256/{chex}"),
            _ => format!("{chex}.json"),
        };
        if written.insert(cpath.clone()) {
            t.file(&cpath, &config);
        }
        let tags = if img.names.is_empty() {
            Value::Null
        } else {
            json!(img.names)
        };
        entries.push(json!({"Config": cpath, "RepoTags": tags, "Layers": paths}));
    }
    t.file("manifest.json", &to_json(&Value::Array(entries)));
    finish(t, opts)
}

/// An `oci-archive` of `images`, layers uncompressed.
pub fn oci_archive(images: &[SynthImage], gzip: bool) -> Vec<u8> {
    oci_archive_with(
        images,
        &ArchiveOptions {
            gzip,
            ..ArchiveOptions::default()
        },
    )
}

/// Writes the blobs of `img` once each; gives its manifest's blob reference.
fn oci_blobs(
    t: &mut TarOut,
    written: &mut BTreeSet<Digest>,
    img: &SynthImage,
    opts: &ArchiveOptions,
) -> BlobRef {
    let (layers, config, manifest) = img.blobs(opts);
    for b in layers.iter().chain([&config, &manifest]) {
        let d = Digest::of(b);
        if written.insert(d) {
            t.file(&format!("blobs/sha256/{}", d.hex()), b);
        }
    }
    blob_ref(&manifest, MT_OCI_MANIFEST)
}

fn oci_start() -> TarOut {
    let mut t = TarOut::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    t.dir("blobs/");
    t.dir("blobs/sha256/");
    t
}

/// An `oci-archive` of `images`: one `index.json` entry per name (annotated with
/// `org.opencontainers.image.ref.name` = the name as given), one without annotation for
/// an unnamed image.
pub fn oci_archive_with(images: &[SynthImage], opts: &ArchiveOptions) -> Vec<u8> {
    let mut t = oci_start();
    let mut written = BTreeSet::new();
    let mut refs = Vec::new();
    for img in images {
        refs.push((
            oci_blobs(&mut t, &mut written, img, opts),
            img.names.clone(),
        ));
    }
    let mut entries = Vec::new();
    for (r, names) in &refs {
        if names.is_empty() {
            entries.push(IndexEntry {
                blob: r,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        for n in names {
            let annotations = BTreeMap::from([("org.opencontainers.image.ref.name", n.as_str())]);
            entries.push(IndexEntry {
                blob: r,
                platform: None,
                annotations,
            });
        }
    }
    let index = index_json(None, &entries).unwrap_or_else(|e| panic!("index: {e}"));
    t.file("index.json", &index);
    finish(t, opts)
}

/// An `oci-archive` holding one OCI image index (a manifest list) whose instances are
/// `instances`, each with its own platform; `name` (if any) annotates the index. Gives
/// the archive and the index digest (the manifest list's ID after a load).
pub fn oci_index_archive(
    name: Option<&str>,
    instances: &[SynthImage],
    opts: &ArchiveOptions,
) -> (Vec<u8>, Digest) {
    let mut t = oci_start();
    let mut written = BTreeSet::new();
    let refs: Vec<BlobRef> = instances
        .iter()
        .map(|img| oci_blobs(&mut t, &mut written, img, opts))
        .collect();
    let entries: Vec<IndexEntry<'_>> = refs
        .iter()
        .zip(instances)
        .map(|(r, img)| IndexEntry {
            blob: r,
            platform: Some(&img.platform),
            annotations: BTreeMap::new(),
        })
        .collect();
    let index = index_json(Some(MT_OCI_INDEX), &entries).unwrap_or_else(|e| panic!("index: {e}"));
    let iref = blob_ref(&index, MT_OCI_INDEX);
    t.file(&format!("blobs/sha256/{}", iref.digest.hex()), &index);
    let annotations = name
        .map(|n| BTreeMap::from([("org.opencontainers.image.ref.name", n)]))
        .unwrap_or_default();
    let top = index_json(
        None,
        &[IndexEntry {
            blob: &iref,
            platform: None,
            annotations,
        }],
    )
    .unwrap_or_else(|e| panic!("index: {e}"));
    t.file("index.json", &top);
    (finish(t, opts), iref.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_deterministic() {
        let imgs = [
            SynthImage::new("a").named("a:1"),
            SynthImage::new("a").child(b"b", "RUN b"),
        ];
        for gz in [false, true] {
            assert_eq!(docker_archive(&imgs, gz), docker_archive(&imgs, gz));
            assert_eq!(oci_archive(&imgs, gz), oci_archive(&imgs, gz));
        }
        assert_eq!(imgs[0].id(), SynthImage::new("a").id());
        assert_ne!(imgs[0].id(), imgs[1].id());
    }

    #[test]
    fn child_extends_parent() {
        let p = SynthImage::new("base").label("k", "v");
        let c = p.child(b"more", "RUN more");
        assert_eq!(c.layers.len(), 2);
        assert_eq!(c.history.len(), 2);
        assert_eq!(c.diff_ids()[0], p.diff_ids()[0]);
        assert_eq!(c.history[0], p.history[0]);
        let e = p.empty_child("LABEL x=y");
        assert_eq!(e.diff_ids(), p.diff_ids());
        assert_eq!(e.history.len(), 2);
        assert!(e.history[1].empty_layer);
    }

    #[test]
    fn layers_are_real_tars() {
        let img = SynthImage::new("content");
        let tar_bytes = img.layer_tar(0);
        let mut a = tar::Archive::new(tar_bytes.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["file-0"]);
    }
}
