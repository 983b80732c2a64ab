//! The catalog: a consistent, immutable view of a store's metadata, and the change sets
//! that move it from one version to the next.
//!
//! Catalogs use persistent maps (`imbl`): cloning is O(1) and applying a change costs
//! O(change · log n), so every reader holds its own snapshot while writers build the next
//! one. Backends persist a [`ChangeSet`] atomically and then publish
//! `catalog.apply(&change)` as their new view.

use std::sync::Arc;

use imbl::{GenericHashMap, OrdMap};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fasthash::{FastBuild, FastMap, FastSet};
use crate::model::{Container, Image, ImageId};

/// A persistent map keyed by digests (blob digests, image IDs of the container index):
/// sha256 outputs need no SipHash, and a prune at 100k images makes millions of lookups.
type DigestMap<V> = GenericHashMap<Digest, V, FastBuild, imbl::shared_ptr::DefaultSharedPtr>;
/// Images by ID, and image IDs by name: B-trees. imbl's HAMT allocates mostly empty leaf
/// nodes for tables of about 100k entries (22 MiB for 100k images, 7 MiB as a B-tree); a
/// B-tree's nodes are kept at least half full whatever the size. Names are caller-chosen
/// strings: a B-tree also needs no seeded hash for them.
type ImageMap = imbl::OrdMap<Digest, Arc<Image>>;
type NameMap = imbl::OrdMap<String, ImageId>;

/// A change that deletes at least this many images, and at least half of the catalog,
/// rebuilds the tables from the survivors instead of removing entry by entry.
const BULK_DELETE_MIN: usize = 1024;

/// How many images refer to a blob, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobEntry {
    /// Bytes.
    pub size: u64,
    /// Number of images referring to it.
    pub refs: u32,
}

/// An immutable snapshot of the store's metadata.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    generation: u64,
    images: ImageMap,
    names: NameMap,
    containers: OrdMap<String, Arc<Container>>,
    blobs: DigestMap<BlobEntry>,
    /// Bytes of every referenced blob, each once (kept with `blobs`).
    blob_bytes: u64,
    /// The containers of each image that has any (kept with `containers`), so that
    /// checking a deletion and finding an image's users never scan every container.
    users: DigestMap<Arc<[Arc<Container>]>>,
}

/// A set of changes applied atomically. Built by the core's planners; backends persist it
/// as one transaction and never decide semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Images inserted or replaced (loads, name changes, `last_used`).
    pub put_images: Vec<Arc<Image>>,
    /// Images deleted.
    pub delete_images: Vec<ImageId>,
    /// Containers inserted or replaced.
    pub put_containers: Vec<Arc<Container>>,
    /// Containers deleted.
    pub delete_containers: Vec<String>,
    /// The records the change was planned on: every image it deletes or replaces, as the
    /// planner saw it (filled by the engine when it commits). A store that other programs
    /// write too (containers-storage) refuses the change with `ConcurrentModification`
    /// when one of them changed since; a store only imaged writes may ignore it.
    pub seen: Vec<Arc<Image>>,
}

impl ChangeSet {
    /// Whether the change set changes nothing.
    pub fn is_empty(&self) -> bool {
        self.put_images.is_empty()
            && self.delete_images.is_empty()
            && self.put_containers.is_empty()
            && self.delete_containers.is_empty()
    }

    /// Appends another change set.
    pub fn extend(&mut self, other: ChangeSet) {
        self.put_images.extend(other.put_images);
        self.delete_images.extend(other.delete_images);
        self.put_containers.extend(other.put_containers);
        self.delete_containers.extend(other.delete_containers);
        self.seen.extend(other.seen);
    }
}

/// The outcome of applying a change set to a catalog.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new catalog.
    pub catalog: Catalog,
    /// Blobs no image refers to any more, with their sizes, each once, sorted.
    pub released: Vec<(Digest, u64)>,
    /// Blobs referred to for the first time.
    pub added: Vec<(Digest, u64)>,
}

impl Applied {
    /// How a store publishes a planner's result ([`crate::Store::apply_planned`]): the
    /// planned outcome when `view` is still the catalog it was planned on (`planned` =
    /// the base and `change` applied to it), else `change` applied to `view`.
    pub fn planned_or_apply(
        view: &Arc<Catalog>,
        change: &ChangeSet,
        planned: Option<(&Catalog, Applied)>,
    ) -> Result<Applied> {
        match planned {
            Some((base, p)) if std::ptr::eq(Arc::as_ptr(view), base) => Ok(p),
            _ => view.apply(change),
        }
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a catalog from stored records (used by backends at open).
    pub fn from_records(
        images: impl IntoIterator<Item = impl Into<Arc<Image>>>,
        containers: impl IntoIterator<Item = Container>,
    ) -> Result<Self> {
        // The same checks and result as applying one change set to an empty catalog, but
        // blob reference counts are summed in a plain hash map, each persistent map is
        // built once, and the blob table is built on a second thread while the image and
        // name tables are built on this one (start-up with 100k images did ~2M
        // persistent-map operations on one thread before).
        let images: Vec<Arc<Image>> = images.into_iter().map(Into::into).collect();
        let (tables, blobs) = std::thread::scope(|s| {
            let blobs = s.spawn(|| {
                let mut refs: FastMap<Digest, BlobEntry> =
                    FastMap::with_capacity_and_hasher(images.len() * 4, FastBuild::default());
                for img in &images {
                    img.for_each_blob(|b| {
                        refs.entry(b.digest)
                            .or_insert(BlobEntry {
                                size: b.size,
                                refs: 0,
                            })
                            .refs += 1;
                    });
                }
                let bytes: u64 = refs.values().map(|e| e.size).sum();
                (refs.into_iter().collect::<DigestMap<_>>(), bytes)
            });
            let tables = image_tables(&images);
            // Never a default: an empty blob table would make every blob look unused.
            let blobs = blobs
                .join()
                .map_err(|_| Error::internal("building the blob table: the thread panicked"));
            (tables, blobs)
        });
        let (by_id, names) = tables?;
        let (blobs, blob_bytes) = blobs?;
        let mut catalog = Self {
            images: by_id,
            names,
            blob_bytes,
            blobs,
            ..Self::default()
        };
        let change = ChangeSet {
            put_containers: containers.into_iter().map(Arc::new).collect(),
            ..ChangeSet::default()
        };
        catalog.apply_in_place(&change)?;
        Ok(catalog)
    }

    /// Incremented by every applied change set.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// This catalog, derived from `base` by several in-place steps, numbered as one
    /// change from `base` (as [`Catalog::apply`] of the steps' combined change numbers it).
    pub(crate) fn one_step_from(mut self, base: &Catalog) -> Catalog {
        self.generation = base.generation + 1;
        self
    }

    /// Number of images (manifest lists included).
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The image with this ID.
    pub fn image(&self, id: &ImageId) -> Option<&Arc<Image>> {
        self.images.get(id)
    }

    /// Every image, in no particular order.
    pub fn images(&self) -> impl Iterator<Item = &Arc<Image>> {
        self.images.values()
    }

    /// The image holding this exact (fully-qualified) name.
    pub fn image_by_name(&self, name: &str) -> Option<&Arc<Image>> {
        self.names.get(name).and_then(|id| self.images.get(id))
    }

    /// Every (name, image ID) pair.
    pub fn names(&self) -> impl Iterator<Item = (&String, &ImageId)> {
        self.names.iter()
    }

    /// The container with this ID.
    pub fn container(&self, id: &str) -> Option<&Arc<Container>> {
        self.containers.get(id)
    }

    /// Every container, ordered by ID.
    pub fn containers(&self) -> impl Iterator<Item = &Arc<Container>> {
        self.containers.values()
    }

    /// The containers using image `id`, in container-ID order.
    pub fn containers_of(&self, id: &ImageId) -> &[Arc<Container>] {
        self.users.get(id).map_or(&[], |u| u)
    }

    /// The blob table entry of a digest.
    pub fn blob(&self, digest: &Digest) -> Option<BlobEntry> {
        self.blobs.get(digest).copied()
    }

    /// The referenced blobs: their total bytes (each blob once) and their number, in O(1).
    pub fn blob_usage(&self) -> (u64, u64) {
        (self.blob_bytes, self.blobs.len() as u64)
    }

    /// Every referenced blob.
    pub fn blobs(&self) -> impl Iterator<Item = (&Digest, &BlobEntry)> {
        self.blobs.iter()
    }

    /// Applies a change set, checking the catalog's invariants: a name belongs to at most
    /// one image, deleted images and containers exist, containers refer to existing images.
    /// Order inside the change set: image deletions, image puts, container deletions,
    /// container puts.
    pub fn apply(&self, change: &ChangeSet) -> Result<Applied> {
        let mut next = self.clone();
        let (released, added) = next.apply_in_place(change)?;
        Ok(Applied {
            catalog: next,
            released,
            added,
        })
    }

    /// [`Catalog::apply`] to this catalog itself, returning the blobs released and added.
    /// Many small changes to one working copy (a prune's plan) then copy each shared
    /// node of the persistent maps once, not once per change. On an error the catalog is
    /// left partly changed: only for working copies that are thrown away then.
    #[allow(clippy::type_complexity)]
    pub fn apply_in_place(
        &mut self,
        change: &ChangeSet,
    ) -> Result<(Vec<(Digest, u64)>, Vec<(Digest, u64)>)> {
        let next = self;
        if change.put_images.is_empty() && change.delete_images.len() >= BULK_DELETE_MIN {
            next.generation += 1;
            let released = if change.delete_images.len() * 2 >= next.images.len() {
                next.delete_bulk(&change.delete_images)?
            } else {
                next.delete_many(&change.delete_images)?
            };
            next.apply_containers(change)?;
            return Ok((released, Vec::new()));
        }
        next.generation += 1;
        // Each touched blob with its entry before this change (the first one recorded).
        let mut touched: Vec<(Digest, Option<BlobEntry>)> = Vec::new();

        for id in &change.delete_images {
            let old = next
                .images
                .remove(id)
                .ok_or_else(|| conflict(format!("image {id} vanished")))?;
            next.unlink(&old, &mut touched);
        }
        for img in &change.put_images {
            if let Some(old) = next.images.remove(&img.id) {
                next.unlink(&old, &mut touched);
            }
            for name in &img.names {
                if let Some(holder) = next.names.get(name) {
                    if *holder != img.id {
                        return Err(conflict(format!(
                            "name {name} is held by {holder}, cannot give it to {}",
                            img.id
                        )));
                    }
                    return Err(conflict(format!("name {name} listed twice on {}", img.id)));
                }
                next.names.insert(name.clone(), img.id);
            }
            img.for_each_blob(|b| {
                let before = match next.blobs.entry(b.digest) {
                    imbl::hashmap::Entry::Occupied(mut o) => {
                        let before = *o.get();
                        o.get_mut().refs += 1;
                        Some(before)
                    }
                    imbl::hashmap::Entry::Vacant(v) => {
                        v.insert(BlobEntry {
                            size: b.size,
                            refs: 1,
                        });
                        None
                    }
                };
                touched.push((b.digest, before));
            });
            next.images.insert(img.id, Arc::clone(img));
        }
        next.apply_containers(change)?;

        // A stable sort keeps each digest's first record (its state before the change).
        touched.sort_by_key(|(d, _)| *d);
        touched.dedup_by_key(|(d, _)| *d);
        let mut released = Vec::new();
        let mut added = Vec::new();
        for (d, before) in touched {
            match next.blobs.get(&d).copied() {
                Some(e) if e.refs == 0 => {
                    next.blobs.remove(&d);
                    if let Some(b) = before {
                        next.blob_bytes -= b.size;
                        released.push((d, b.size));
                    }
                }
                Some(e) if before.is_none() => {
                    next.blob_bytes += e.size;
                    added.push((d, e.size));
                }
                _ => {}
            }
        }
        Ok((released, added))
    }

    /// The container part of [`Catalog::apply_in_place`] (after the images): container
    /// deletions, container puts, then the check that containers refer to existing images.
    fn apply_containers(&mut self, change: &ChangeSet) -> Result<()> {
        let next = self;
        for cid in &change.delete_containers {
            match next.containers.remove(cid) {
                Some(old) => next.set_user(&old.image_id, &old.id, None),
                None => return Err(conflict(format!("container {cid} vanished"))),
            }
        }
        for c in &change.put_containers {
            if let Some(old) = next.containers.insert(c.id.clone(), Arc::clone(c)) {
                next.set_user(&old.image_id, &old.id, None);
            }
            next.set_user(&c.image_id, &c.id, Some(c));
        }
        // Containers refer to existing images: only the images and containers this change
        // touched can break that.
        for c in &change.put_containers {
            if !next.images.contains_key(&c.image_id) {
                return Err(missing_image(c));
            }
        }
        for id in &change.delete_images {
            if !next.images.contains_key(id)
                && let Some(c) = next.containers_of(id).first()
            {
                return Err(missing_image(c));
            }
        }
        Ok(())
    }

    /// Deletes `ids` (the image part of a change that only deletes many images, a
    /// dangling prune): the image and name tables on this thread while the blob table
    /// loses its references on another (they share nothing), each blob updated once
    /// however many deleted images refer to it. The same tables, released blobs (by
    /// digest) and errors as deleting one image after another.
    fn delete_many(&mut self, ids: &[ImageId]) -> Result<Vec<(Digest, u64)>> {
        let lost = self.lost_refs(ids)?;
        let Self {
            images,
            names,
            blobs,
            ..
        } = self;
        let released = std::thread::scope(|s| {
            let helper = s.spawn(|| release(blobs, &lost));
            for id in ids {
                if let Some(old) = images.remove(id) {
                    for name in &old.names {
                        if names.get(name) == Some(&old.id) {
                            names.remove(name);
                        }
                    }
                }
            }
            helper.join()
        });
        let released = match released {
            Ok(released) => released,
            // Never expected; the blob table may be half done: nothing to return.
            Err(_) => {
                return Err(Error::internal(
                    "updating the blob table: the thread panicked",
                ));
            }
        };
        self.blob_bytes -= released.iter().map(|(_, s)| s).sum::<u64>();
        Ok(released)
    }

    /// How many references each blob loses when `ids` are deleted; refuses an image that
    /// is missing or listed twice, as deleting one after another would.
    fn lost_refs(&self, ids: &[ImageId]) -> Result<FastMap<Digest, u32>> {
        let mut gone: FastSet<ImageId> =
            FastSet::with_capacity_and_hasher(ids.len(), FastBuild::default());
        let mut lost: FastMap<Digest, u32> =
            FastMap::with_capacity_and_hasher(ids.len() * 4, FastBuild::default());
        for id in ids {
            let old = match self.images.get(id) {
                Some(old) if gone.insert(*id) => old,
                _ => return Err(conflict(format!("image {id} vanished"))),
            };
            old.for_each_blob(|b| *lost.entry(b.digest).or_insert(0) += 1);
        }
        Ok(lost)
    }

    /// Deletes `ids` (the image part of a change that only deletes images) by building
    /// the image, name and blob tables anew from what survives: the same tables, blob
    /// counts and released blobs (sorted by digest) as deleting one image after another,
    /// for a fraction of the persistent-map work when most of the catalog goes (`prune
    /// -a`). Refuses an image that is missing or listed twice, as the step-by-step path.
    fn delete_bulk(&mut self, ids: &[ImageId]) -> Result<Vec<(Digest, u64)>> {
        let lost = self.lost_refs(ids)?;
        let gone: FastSet<ImageId> = ids.iter().copied().collect();
        self.images = self
            .images
            .iter()
            .filter(|(id, _)| !gone.contains(*id))
            .map(|(id, img)| (*id, Arc::clone(img)))
            .collect();
        self.names = self
            .names
            .iter()
            .filter(|(_, id)| !gone.contains(*id))
            .map(|(n, id)| (n.clone(), *id))
            .collect();
        let mut released = Vec::new();
        let mut blobs = DigestMap::default();
        for (d, e) in &self.blobs {
            match lost.get(d) {
                Some(&k) if e.refs <= k => released.push((*d, e.size)),
                Some(&k) => {
                    blobs.insert(
                        *d,
                        BlobEntry {
                            refs: e.refs - k,
                            ..*e
                        },
                    );
                }
                None => {
                    blobs.insert(*d, *e);
                }
            }
        }
        self.blobs = blobs;
        released.sort_unstable_by_key(|(d, _)| *d);
        self.blob_bytes -= released.iter().map(|(_, s)| s).sum::<u64>();
        Ok(released)
    }

    /// Removes container `cid` from the users of `image`, then adds `c` when given.
    fn set_user(&mut self, image: &ImageId, cid: &str, c: Option<&Arc<Container>>) {
        let mut list: Vec<Arc<Container>> = self
            .users
            .get(image)
            .map(|u| u.iter().filter(|x| x.id != cid).cloned().collect())
            .unwrap_or_default();
        if let Some(c) = c {
            let at = list.partition_point(|x| x.id < c.id);
            list.insert(at, Arc::clone(c));
        }
        if list.is_empty() {
            self.users.remove(image);
        } else {
            self.users.insert(*image, list.into());
        }
    }

    fn unlink(&mut self, old: &Image, touched: &mut Vec<(Digest, Option<BlobEntry>)>) {
        for name in &old.names {
            if self.names.get(name) == Some(&old.id) {
                self.names.remove(name);
            }
        }
        old.for_each_blob(|b| {
            if let Some(e) = self.blobs.get_mut(&b.digest) {
                let before = *e;
                e.refs = e.refs.saturating_sub(1);
                touched.push((b.digest, Some(before)));
            }
        });
    }
}

/// Takes `lost` references off the blobs of `blobs`; removes and returns (sorted by
/// digest, with their sizes) those left with none.
fn release(blobs: &mut DigestMap<BlobEntry>, lost: &FastMap<Digest, u32>) -> Vec<(Digest, u64)> {
    let mut released = Vec::new();
    for (d, &k) in lost {
        let Some(e) = blobs.get_mut(d) else {
            continue;
        };
        if e.refs <= k {
            released.push((*d, e.size));
            blobs.remove(d);
        } else {
            e.refs -= k;
        }
    }
    released.sort_unstable_by_key(|(d, _)| *d);
    released
}

/// The image and name tables of `images`, refusing a name on two images or one listed
/// twice, and an image listed twice.
#[allow(clippy::type_complexity)]
fn image_tables(images: &[Arc<Image>]) -> Result<(ImageMap, NameMap)> {
    let mut by_id = ImageMap::default();
    let mut names = NameMap::default();
    for img in images {
        for name in &img.names {
            if let Some(holder) = names.insert(name.clone(), img.id) {
                return Err(conflict(if holder == img.id {
                    format!("name {name} listed twice on {}", img.id)
                } else {
                    format!(
                        "name {name} is held by {holder}, cannot give it to {}",
                        img.id
                    )
                }));
            }
        }
        if by_id.insert(img.id, Arc::clone(img)).is_some() {
            return Err(conflict(format!("image {} listed twice", img.id)));
        }
    }
    Ok((by_id, names))
}

fn missing_image(c: &Container) -> Error {
    conflict(format!(
        "container {} would refer to missing image {}",
        c.id, c.image_id
    ))
}

fn conflict(message: String) -> Error {
    Error::new(crate::error::ErrorKind::ConcurrentModification, message)
}
