//! Hand-built images for tests, benchmarks and the conformance suite, staged into any
//! [`Store`], with layers and history chosen so that libimage's parent rule holds where a
//! test wants it ([`ImageSpec::child`]). The blobs are real and deterministic (tar layers,
//! JSON config, OCI manifest: [`ImageSpec::synth`]), so a store that hands them to real
//! tools (containers-storage through skopeo) can hold every image; manifest lists
//! ([`ImageSpec::list`]) are placeholders that name their instances (a backend with its
//! own list tool makes them instead: `SetupHook::list`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::archive::SynthImage;
use imaged_core::archive::{MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_MANIFEST, manifest_json};
use imaged_core::catalog::ChangeSet;
use imaged_core::digest::Digest;
use imaged_core::error::Result;
use imaged_core::model::{
    BlobRef, HistoryEntry, Image, ImageConfig, ImageId, Layer, ManifestInstance, Platform,
    RunConfig,
};
use imaged_core::store::Store;

/// The environment the generator's configs carry ([`crate::archive`]).
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What an image is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSpec {
    /// Layer contents, base first.
    pub layers: Vec<Vec<u8>>,
    /// History steps (`created_by`), oldest first.
    pub history: Vec<String>,
    /// Fully-qualified names.
    pub names: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Read-only store image.
    pub read_only: bool,
    /// Platform (host when empty).
    pub platform: Option<Platform>,
    /// Makes the config unique without changing anything else.
    pub salt: String,
    /// A manifest list of these (instance manifest digest, platform).
    pub instances: Option<Vec<(Digest, Platform)>>,
}

impl ImageSpec {
    /// An image with one layer `content`, one history step, created at `created`.
    pub fn base(content: &str, created: i64) -> Self {
        Self {
            layers: vec![content.as_bytes().to_vec()],
            history: vec![format!("ADD {content}")],
            created,
            ..Self::default()
        }
    }

    /// A child of `self` by libimage's rule: one more layer (`content`) and one more
    /// history step; with `content` empty, a history-only step (same layers).
    #[must_use]
    pub fn child(&self, content: &str, created: i64) -> Self {
        let mut c = Self {
            layers: self.layers.clone(),
            history: self.history.clone(),
            created,
            platform: self.platform.clone(),
            ..Self::default()
        };
        if content.is_empty() {
            c.history.push(format!("ENV step{}", c.history.len()));
        } else {
            c.layers.push(content.as_bytes().to_vec());
            c.history.push(format!("ADD {content}"));
        }
        c
    }

    /// Adds a name.
    #[must_use]
    pub fn name(mut self, n: &str) -> Self {
        self.names.push(n.to_owned());
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.to_owned(), v.to_owned());
        self
    }

    /// Marks it read-only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Sets the salt (a different config, hence a different ID).
    #[must_use]
    pub fn salt(mut self, s: &str) -> Self {
        self.salt = s.to_owned();
        self
    }

    /// Sets the platform.
    #[must_use]
    pub fn platform(mut self, os: &str, arch: &str) -> Self {
        self.platform = Some(Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: String::new(),
        });
        self
    }

    /// A manifest list over `instances`.
    pub fn list(instances: Vec<(Digest, Platform)>, created: i64) -> Self {
        Self {
            instances: Some(instances),
            created,
            ..Self::default()
        }
    }

    /// The blobs (bytes) and the image record, without storing anything.
    pub fn build(&self) -> (Vec<Vec<u8>>, Image) {
        let created = self.created * 1_000_000_000;
        let mut blobs = Vec::new();
        let blob = |bytes: &[u8], media: &str| BlobRef {
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            media_type: media.into(),
        };
        if let Some(inst) = &self.instances {
            let text: Vec<String> = inst
                .iter()
                .map(|(d, p)| format!("{d} {}/{}", p.os, p.architecture))
                .collect();
            let index = format!("index {} {}", text.join(","), self.salt).into_bytes();
            let manifest = blob(&index, "application/vnd.oci.image.index.v1+json");
            blobs.push(index);
            let img = Image {
                id: manifest.digest,
                names: self.names.clone(),
                digests: vec![manifest.digest],
                manifest,
                config_blob: None,
                layers: Vec::new(),
                config: Arc::new(ImageConfig {
                    created: Some(created),
                    ..ImageConfig::default()
                }),
                instances: Some(
                    inst.iter()
                        .map(|(d, p)| ManifestInstance {
                            digest: *d,
                            platform: p.clone(),
                        })
                        .collect(),
                ),
                read_only: self.read_only,
                added: created,
                last_used: None,
                stored_size: None,
            };
            return (blobs, img);
        }
        let synth = self.synth("");
        let layer_tars: Vec<Vec<u8>> = (0..self.layers.len()).map(|i| synth.layer_tar(i)).collect();
        let layers: Vec<Layer> = layer_tars
            .iter()
            .map(|t| {
                let b = blob(t, MT_OCI_LAYER);
                Layer {
                    diff_id: b.digest,
                    blob: b,
                }
            })
            .collect();
        let config_json = synth.config_json();
        let config_blob = blob(&config_json, MT_OCI_CONFIG);
        let layer_refs: Vec<BlobRef> = layers.iter().map(|l| l.blob.clone()).collect();
        let manifest_text = manifest_json(&config_blob, &layer_refs)
            .unwrap_or_else(|e| panic!("writing a manifest: {e}"));
        let manifest = blob(&manifest_text, MT_OCI_MANIFEST);
        blobs.extend(layer_tars);
        blobs.push(config_json);
        blobs.push(manifest_text);
        let img = Image {
            id: config_blob.digest,
            names: self.names.clone(),
            digests: vec![manifest.digest],
            manifest,
            config_blob: Some(config_blob),
            layers,
            // What a store parsing the config blob gets (core's `parse_config`).
            config: Arc::new(ImageConfig {
                created: Some(created),
                platform: imaged_core::intern::platform(
                    &synth.platform.os,
                    &synth.platform.architecture,
                    &synth.platform.variant,
                ),
                labels: Arc::new(self.labels.clone()),
                run: Arc::new(RunConfig {
                    user: synth.user.clone(),
                    env: vec![PATH_ENV.to_owned()],
                    ..RunConfig::default()
                }),
                history: synth.history.iter().cloned().map(Arc::new).collect(),
            }),
            instances: None,
            read_only: self.read_only,
            added: created,
            last_used: None,
            stored_size: None,
        };
        (blobs, img)
    }

    /// The real image this spec stands for ([`crate::archive`]'s generator): each layer a
    /// tar holding one file `file-<index>` with the layer's content (so equal content at
    /// equal positions gives equal layers), a JSON config with the same history (`ADD …`
    /// steps carry a layer, any other step is an empty layer), labels, creation time and
    /// platform, and the salt plus `extra_salt` as the config's user (a different config,
    /// nothing else changed). [`ImageSpec::build`] gives exactly these blobs.
    pub fn synth(&self, extra_salt: &str) -> SynthImage {
        let mut img = SynthImage {
            layers: self.layers.clone(),
            history: self
                .history
                .iter()
                .map(|h| HistoryEntry {
                    created_by: h.clone(),
                    empty_layer: !h.starts_with("ADD "),
                    ..HistoryEntry::default()
                })
                .collect(),
            labels: self.labels.clone(),
            created: Some(self.created * 1_000_000_000),
            user: format!("{}{extra_salt}", self.salt),
            names: self.names.clone(),
            ..SynthImage::default()
        };
        if let Some(p) = &self.platform {
            img.platform = p.clone();
        }
        img
    }
}

/// Stores images built from `specs` in one change set; returns their IDs in order.
pub fn add_images(store: &dyn Store, specs: &[ImageSpec]) -> Result<Vec<ImageId>> {
    let mut staging = store.stage()?;
    let mut change = ChangeSet::default();
    let mut ids = Vec::with_capacity(specs.len());
    for s in specs {
        let (blobs, img) = s.build();
        for b in blobs {
            staging.put(&mut b.as_slice(), None)?;
        }
        ids.push(img.id);
        change.put_images.push(Arc::new(img));
    }
    store.apply(&change)?;
    drop(staging);
    Ok(ids)
}

/// Stores one image.
pub fn add_image(store: &dyn Store, spec: &ImageSpec) -> Result<ImageId> {
    let ids = add_images(store, std::slice::from_ref(spec))?;
    ids.into_iter()
        .next()
        .ok_or_else(|| imaged_core::error::Error::internal("no image added"))
}
