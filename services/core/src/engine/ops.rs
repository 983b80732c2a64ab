//! Requests and reports of the engine's operations: the domain side of every RPC.

use std::sync::Arc;

use crate::digest::Digest;
use crate::error::Error;
use crate::model::{ContainerState, ImageConfig, ImageId, Layer, Platform};
use crate::time::UnixNanos;

/// Sort orders of [`ListOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Order {
    /// `created` descending, then ID ascending.
    #[default]
    Created,
    /// ID ascending.
    Id,
    /// `size` ascending, then ID.
    Size,
    /// First name ascending (unnamed last), then ID.
    Name,
}

/// ListImages parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `key=value` / `key!=value` filters.
    pub filters: Vec<String>,
    /// Show intermediate images too.
    pub all: bool,
    /// 0 → 1000, capped at 10000, negative → error.
    pub page_size: i32,
    /// Cursor from the previous page.
    pub page_token: String,
    /// Sort order.
    pub order: Order,
}

/// A manifest-list instance as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSummary {
    /// Manifest digest.
    pub digest: Digest,
    /// Platform.
    pub platform: Platform,
    /// The local image with that manifest digest.
    pub image_id: Option<ImageId>,
}

/// One image as ListImages reports it (SPEC §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// ID.
    pub id: ImageId,
    /// Names in store order (narrowed by a canonical `reference` filter).
    pub names: Vec<String>,
    /// Names with a tag.
    pub repo_tags: Vec<String>,
    /// Every name's repository × every digest, sorted, unique.
    pub repo_digests: Vec<String>,
    /// Config creation time.
    pub created: Option<UnixNanos>,
    /// Bytes of all blobs.
    pub size: u64,
    /// Bytes in blobs another image uses too.
    pub shared_size: u64,
    /// `size - shared_size`.
    pub unique_size: u64,
    /// Containers using it.
    pub containers: u32,
    /// Config labels.
    pub labels: crate::model::Labels,
    /// Parent image.
    pub parent_id: Option<ImageId>,
    /// libimage dangling.
    pub dangling: bool,
    /// libimage intermediate.
    pub intermediate: bool,
    /// From a read-only store.
    pub read_only: bool,
    /// A manifest list.
    pub is_manifest_list: bool,
    /// Primary manifest digest.
    pub digest: Digest,
    /// Every manifest digest.
    pub digests: Vec<Digest>,
    /// Platform.
    pub platform: Platform,
    /// Pinned (label or configured pattern).
    pub pinned: bool,
    /// Last use: load, pull, tag or container (SPEC §1 "Usage data").
    pub last_used: Option<UnixNanos>,
    /// Manifest lists: their instances.
    pub instances: Vec<InstanceSummary>,
}

/// One page of ListImages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The images of the page.
    pub images: Vec<ImageSummary>,
    /// Cursor of the next page; empty at the end.
    pub next_page_token: String,
    /// Images matching in total.
    pub total_size: usize,
}

/// One ListImages page in a caller's representation of an image
/// ([`crate::Engine::list_map`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedPage<T> {
    /// The images of the page.
    pub items: Vec<T>,
    /// Cursor of the next page; empty at the end.
    pub next_page_token: String,
    /// Images matching in total.
    pub total_size: usize,
}

/// InspectImage result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetails {
    /// The listed fields.
    pub summary: ImageSummary,
    /// The config.
    pub config: Arc<ImageConfig>,
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// Containers using it.
    pub container_ids: Vec<String>,
    /// Child images.
    pub child_ids: Vec<ImageId>,
}

/// Removal rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Policy {
    /// podman / libimage.
    #[default]
    Podman,
    /// Docker / moby.
    Docker,
}

/// RemoveImage parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// What to remove.
    pub reference: String,
    /// Force (policy-dependent meaning).
    pub force: bool,
    /// Keep dangling parents.
    pub no_prune: bool,
    /// Unknown reference → OK with no records.
    pub ignore_missing: bool,
    /// Rules.
    pub policy: Policy,
    /// Change nothing; report what would happen.
    pub dry_run: bool,
    /// The platform whose instance a manifest list's name resolves to (default: the
    /// engine's).
    pub platform: Option<crate::model::Platform>,
    /// libimage's `LookupManifest`: the reference must name a manifest list, and the list
    /// itself is removed.
    pub lookup_manifest: bool,
    /// libimage's `ExternalContainers` (PODMAN policy, without force): external container
    /// records using the image are removed with it; any other container still blocks.
    pub external: bool,
}

/// RemoveImages parameters (libimage's `RemoveImages`): what to remove — `references`
/// in order, else every image `filters` select (`all` with no filters: every image) —
/// and the options every removal of the batch shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveImagesOptions {
    /// Names, IDs, ID prefixes, in order.
    pub references: Vec<String>,
    /// ListImages filters selecting the images (when there are no references).
    pub filters: Vec<String>,
    /// With no references and no filters: every image (`rmi --all`).
    pub all: bool,
    /// The options of each removal (its `reference` is ignored). With `dry_run`, each
    /// removal sees the ones before it and nothing changes.
    pub each: RemoveOptions,
}

/// What one removal of a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOutcome {
    /// The reference as given (a selected image: its ID).
    pub reference: String,
    /// The removal's report, or why it failed (then it changed nothing).
    pub result: Result<RemoveReport, crate::error::Error>,
    /// Each image it deleted with its size before the removal (libimage's `WithSize`:
    /// the size ListImages showed, shared layers included).
    pub deleted_sizes: Vec<(ImageId, u64)>,
}

/// RemoveImages result: one outcome per removal, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveImagesReport {
    /// In the order removed.
    pub outcomes: Vec<RemoveOutcome>,
}

impl RemoveImagesReport {
    /// Bytes released by the whole batch.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|r| r.reclaimed_bytes)
            .sum()
    }

    /// podman `rmi`'s exit code: 0 when nothing failed, 2 when any failure is an image
    /// in use (or a running container), 1 when every failure is "not known" (an image or
    /// a tag), else 125.
    pub fn exit_code(&self) -> i32 {
        use crate::error::ErrorKind as K;
        let failed: Vec<K> = self
            .outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().err().map(|e| e.kind))
            .collect();
        if failed.is_empty() {
            0
        } else if failed
            .iter()
            .any(|k| matches!(k, K::ImageInUse | K::ContainerRunning))
        {
            2
        } else if failed
            .iter()
            .all(|k| matches!(k, K::ImageNotKnown | K::TagNotKnown))
        {
            1
        } else {
            125
        }
    }
}

/// One step of a removal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Record {
    /// A name removed.
    Untagged(String),
    /// An image deleted.
    Deleted(ImageId),
    /// A layer released, by its chain ID (DOCKER policy only: moby prints one `Deleted:`
    /// line per layer its layer store released, top layer first).
    DeletedLayer(Digest),
}

/// RemoveImage result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// Records in order.
    pub records: Vec<Record>,
    /// Containers removed under force.
    pub removed_containers: Vec<String>,
    /// Bytes of released blobs, each once.
    pub reclaimed_bytes: u64,
}

/// PruneImages parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Every unused image, not only dangling ones.
    pub all: bool,
    /// Extra filters.
    pub filters: Vec<String>,
    /// Also prune images used only by external containers (removing those).
    pub external: bool,
    /// Change nothing; report what would happen.
    pub dry_run: bool,
}

/// An image a prune could not remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneFailure {
    /// The image.
    pub image_id: ImageId,
    /// Why.
    pub error: Error,
}

/// PruneImages result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Records of every round, in order.
    pub records: Vec<Record>,
    /// Deleted images.
    pub deleted_images: Vec<ImageId>,
    /// The size of each deleted image before the prune (as `deleted_images`; libimage's
    /// `WithSize`: the size ListImages showed, shared layers included).
    pub deleted_sizes: Vec<u64>,
    /// Removed names.
    pub untagged: Vec<String>,
    /// Per-image failures.
    pub errors: Vec<PruneFailure>,
    /// Bytes of released blobs, each once.
    pub reclaimed_bytes: u64,
    /// External containers removed.
    pub removed_containers: Vec<String>,
}

/// Archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// Detect.
    #[default]
    Auto,
    /// `docker save`.
    Docker,
    /// OCI layout.
    Oci,
}

/// LoadImages parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Archive format.
    pub format: ArchiveFormat,
    /// Names for images the archive does not name.
    pub default_names: Vec<String>,
}

/// One loaded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Its ID.
    pub id: ImageId,
    /// Its names after the load.
    pub names: Vec<String>,
}

/// LoadImages result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Images in archive order.
    pub images: Vec<LoadedImage>,
    /// Names moved from another image.
    pub moved_names: Vec<String>,
}

/// TagImage result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// The image.
    pub image_id: ImageId,
    /// Normalised names added.
    pub names: Vec<String>,
}

/// UntagImage result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntagReport {
    /// The image.
    pub image_id: ImageId,
    /// Names removed.
    pub untagged: Vec<String>,
}

/// Per-image disk usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// Image.
    pub id: ImageId,
    /// Names.
    pub names: Vec<String>,
    /// Bytes of all blobs.
    pub size: u64,
    /// Shared bytes.
    pub shared_size: u64,
    /// Unique bytes.
    pub unique_size: u64,
    /// Containers.
    pub containers: u32,
}

/// ImageDiskUsage result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Images.
    pub images: u32,
    /// Images with containers.
    pub active_images: u32,
    /// Bytes of all blobs, each once.
    pub total_bytes: u64,
    /// Bytes a `prune --all` would release.
    pub reclaimable_bytes: u64,
    /// Containers.
    pub containers: u32,
    /// Per image (verbose).
    pub per_image: Vec<ImageUsage>,
}

/// RegisterContainer parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterContainer {
    /// ID; generated when `None`.
    pub id: Option<String>,
    /// Image reference.
    pub image: String,
    /// Initial state.
    pub state: ContainerState,
    /// External container.
    pub external: bool,
    /// Name.
    pub name: String,
}

/// Kinds of store events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An image was loaded (one event per name, or one without name).
    Load,
    /// A name was added.
    Tag,
    /// A name was removed.
    Untag,
    /// An image was deleted.
    Delete,
    /// A prune finished.
    Prune,
    /// A GC run finished (`name`: what started it; `reclaimed_bytes`: what it freed).
    Gc,
}

/// A committed change, as WatchEvents streams it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Kind.
    pub kind: EventKind,
    /// Image concerned.
    pub image_id: Option<ImageId>,
    /// Name concerned.
    pub name: String,
    /// Commit time.
    pub time: UnixNanos,
    /// Bytes released.
    pub reclaimed_bytes: u64,
}
