//! Choosing what a GC run deletes (SPEC §4.1): images not used for longer than the
//! policy's maximum, then least recently used first until the space the thresholds ask
//! for is freed. Each choice carries the bytes it frees given the choices before it
//! (a blob shared with an image that stays frees nothing; shared blobs count once).
//! A parent becomes a candidate only once every child is chosen. Never chosen: images
//! with containers, pinned, read-only, kept by `keep_tags`, or younger than `min_age`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::{BlobEntry, Catalog};
use crate::digest::Digest;
use crate::engine::pinned::Pinned;
use crate::fasthash::{FastMap, FastSet};
use crate::gc::policy::GcPolicy;
use crate::graph::index::LayerIndex;
use crate::graph::tree::Tree;
use crate::model::{Image, ImageId};
use crate::reference::split_stored;
pub use crate::store::FsSpace;
use crate::time::UnixNanos;

/// Space figures a run decides on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// The store's filesystem (`None`: the store has none, e.g. the memory store).
    pub fs: Option<FsSpace>,
    /// Bytes of the store's images (ImageFsInfo's `used_bytes`).
    pub store_bytes: u64,
}

/// A limit of the policy that the measure crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Filesystem use at or above the high threshold: free down to the low one.
    Disk {
        /// Bytes used on the filesystem.
        used: u64,
        /// The high threshold in bytes.
        high: u64,
        /// The low threshold in bytes.
        low: u64,
    },
    /// The store's images above the byte budget.
    Budget {
        /// The store's bytes.
        store_bytes: u64,
        /// The budget.
        budget: u64,
    },
}

/// Why an image was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Not used for longer than `max_unused` (this long).
    Unused(Duration),
    /// Least recently used, to free the space a threshold or the budget asks for.
    Space,
}

/// One image a run deletes, in the order it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcChoice {
    /// The image.
    pub id: ImageId,
    /// Its names.
    pub names: Vec<String>,
    /// Why it was chosen.
    pub why: Why,
    /// Bytes its deletion frees after the choices before it.
    pub bytes: u64,
    /// Its last use (`last_used`, else when it was added).
    pub last_used: UnixNanos,
}

/// Why an image cannot be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Blocker {
    /// A container uses it.
    InUse,
    /// Its name matches a pinned pattern.
    Pinned,
    /// In a read-only additional store.
    ReadOnly,
    /// Among the newest `keep_tags` tagged images of a repository.
    Kept,
    /// Added less than `min_age` ago.
    TooYoung,
    /// A child of it cannot go.
    Parent,
}

impl Blocker {
    /// The lower-case name used in reports and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InUse => "in_use",
            Self::Pinned => "pinned",
            Self::ReadOnly => "read_only",
            Self::Kept => "kept",
            Self::TooYoung => "too_young",
            Self::Parent => "parent",
        }
    }
}

/// Images that could not be chosen for one reason, and the bytes only they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The reason.
    pub reason: Blocker,
    /// How many images.
    pub images: u64,
    /// Bytes held by these images alone.
    pub bytes: u64,
}

/// What a run will delete, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// The limits crossed.
    pub triggers: Vec<Trigger>,
    /// Bytes the thresholds and the budget ask to free (0 when none is crossed).
    pub need_bytes: u64,
    /// The images, in deletion order.
    pub chosen: Vec<GcChoice>,
    /// Bytes the chosen images free.
    pub freed_bytes: u64,
    /// When less than `need_bytes` can be freed: what held the rest back, by reason.
    pub blocked: Vec<Blocked>,
}

impl GcPlan {
    /// Whether the plan frees what the limits ask for.
    pub fn reaches_target(&self) -> bool {
        self.freed_bytes >= self.need_bytes
    }
}

/// The bytes the crossed limits ask to free, with the limits.
pub fn need(policy: &GcPolicy, m: &Measure) -> (u64, Vec<Trigger>) {
    let mut triggers = Vec::new();
    let mut need = 0;
    if let (Some(high), Some(fs)) = (policy.high, m.fs) {
        let high = high.bytes(fs.capacity);
        let low = policy.low_or_high().map_or(high, |l| l.bytes(fs.capacity));
        let used = fs.used();
        if used >= high && fs.capacity > 0 {
            need = need.max(used - low.min(used));
            triggers.push(Trigger::Disk { used, high, low });
        }
    }
    if let Some(budget) = policy.budget_bytes
        && m.store_bytes > budget
    {
        need = need.max(m.store_bytes - budget);
        triggers.push(Trigger::Budget {
            store_bytes: m.store_bytes,
            budget,
        });
    }
    (need, triggers)
}

/// The last use of `img`: `last_used`, else when it was added.
pub fn last_use(img: &Image) -> UnixNanos {
    img.last_used.unwrap_or(img.added).max(img.added)
}

/// Where [`choose`] finds the images of a view and their children: the engine's layer
/// index of the view, or the tree of the view (the same answers).
pub trait ChildrenOf {
    /// Every image of `view`, in any order.
    fn images<'a>(&'a self, view: &'a Catalog) -> impl Iterator<Item = &'a Arc<Image>>;
    /// Every image of `view` that `img` is a (qualifying) parent of.
    fn children_of(&self, view: &Catalog, img: &Image) -> Vec<ImageId>;
}

impl ChildrenOf for LayerIndex {
    fn images<'a>(&'a self, view: &'a Catalog) -> impl Iterator<Item = &'a Arc<Image>> {
        view.images()
    }

    fn children_of(&self, view: &Catalog, img: &Image) -> Vec<ImageId> {
        self.children(view, img)
    }
}

/// A tree answers for the view it was built from (its images in an array).
impl ChildrenOf for Tree {
    fn images<'a>(&'a self, _view: &'a Catalog) -> impl Iterator<Item = &'a Arc<Image>> {
        (0..self.len() as u32).map(|i| self.image(i))
    }

    fn children_of(&self, _view: &Catalog, img: &Image) -> Vec<ImageId> {
        self.index_of(&img.id).map_or_else(Vec::new, |i| {
            self.children(i).iter().map(|&c| self.image(c).id).collect()
        })
    }
}

/// An image in LRU order: least recently used, then earlier added, then smaller ID first;
/// the image rides along so that taking it needs no lookup.
struct Lru<'a> {
    key: (UnixNanos, UnixNanos, ImageId),
    img: &'a Arc<Image>,
}

impl<'a> Lru<'a> {
    fn of(img: &'a Arc<Image>) -> Self {
        Self {
            key: (last_use(img), img.added, img.id),
            img,
        }
    }
}

impl PartialEq for Lru<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Lru<'_> {}

impl PartialOrd for Lru<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Lru<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// Every image of a view in LRU order, as a min-heap of them would give them, plus the
/// parents put back once their children are chosen. A run takes a tenth of the store or
/// less: the images are sorted a chunk at a time (the smallest of the rest selected in
/// linear time), not heaped and sifted one pop at a time.
struct LruOrder<'a> {
    images: Vec<Lru<'a>>,
    /// `images[..sorted]` is sorted and holds the smallest images.
    sorted: usize,
    next: usize,
    /// Parents put back.
    back: BinaryHeap<Reverse<Lru<'a>>>,
}

impl<'a> LruOrder<'a> {
    fn new(images: Vec<Lru<'a>>) -> Self {
        Self {
            images,
            sorted: 0,
            next: 0,
            back: BinaryHeap::new(),
        }
    }

    fn push(&mut self, img: Lru<'a>) {
        self.back.push(Reverse(img));
    }

    fn pop(&mut self) -> Option<Lru<'a>> {
        if self.next == self.sorted && self.sorted < self.images.len() {
            let rest = &mut self.images[self.sorted..];
            let chunk = (rest.len() / 8).max(1024).min(rest.len());
            if chunk < rest.len() {
                rest.select_nth_unstable(chunk - 1);
            }
            rest[..chunk].sort_unstable();
            self.sorted += chunk;
        }
        let from_sorted = self
            .images
            .get(self.next)
            .filter(|_| self.next < self.sorted);
        match (from_sorted, self.back.peek()) {
            (Some(a), Some(Reverse(b))) if b < a => self.back.pop().map(|Reverse(b)| b),
            (Some(_), _) => {
                let i = self.next;
                self.next += 1;
                self.images.get(i).map(|l| Lru {
                    key: l.key,
                    img: l.img,
                })
            }
            (None, _) => self.back.pop().map(|Reverse(b)| b),
        }
    }
}

/// Chooses on `view` (its layer index or tree `graph`) at `now`.
pub fn choose(
    view: &Catalog,
    graph: &impl ChildrenOf,
    pinned: &Pinned,
    policy: &GcPolicy,
    measure: &Measure,
    now: UnixNanos,
) -> GcPlan {
    let (need_bytes, triggers) = need(policy, measure);
    let mut plan = GcPlan {
        triggers,
        need_bytes,
        ..GcPlan::default()
    };
    let cutoff = policy
        .max_unused
        .map(|d| now.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)));
    if need_bytes == 0 && cutoff.is_none() {
        return plan;
    }
    let kept = kept_by_tags(view, policy.keep_tags);
    let min_age = i64::try_from(policy.min_age.as_nanos()).unwrap_or(i64::MAX);
    let blocker = |img: &Image| {
        if !view.containers_of(&img.id).is_empty() {
            Some(Blocker::InUse)
        } else if pinned.is_pinned(img) {
            Some(Blocker::Pinned)
        } else if img.read_only {
            Some(Blocker::ReadOnly)
        } else if kept.contains(&img.id) {
            Some(Blocker::Kept)
        } else if now.saturating_sub(img.added) < min_age {
            Some(Blocker::TooYoung)
        } else {
            None
        }
    };

    // Every image in LRU order. An image's blocker and its children are looked up when
    // its turn first comes (a run takes a few thousand of 100k images: the rest are
    // never asked): a blocked one is set aside, one with children not chosen yet waits
    // for them and is put back once they are. A run that stops before the order is
    // exhausted has reached its target and reports no blockers; one that exhausts it
    // has asked every image.
    let mut order = LruOrder::new(graph.images(view).map(Lru::of).collect());
    let mut blocked: FastMap<ImageId, Blocker> = FastMap::default();
    let mut chosen: FastSet<ImageId> = FastSet::default();
    let mut looked_up: FastSet<ImageId> = FastSet::default();
    // Parents waiting for children: how many, and each child's waiting parents.
    let mut pending: FastMap<ImageId, usize> = FastMap::default();
    let mut parents: FastMap<ImageId, Vec<ImageId>> = FastMap::default();

    let mut taken: FastMap<Digest, Taken> = FastMap::default();
    while let Some(Lru {
        key: (used, _, id),
        img,
    }) = order.pop()
    {
        let why = match cutoff {
            Some(c) if used < c => Why::Unused(Duration::from_nanos(
                u64::try_from(now.saturating_sub(used)).unwrap_or(0),
            )),
            _ if plan.freed_bytes < need_bytes => Why::Space,
            _ => break,
        };
        if looked_up.insert(id) {
            if let Some(reason) = blocker(img) {
                blocked.insert(id, reason);
                continue;
            }
            let waiting: Vec<ImageId> = graph
                .children_of(view, img)
                .into_iter()
                .filter(|c| !chosen.contains(c))
                .collect();
            if !waiting.is_empty() {
                pending.insert(id, waiting.len());
                for c in waiting {
                    parents.entry(c).or_default().push(id);
                }
                continue;
            }
        }
        let bytes = release(view, img, &mut taken);
        plan.freed_bytes += bytes;
        plan.chosen.push(GcChoice {
            id,
            names: img.names.clone(),
            why,
            bytes,
            last_used: used,
        });
        chosen.insert(id);
        for p in parents.remove(&id).into_iter().flatten() {
            if let Some(n) = pending.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&p);
                    if let Some(pi) = view.image(&p) {
                        order.push(Lru::of(pi));
                    }
                }
            }
        }
    }
    if !plan.reaches_target() {
        plan.blocked = blockers(view, &blocked, &pending, &taken);
    }
    plan
}

/// How many chosen images hold a blob, and its entry in the view's blob table (looked up
/// once per blob, not once per image holding it).
struct Taken {
    n: u32,
    entry: Option<BlobEntry>,
}

/// Counts `img`'s blobs as released; the bytes of those no other image still holds.
fn release(view: &Catalog, img: &Image, taken: &mut FastMap<Digest, Taken>) -> u64 {
    let mut bytes = 0;
    img.for_each_blob(|b| {
        let t = taken.entry(b.digest).or_insert_with(|| Taken {
            n: 0,
            entry: view.blob(&b.digest),
        });
        t.n += 1;
        if let Some(e) = t.entry
            && e.refs <= t.n
        {
            bytes += e.size;
        }
    });
    bytes
}

/// The images held back, by reason, with the bytes only the images of that reason hold
/// (blobs no other remaining image holds, once the chosen images are gone).
fn blockers(
    view: &Catalog,
    blocked: &FastMap<ImageId, Blocker>,
    pending: &FastMap<ImageId, usize>,
    taken: &FastMap<Digest, Taken>,
) -> Vec<Blocked> {
    let mut by: BTreeMap<Blocker, Blocked> = BTreeMap::new();
    let mut holders: HashMap<(Blocker, Digest), u32> = HashMap::new();
    let all = blocked
        .iter()
        .map(|(id, r)| (*id, *r))
        .chain(pending.keys().map(|id| (*id, Blocker::Parent)));
    for (id, reason) in all {
        let Some(img) = view.image(&id) else {
            continue;
        };
        by.entry(reason)
            .or_insert(Blocked {
                reason,
                images: 0,
                bytes: 0,
            })
            .images += 1;
        img.for_each_blob(|b| *holders.entry((reason, b.digest)).or_insert(0) += 1);
    }
    for ((reason, digest), n) in holders {
        if let Some(entry) = view.blob(&digest) {
            let remaining = entry
                .refs
                .saturating_sub(taken.get(&digest).map_or(0, |t| t.n));
            if n >= remaining
                && let Some(e) = by.get_mut(&reason)
            {
                e.bytes += entry.size;
            }
        }
    }
    by.into_values().collect()
}

/// The images among the newest `n` tagged images of some repository (by creation time,
/// then by when they were added).
fn kept_by_tags(view: &Catalog, n: u32) -> HashSet<ImageId> {
    let mut kept = HashSet::new();
    if n == 0 {
        return kept;
    }
    let mut repos: HashMap<&str, Vec<(UnixNanos, UnixNanos, ImageId)>> = HashMap::new();
    for (name, id) in view.names() {
        let (repo, tag, digest) = split_stored(name);
        if tag.is_none() || digest.is_some() {
            continue;
        }
        if let Some(img) = view.image(id) {
            let created = img.config.created.unwrap_or(img.added);
            repos
                .entry(repo)
                .or_default()
                .push((created, img.added, *id));
        }
    }
    for mut tagged in repos.into_values() {
        tagged.sort_unstable_by(|a, b| b.cmp(a));
        tagged.dedup_by_key(|t| t.2);
        for (_, _, id) in tagged.into_iter().take(n as usize) {
            kept.insert(id);
        }
    }
    kept
}
