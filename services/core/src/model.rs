//! The stored image model (SPEC §1). Derived facts (parents, dangling, sizes) are not
//! stored: see [`crate::graph::tree`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
pub use crate::intern::MediaType;
use crate::time::UnixNanos;

/// An image ID: the digest of the image's config blob (of the index blob for a manifest
/// list).
pub type ImageId = Digest;

/// OS / architecture / variant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// e.g. `linux`.
    pub os: String,
    /// e.g. `amd64`.
    pub architecture: String,
    /// e.g. `v8`; empty when none.
    #[serde(default)]
    pub variant: String,
}

impl Platform {
    /// The platform this server runs on, in OCI terms.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: String::new(),
        }
    }
}

/// A content-addressed blob an image refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// Number of stored bytes.
    pub size: u64,
    /// Media type.
    pub media_type: MediaType,
}

/// A layer of an image, base first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The stored blob (compressed or not, as loaded).
    pub blob: BlobRef,
    /// Digest of the uncompressed tar (config `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// One config history entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When the step ran.
    pub created: Option<UnixNanos>,
    /// The command of the step.
    pub created_by: String,
    /// Author.
    pub author: String,
    /// Comment.
    pub comment: String,
    /// The step produced no layer.
    pub empty_layer: bool,
}

/// Config labels, shared between the records that have the same ones (see
/// [`crate::intern::Interner`]).
pub type Labels = Arc<BTreeMap<String, String>>;

/// The parts of the OCI image config imaged uses. The config JSON itself stays in its
/// blob (`Image::config_blob`, read with `Store::read_blob`), not in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time.
    pub created: Option<UnixNanos>,
    /// Platform (shared: a store holds a handful of distinct ones).
    pub platform: Arc<Platform>,
    /// Config labels.
    pub labels: Labels,
    /// What a container of the image runs with (shared between images that have the same).
    pub run: Arc<RunConfig>,
    /// History, oldest first. Entries are shared: a child image's history repeats its
    /// parent's, and a store holds each distinct entry once (see
    /// [`crate::intern::Interner`]).
    pub history: Vec<Arc<HistoryEntry>>,
}

/// The settings of an image config that a container runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunConfig {
    /// Default user (`uid[:gid]` or `name[:group]`).
    pub user: String,
    /// Environment.
    pub env: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Command.
    pub cmd: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Exposed ports (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Volumes.
    pub volumes: Vec<String>,
    /// Stop signal.
    pub stop_signal: String,
}

/// An instance of a manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInstance {
    /// Manifest digest of the instance.
    pub digest: Digest,
    /// Its platform.
    pub platform: Platform,
}

/// One image (or manifest list) record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Config digest (index digest for a manifest list).
    pub id: ImageId,
    /// Fully-qualified names in store order (newest first, as libimage).
    pub names: Vec<String>,
    /// Every manifest digest, the primary one first (never empty).
    pub digests: Vec<Digest>,
    /// The stored manifest (or index) blob.
    pub manifest: BlobRef,
    /// The stored config blob (`None` for manifest lists).
    pub config_blob: Option<BlobRef>,
    /// Layers, base first (empty for manifest lists).
    pub layers: Vec<Layer>,
    /// The config (default for manifest lists).
    pub config: Arc<ImageConfig>,
    /// Manifest lists: the instances. `None` for ordinary images.
    pub instances: Option<Vec<ManifestInstance>>,
    /// From a read-only additional store: can never be removed.
    pub read_only: bool,
    /// When the image was added to this store.
    pub added: UnixNanos,
    /// Its last use (SPEC §1 "Usage data"): a load or pull of it, a name given by TagImage,
    /// a container on it. `None`: no use recorded (kept from before imaged recorded uses).
    pub last_used: Option<UnixNanos>,
    /// The size the store's own engine reports for the image, when it counts differently
    /// from imaged (containers-storage: podman's `ImageSize`, uncompressed layers plus every
    /// big-data item). `None`: the sum of the image's distinct blobs (SPEC §1).
    #[serde(default)]
    pub stored_size: Option<u64>,
}

impl Image {
    /// The primary manifest digest.
    pub fn digest(&self) -> Digest {
        self.digests
            .first()
            .copied()
            .unwrap_or(self.manifest.digest)
    }

    /// Whether this record is a manifest list / OCI index.
    pub fn is_manifest_list(&self) -> bool {
        self.instances.is_some()
    }

    /// Every blob the image refers to (manifest, config, layers), each once.
    pub fn blobs(&self) -> impl Iterator<Item = &BlobRef> {
        let mut all = Vec::with_capacity(self.layers.len() + 2);
        self.for_each_blob(|b| all.push(b));
        all.into_iter()
    }

    /// [`Image::blobs`] without allocating: `f` for each blob, each once, in the same
    /// order (manifest, config, layers base first).
    pub fn for_each_blob<'a>(&'a self, mut f: impl FnMut(&'a BlobRef)) {
        f(&self.manifest);
        if let Some(c) = &self.config_blob
            && c.digest != self.manifest.digest
        {
            f(c);
        }
        for (i, l) in self.layers.iter().enumerate() {
            let d = l.blob.digest;
            let dup = d == self.manifest.digest
                || self.config_blob.as_ref().is_some_and(|c| c.digest == d)
                || self.layers[..i].iter().any(|x| x.blob.digest == d);
            if !dup {
                f(&l.blob);
            }
        }
    }

    /// The size ListImages shows: the store's own figure when it has one (podman's
    /// `ImageSize`), else the bytes of every blob, each once. (The listing tree computes
    /// it fused with the shared bytes, in the same pass.)
    pub fn size(&self) -> u64 {
        self.stored_size.unwrap_or_else(|| {
            let mut size = 0;
            self.for_each_blob(|b| size += b.size);
            size
        })
    }

    /// Diff IDs of the layers, base first.
    pub fn diff_ids(&self) -> impl Iterator<Item = Digest> + '_ {
        self.layers.iter().map(|l| l.diff_id)
    }
}

/// State of a registered container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, not running.
    Created,
    /// Running: blocks removal even with force.
    Running,
    /// Exited.
    Stopped,
}

/// A record that an image is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    /// 64 lowercase hex.
    pub id: String,
    /// The image it uses.
    pub image_id: ImageId,
    /// Its state.
    pub state: ContainerState,
    /// A build container or one of another engine.
    pub external: bool,
    /// Optional human name.
    pub name: String,
    /// Registration time.
    pub created: UnixNanos,
}
