//! The derived layer tree (SPEC §1): parent/child by libimage's rule, dangling,
//! intermediate, containers per image, manifest-list membership and sizes — computed once
//! per catalog version in O(images + layers + history) with hash indexes, never per image
//! (podman#17828).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::engine::ops::Order;
use crate::fasthash::{FastHasher, FastMap, FastSet};
use crate::model::{Container, HistoryEntry, Image, ImageId};
use crate::work;

/// libimage's parent rule: `c`'s layers equal `p`'s or extend them by exactly one layer
/// (a layer-less image is only related to layer-less images), and `c` has exactly one
/// more history entry than `p`, with `p`'s history as its leading entries. Manifest lists
/// have neither parents nor children.
pub fn is_parent(p: &Image, c: &Image) -> bool {
    if p.is_manifest_list() || c.is_manifest_list() || p.id == c.id {
        return false;
    }
    let (pl, cl) = (p.layers.len(), c.layers.len());
    let (ph, ch) = (&p.config.history, &c.config.history);
    if ch.len() != ph.len() + 1 || !(cl == pl || (cl == pl + 1 && pl >= 1)) {
        return false;
    }
    p.layers
        .iter()
        .zip(&c.layers)
        .all(|(a, b)| a.diff_id == b.diff_id)
        && ch[..ph.len()] == ph[..]
}

/// Whether `a` is a better parent candidate than `b` for the same child: same layer list
/// before one layer shorter (libimage looks at the child's own layer first), then the
/// smaller ID.
pub fn better_parent(child: &Image, a: &Image, b: &Image) -> bool {
    let class = |p: &Image| usize::from(p.layers.len() != child.layers.len());
    (class(a), a.id) < (class(b), b.id)
}

/// The derived facts of one catalog version.
#[derive(Debug)]
pub struct Tree {
    generation: u64,
    images: Vec<Arc<Image>>,
    index: FastMap<ImageId, u32>,
    parent: Vec<Option<u32>>,
    extra_parents: FastMap<u32, Vec<u32>>,
    child_start: Vec<u32>,
    child_list: Vec<u32>,
    containers: FastMap<u32, Vec<Arc<Container>>>,
    /// Per image: [`IN_LIST`], [`UNNAMED`] (read without touching the image record, which
    /// a listing of every image would otherwise fetch from memory one by one).
    flags: Vec<u8>,
    instance_of: FastMap<Digest, u32>,
    size: Vec<u64>,
    shared: Vec<u64>,
    orders: [OnceLock<Vec<u32>>; 4],
}

const NONE: u32 = u32::MAX;
/// [`Tree::flags`]: an instance of a local manifest list.
const IN_LIST: u8 = 1;
/// [`Tree::flags`]: no names.
const UNNAMED: u8 = 2;

/// A hash of a (layer list, history) pair: images with equal keys are parent candidates of
/// each other's children. Equal keys are verified with [`is_parent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    layers: u64,
    nlayers: usize,
    history: u64,
    nhistory: usize,
}

/// The keys of an image: its own, and those its parent would have (same layers, or one
/// layer less; one history entry less).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageKeys {
    /// The image's own key.
    pub own: Key,
    /// A parent with the same layers.
    pub same: Option<Key>,
    /// A parent with one layer less.
    pub shorter: Option<Key>,
}

impl ImageKeys {
    /// The keys of `img`; `None` for manifest lists (no parents, no children).
    pub fn of(img: &Image) -> Option<Self> {
        if img.is_manifest_list() {
            return None;
        }
        let (lf, ls) = prefix_hashes(img.layers.iter().map(|l| digest_word(&l.diff_id)));
        let (hf, hs) = prefix_hashes(img.config.history.iter().map(|h| history_word(h)));
        let (k, m) = (img.layers.len(), img.config.history.len());
        let own = Key {
            layers: lf,
            nlayers: k,
            history: hf,
            nhistory: m,
        };
        if m == 0 {
            return Some(Self {
                own,
                same: None,
                shorter: None,
            });
        }
        let same = Key {
            layers: lf,
            nlayers: k,
            history: hs,
            nhistory: m - 1,
        };
        let shorter = (k >= 2).then(|| Key {
            layers: ls,
            nlayers: k - 1,
            history: hs,
            nhistory: m - 1,
        });
        Some(Self {
            own,
            same: Some(same),
            shorter,
        })
    }

    /// The keys a parent of this image would have.
    pub fn parent_keys(&self) -> impl Iterator<Item = Key> {
        self.same.into_iter().chain(self.shorter)
    }
}

fn mix(h: u64, x: u64) -> u64 {
    (h ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29)
}

fn digest_word(d: &Digest) -> u64 {
    let b = d.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn history_word(e: &HistoryEntry) -> u64 {
    let mut h = FastHasher::default();
    e.created.hash(&mut h);
    e.created_by.hash(&mut h);
    e.author.hash(&mut h);
    e.comment.hash(&mut h);
    e.empty_layer.hash(&mut h);
    h.finish()
}

/// Hashes of the whole list and of the list without its last element.
fn prefix_hashes(words: impl Iterator<Item = u64>) -> (u64, u64) {
    let (mut full, mut short) = (0u64, 0u64);
    for w in words {
        short = full;
        full = mix(full, w);
    }
    (full, short)
}

impl Tree {
    /// Builds the tree of `view`.
    pub fn build(view: &Catalog) -> Self {
        let images: Vec<Arc<Image>> = view.images().cloned().collect();
        // Sizes on a second thread: a third of the build at 100k images. The scope borrows
        // `images`, so the tree gets them once it ends.
        let mut tree = std::thread::scope(|s| {
            let sizes = s.spawn(|| (sizes_of(&images), work::take()));
            let n = images.len();
            work::add(n as u64);
            let mut index = FastMap::with_capacity_and_hasher(n, Default::default());
            let mut keys: Vec<Option<ImageKeys>> = Vec::with_capacity(n);
            let mut heads: FastMap<Key, u32> =
                FastMap::with_capacity_and_hasher(n, Default::default());
            let mut next = vec![NONE; n];
            for (i, img) in images.iter().enumerate() {
                let i = i as u32;
                index.insert(img.id, i);
                work::add((img.layers.len() + img.config.history.len()) as u64);
                let k = ImageKeys::of(img);
                if let Some(k) = &k
                    && let Some(h) = heads.insert(k.own, i)
                {
                    next[i as usize] = h;
                }
                keys.push(k);
            }

            let mut parent = vec![None; n];
            let mut extra_parents: FastMap<u32, Vec<u32>> = FastMap::default();
            let mut edges: Vec<(u32, u32)> = Vec::new();
            for (ci, child) in images.iter().enumerate() {
                let Some(k) = &keys[ci] else {
                    continue;
                };
                let mut found: Vec<u32> = Vec::new();
                for key in k.parent_keys() {
                    let mut cur = heads.get(&key).copied().unwrap_or(NONE);
                    while cur != NONE {
                        work::add(1);
                        if is_parent(&images[cur as usize], child) {
                            found.push(cur);
                        }
                        cur = next[cur as usize];
                    }
                }
                if found.is_empty() {
                    continue;
                }
                found.sort_by(|&a, &b| {
                    let (a, b) = (&images[a as usize], &images[b as usize]);
                    if better_parent(child, a, b) {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    }
                });
                let ci = ci as u32;
                parent[ci as usize] = Some(found[0]);
                edges.extend(found.iter().map(|&p| (p, ci)));
                if found.len() > 1 {
                    extra_parents.insert(ci, found[1..].to_vec());
                }
            }
            let mut child_start = vec![0u32; n + 1];
            for &(p, _) in &edges {
                child_start[p as usize + 1] += 1;
            }
            for i in 0..n {
                child_start[i + 1] += child_start[i];
            }
            let mut fill = child_start.clone();
            let mut child_list = vec![0u32; edges.len()];
            for &(p, c) in &edges {
                child_list[fill[p as usize] as usize] = c;
                fill[p as usize] += 1;
            }

            let listed: FastSet<Digest> = images
                .iter()
                .filter_map(|i| i.instances.as_ref())
                .flat_map(|v| v.iter().map(|x| x.digest))
                .collect();
            let flags = images
                .iter()
                .map(|i| {
                    let in_list =
                        !i.is_manifest_list() && i.digests.iter().any(|d| listed.contains(d));
                    u8::from(in_list) * IN_LIST + u8::from(i.names.is_empty()) * UNNAMED
                })
                .collect();
            let mut instance_of: FastMap<Digest, u32> = FastMap::default();
            if !listed.is_empty() {
                for (i, img) in images.iter().enumerate() {
                    for d in img.digests.iter().filter(|d| listed.contains(*d)) {
                        let e = instance_of.entry(*d).or_insert(i as u32);
                        if images[*e as usize].id > img.id {
                            *e = i as u32;
                        }
                    }
                }
            }

            let mut containers: FastMap<u32, Vec<Arc<Container>>> = FastMap::default();
            for c in view.containers() {
                work::add(1);
                if let Some(&i) = index.get(&c.image_id) {
                    containers.entry(i).or_default().push(Arc::clone(c));
                }
            }
            let (size, shared) = match sizes.join() {
                Ok((sizes, steps)) => {
                    work::add(steps);
                    sizes
                }
                // Never expected: the same work again, on this thread.
                Err(_) => sizes_of(&images),
            };
            Self {
                generation: view.generation(),
                images: Vec::new(),
                index,
                parent,
                extra_parents,
                child_start,
                child_list,
                containers,
                flags,
                instance_of,
                size,
                shared,
                orders: Default::default(),
            }
        });
        tree.images = images;
        tree
    }

    /// The catalog generation the tree was built from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The dense index of an image.
    pub fn index_of(&self, id: &ImageId) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The image at index `i`.
    pub fn image(&self, i: u32) -> &Arc<Image> {
        &self.images[i as usize]
    }

    /// The parent of `i`.
    pub fn parent(&self, i: u32) -> Option<u32> {
        self.parent[i as usize]
    }

    /// Every image `i` is a (qualifying) parent of.
    pub fn children(&self, i: u32) -> &[u32] {
        let (a, b) = (
            self.child_start[i as usize],
            self.child_start[i as usize + 1],
        );
        &self.child_list[a as usize..b as usize]
    }

    /// Every qualifying parent of `i` (the parent first).
    pub fn all_parents(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        self.parent[i as usize]
            .into_iter()
            .chain(self.extra_parents.get(&i).into_iter().flatten().copied())
    }

    /// Containers using `i`.
    pub fn containers(&self, i: u32) -> &[Arc<Container>] {
        self.containers.get(&i).map_or(&[], Vec::as_slice)
    }

    /// Whether `i` is an instance of a local manifest list.
    pub fn in_manifest_list(&self, i: u32) -> bool {
        self.flags[i as usize] & IN_LIST != 0
    }

    /// Whether `i` has no names.
    pub fn unnamed(&self, i: u32) -> bool {
        self.flags[i as usize] & UNNAMED != 0
    }

    /// The local image whose manifest digest is `d`, when `d` is a manifest-list instance.
    pub fn instance_image(&self, d: &Digest) -> Option<u32> {
        self.instance_of.get(d).copied()
    }

    /// libimage dangling: no names, no children, not in a manifest list.
    pub fn dangling(&self, i: u32) -> bool {
        self.flags[i as usize] == UNNAMED && self.children(i).is_empty()
    }

    /// libimage intermediate: no names and at least one child.
    pub fn intermediate(&self, i: u32) -> bool {
        self.unnamed(i) && !self.children(i).is_empty()
    }

    /// Bytes of all blobs of `i`.
    pub fn size(&self, i: u32) -> u64 {
        self.size[i as usize]
    }

    /// Bytes of `i`'s blobs that other images use too.
    pub fn shared_size(&self, i: u32) -> u64 {
        self.shared[i as usize]
    }

    /// The sort key of `i` for `order`.
    pub fn sort_key(&self, order: Order, i: u32) -> SortKey {
        let img = &self.images[i as usize];
        match order {
            Order::Created => SortKey::Int(img.config.created.unwrap_or(i64::MIN)),
            Order::Size => SortKey::Int(i64::try_from(self.size(i)).unwrap_or(i64::MAX)),
            Order::Name => SortKey::Str(img.names.first().cloned()),
            Order::Id => SortKey::None,
        }
    }

    /// Every image index in `order` (computed once per tree and order).
    pub fn sorted(&self, order: Order) -> &[u32] {
        let slot = match order {
            Order::Created => 0,
            Order::Id => 1,
            Order::Size => 2,
            Order::Name => 3,
        };
        self.orders[slot].get_or_init(|| {
            work::add(self.images.len() as u64);
            let keys: Vec<SortKey> = (0..self.images.len() as u32)
                .map(|i| self.sort_key(order, i))
                .collect();
            let mut idx: Vec<u32> = (0..self.images.len() as u32).collect();
            idx.sort_unstable_by(|&a, &b| {
                compare(
                    order,
                    (&keys[a as usize], &self.images[a as usize].id),
                    (&keys[b as usize], &self.images[b as usize].id),
                )
            });
            idx
        })
    }
}

/// Each image's size and the bytes of it that other images share, in `images` order.
fn sizes_of(images: &[Arc<Image>]) -> (Vec<u64>, Vec<u64>) {
    let n = images.len();
    // Blob reference counts, computed here with a fast map (faster than the catalog's
    // persistent blob table for a full pass).
    let mut refs: FastMap<Digest, u32> =
        FastMap::with_capacity_and_hasher(n * 3, Default::default());
    for img in images {
        img.for_each_blob(|b| *refs.entry(b.digest).or_insert(0) += 1);
    }
    let mut size = Vec::with_capacity(n);
    let mut shared = Vec::with_capacity(n);
    for img in images {
        let (mut s, mut sh) = (0u64, 0u64);
        img.for_each_blob(|b| {
            s += b.size;
            if refs.get(&b.digest).is_some_and(|&r| r > 1) {
                sh += b.size;
            }
        });
        work::add(img.layers.len() as u64 + 2);
        // `Image::size`, computed in this pass.
        size.push(img.stored_size.unwrap_or(s));
        shared.push(sh);
    }
    (size, shared)
}

/// A position in a sort order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    /// Order by ID only.
    None,
    /// Created time or size.
    Int(i64),
    /// First name (`None` = unnamed, sorted last).
    Str(Option<String>),
}

/// Compares two positions of `order` (ties broken by ID ascending).
pub fn compare(
    order: Order,
    (ka, ida): (&SortKey, &ImageId),
    (kb, idb): (&SortKey, &ImageId),
) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let primary = match (order, ka, kb) {
        (Order::Created, SortKey::Int(a), SortKey::Int(b)) => b.cmp(a),
        (Order::Size, SortKey::Int(a), SortKey::Int(b)) => a.cmp(b),
        (Order::Name, SortKey::Str(a), SortKey::Str(b)) => match (a, b) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        _ => Ordering::Equal,
    };
    primary.then_with(|| ida.cmp(idb))
}

/// Caches the tree of the newest view an engine has seen.
#[derive(Debug, Default)]
pub struct TreeCache(Mutex<Option<(Arc<Catalog>, Arc<Tree>)>>);

impl TreeCache {
    /// The tree of `view`, built at most once per catalog version.
    pub fn get(&self, view: &Arc<Catalog>) -> Arc<Tree> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((v, t)) = slot.as_ref()
            && Arc::ptr_eq(v, view)
        {
            return Arc::clone(t);
        }
        let tree = Arc::new(Tree::build(view));
        let old = slot.replace((Arc::clone(view), Arc::clone(&tree)));
        drop(slot);
        crate::reclaim::later(old);
        tree
    }

    /// Takes the cached tree out when it is not the tree of `view` (a tree holds every
    /// image of its catalog alive: after a large removal, the ones deleted).
    pub fn take_stale(&self, view: &Arc<Catalog>) -> Option<(Arc<Catalog>, Arc<Tree>)> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|(v, _)| !Arc::ptr_eq(v, view)) {
            return slot.take();
        }
        None
    }

    /// The cached tree if it was built from exactly `view`.
    pub fn peek(&self, view: &Arc<Catalog>) -> Option<Arc<Tree>> {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(v, _)| Arc::ptr_eq(v, view))
            .map(|(_, t)| Arc::clone(t))
    }
}
