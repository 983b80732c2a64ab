//! Reading the store into an [`imaged_core::Catalog`], incrementally (design doc §4, §10.6).
//!
//! A consistent snapshot is read under layers R → images R → (read-only stores R) →
//! containers R → mountpoints R, c/storage's order. Each file is tracked by its lock
//! file's token and the `(dev, ino, size, mtime)` of its JSON: a view first compares
//! those (a few `pread`s and `stat`s, no lock), and only when something moved takes the
//! locks **without waiting** and re-parses the files whose JSON changed (podman touches
//! `layers.lock` on every exit without rewriting `layers.json`). While a writer holds a
//! lock the previous snapshot is served and the next view tries again.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use imaged_core::digest::Digest;
use imaged_core::error::{Error, Result};
use imaged_core::model::Image;
use imaged_core::time::parse_rfc3339;
use imaged_core::{Catalog, ChangeSet};

use crate::convert::{self, ConvertCache, StoreRecords};
use crate::driver::Paths;
use crate::lockfile::{LockFile, ReadGuard, Token, WriteGuard};
use crate::schema::{ContainerRecord, ImageRecord, LayerRecord, MountRecord};
pub(crate) use crate::tracked::{Records, Stamp, Tracked, stamp};
use crate::usage::{self, Usage};

/// The lock files of the store (outside the snapshot's mutex, so that guards and a
/// mutable snapshot can be held together).
#[derive(Debug)]
pub(crate) struct Locks {
    pub(crate) layers: LockFile,
    pub(crate) images: LockFile,
    pub(crate) containers: LockFile,
    pub(crate) mounts: LockFile,
    /// Additional stores: (layers, images), read-only.
    pub(crate) ro: Vec<(LockFile, LockFile)>,
}

/// Held read locks of a snapshot.
#[derive(Debug)]
pub(crate) struct ReadLocks<'a> {
    _guards: Vec<ReadGuard<'a>>,
}

/// Held write locks of an apply (layers → images → containers) plus read locks of the
/// additional stores.
#[derive(Debug)]
pub(crate) struct WriteLocks<'a> {
    pub(crate) layers: WriteGuard<'a>,
    pub(crate) images: WriteGuard<'a>,
    pub(crate) containers: WriteGuard<'a>,
    _ro: Vec<ReadGuard<'a>>,
}

fn lock(path: PathBuf, ro: bool) -> Result<LockFile> {
    LockFile::open(&path, ro).map_err(|e| Error::io(&format!("opening {}", path.display()), &e))
}

/// How long an apply waits for the store's write locks before it gives up with
/// `ConcurrentModification` (another process holds them: podman normally for
/// milliseconds).
const WRITE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn lock_err(f: &LockFile, e: &io::Error) -> Error {
    crate::store::lock_error(&f.path().display().to_string(), e)
}

impl Locks {
    /// Opens (creating) the primary store's lock files and the read-only stores'.
    pub(crate) fn open(paths: &Paths, ro: &[Paths]) -> Result<Self> {
        let ld = paths.layers_dir();
        let id = paths.images_dir();
        let cd = paths.containers_dir();
        let rd = paths
            .run_layers_dir()
            .ok_or_else(|| Error::internal("the primary store needs a run root"))?;
        for d in [&ld, &id, &cd, &rd] {
            create_dir(d)?;
        }
        Ok(Self {
            layers: lock(ld.join("layers.lock"), false)?,
            images: lock(id.join("images.lock"), false)?,
            containers: lock(cd.join("containers.lock"), false)?,
            mounts: lock(rd.join("mountpoints.lock"), false)?,
            ro: ro
                .iter()
                .map(|p| {
                    Ok((
                        lock(p.layers_dir().join("layers.lock"), true)?,
                        lock(p.images_dir().join("images.lock"), true)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// Read locks in c/storage's order, without waiting: `None` when a writer holds one.
    pub(crate) fn try_read(&self) -> Result<Option<ReadLocks<'_>>> {
        let mut files: Vec<(&LockFile, bool)> = vec![(&self.layers, true), (&self.images, true)];
        for (l, i) in &self.ro {
            files.push((l, false));
            files.push((i, false));
        }
        files.push((&self.containers, true));
        files.push((&self.mounts, true));
        let mut guards = Vec::new();
        for (f, required) in files {
            match f.try_read() {
                Ok(Some(g)) => guards.push(g),
                Ok(None) => return Ok(None),
                Err(e) if required => return Err(lock_err(f, &e)),
                // A read-only store's lock file may be missing: read without it.
                Err(_) => {}
            }
        }
        Ok(Some(ReadLocks { _guards: guards }))
    }

    /// Write locks layers → images → (read-only stores R) → containers, waiting.
    pub(crate) fn write(&self) -> Result<WriteLocks<'_>> {
        let deadline = std::time::Instant::now() + WRITE_LOCK_WAIT;
        let layers = self
            .layers
            .write_until(deadline)
            .map_err(|e| lock_err(&self.layers, &e))?;
        let images = self
            .images
            .write_until(deadline)
            .map_err(|e| lock_err(&self.images, &e))?;
        let mut ro = Vec::new();
        for (l, i) in &self.ro {
            ro.extend(l.read().ok());
            ro.extend(i.read().ok());
        }
        let containers = self
            .containers
            .write_until(deadline)
            .map_err(|e| lock_err(&self.containers, &e))?;
        Ok(WriteLocks {
            layers,
            images,
            containers,
            _ro: ro,
        })
    }

    /// `mountpoints.lock` R (taken inside the others, while reading mounts).
    pub(crate) fn mounts_read(&self) -> Result<ReadGuard<'_>> {
        self.mounts.read().map_err(|e| lock_err(&self.mounts, &e))
    }

    fn tokens(&self) -> Vec<Token> {
        let t = |l: &LockFile| l.token().unwrap_or_default();
        let mut v = vec![
            t(&self.layers),
            t(&self.images),
            t(&self.containers),
            t(&self.mounts),
        ];
        for (l, i) in &self.ro {
            v.push(t(l));
            v.push(t(i));
        }
        v
    }
}

/// The additional store at `root`.
pub(crate) fn ro_paths(primary: &Paths, root: &Path) -> Paths {
    Paths {
        root: root.to_path_buf(),
        run: None,
        driver: primary.driver,
    }
}

/// The JSON files of an additional (read-only) image store.
#[derive(Debug)]
pub(crate) struct RoStore {
    pub(crate) paths: Paths,
    pub(crate) layers: Tracked<LayerRecord>,
    pub(crate) images: Tracked<ImageRecord>,
}

/// Everything read from the store, and the catalog built from it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) paths: Paths,
    pub(crate) layers: Tracked<LayerRecord>,
    pub(crate) images: Tracked<ImageRecord>,
    pub(crate) containers: Tracked<ContainerRecord>,
    pub(crate) mounts: Tracked<MountRecord>,
    pub(crate) ro: Vec<RoStore>,
    pub(crate) bolt: Option<PathBuf>,
    bolt_stamp: Stamp,
    bolt_loaded: bool,
    pub(crate) podman: Arc<HashSet<String>>,
    cache: ConvertCache,
    /// Converted images by ID with the record (and store) they came from, reused while
    /// the record and the layers of its chains are unchanged.
    converted: HashMap<String, Converted>,
    /// Incremented by every build; entries of `converted` not seen by the last one go.
    epoch: u64,
    /// The image records `converted` indexes into, per store.
    converted_from: Vec<Records<ImageRecord>>,
    /// The layer records `converted` was built from, per store.
    converted_layers: Vec<Records<LayerRecord>>,
    /// The probe the catalog corresponds to.
    probe: Option<Probe>,
    /// imaged's usage data (`usage.rs`): the images' `last_used`.
    pub(crate) usage: Usage,
    /// Image records containers/image is still committing ([`in_commit`]), with the time
    /// this snapshot first saw each: left out of the catalog for [`COMMIT_GRACE`].
    pending: HashMap<String, i64>,
    /// Unnamed image records another program finished since the build before (they were
    /// not there, or still [`in_commit`]), with when this snapshot first saw them so: a
    /// containers/image commit may be between its last two writes (metadata, then names).
    /// A removal waits until [`SETTLE`] has passed for them ([`Snapshot::settle_wait`]).
    settling: HashMap<String, i64>,
    /// Whether a catalog was built (the first build finds every record new).
    built: bool,
    /// The catalog of the records above.
    pub(crate) catalog: Arc<Catalog>,
}

/// An image converted from the record at `idx` of store `store`'s `converted_from`.
#[derive(Debug)]
struct Converted {
    store: usize,
    idx: usize,
    image: Arc<Image>,
    /// The build that last saw the record.
    epoch: u64,
}

/// Tokens and stamps of every file, compared before taking any lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe(Vec<Token>, Vec<Stamp>);

impl Snapshot {
    /// The tracked files of the store at `paths`, its additional stores and podman's
    /// database; nothing is read yet.
    pub(crate) fn new(paths: Paths, ro: Vec<Paths>, bolt: Option<PathBuf>) -> Self {
        let rd = paths.run_layers_dir().unwrap_or_default();
        let usage = Usage::load(usage::path(&paths.state_dir()));
        Self {
            layers: Tracked::new(paths.layers_dir().join("layers.json")),
            images: Tracked::new(paths.images_dir().join("images.json")),
            containers: Tracked::new(paths.containers_dir().join("containers.json")),
            mounts: Tracked::new(rd.join("mountpoints.json")),
            ro: ro
                .into_iter()
                .map(|p| RoStore {
                    layers: Tracked::new(p.layers_dir().join("layers.json")),
                    images: Tracked::new(p.images_dir().join("images.json")),
                    paths: p,
                })
                .collect(),
            paths,
            bolt,
            bolt_stamp: None,
            bolt_loaded: false,
            podman: Arc::new(HashSet::new()),
            cache: ConvertCache::default(),
            converted: HashMap::new(),
            epoch: 0,
            converted_from: Vec::new(),
            converted_layers: Vec::new(),
            probe: None,
            usage,
            pending: HashMap::new(),
            settling: HashMap::new(),
            built: false,
            catalog: Arc::new(Catalog::new()),
        }
    }

    /// Tokens and stamps of every file (no lock).
    pub(crate) fn probe(&self, locks: &Locks) -> Probe {
        let mut st = vec![
            stamp(&self.layers.json),
            stamp(&self.images.json),
            stamp(&self.containers.json),
            stamp(&self.mounts.json),
        ];
        for r in &self.ro {
            st.push(stamp(&r.layers.json));
            st.push(stamp(&r.images.json));
        }
        st.push(self.bolt.as_deref().and_then(stamp));
        Probe(locks.tokens(), st)
    }

    /// Whether the catalog is up to date with `probe`.
    pub(crate) fn is_current(&self, probe: &Probe) -> bool {
        self.probe.as_ref() == Some(probe)
    }

    /// Re-reads what changed (the caller holds at least read locks on every file) and
    /// rebuilds the catalog when anything did; `probe` (taken under those locks) is
    /// recorded as current.
    pub(crate) fn reload(&mut self, probe: Probe) -> Result<()> {
        // A podman command that removes or adds an image rewrites both big files: they are
        // re-read on two threads.
        let (l, i) = if self.layers.moved() && self.images.moved() {
            let (layers, images) = (&mut self.layers, &mut self.images);
            std::thread::scope(|s| {
                let l = s.spawn(|| layers.refresh());
                let i = images.refresh();
                let l = l
                    .join()
                    .unwrap_or_else(|_| Err(Error::internal("reading layers.json panicked")));
                (l, i)
            })
        } else {
            (self.layers.refresh(), self.images.refresh())
        };
        let mut changed = l? | i?;
        for r in &mut self.ro {
            changed |= r.layers.refresh()?;
        }
        changed |= self.containers.refresh()?;
        changed |= self.mounts.refresh()?;
        for r in &mut self.ro {
            changed |= r.images.refresh()?;
        }
        if let Some(b) = &self.bolt {
            let st = stamp(b);
            if !self.bolt_loaded || st != self.bolt_stamp {
                let db = crate::bolt::read(b)
                    .map_err(|e| Error::io(&format!("reading {}", b.display()), &e))?;
                self.podman = Arc::new(db.containers);
                self.bolt_stamp = st;
                self.bolt_loaded = true;
                changed = true;
            }
        }
        if changed || self.probe.is_none() {
            self.catalog = Arc::new(self.build()?);
        }
        self.probe = Some(probe);
        Ok(())
    }

    /// Forces the next [`Snapshot::reload`] to rebuild.
    pub(crate) fn invalidate(&mut self) {
        self.probe = None;
    }

    /// Layer IDs mounted (count > 0).
    pub(crate) fn mounted(&self) -> HashSet<&str> {
        self.mounts
            .records
            .iter()
            .filter(|m| m.count > 0)
            .map(|m| m.id.as_str())
            .collect()
    }

    fn build(&mut self) -> Result<Catalog> {
        let mut stores = vec![StoreRecords {
            paths: &self.paths,
            images: &self.images.records,
            layers: &self.layers.records,
            read_only: false,
        }];
        let mut from = vec![Arc::clone(&self.images.records)];
        let mut from_layers = vec![Arc::clone(&self.layers.records)];
        for r in &self.ro {
            from_layers.push(Arc::clone(&r.layers.records));
            stores.push(StoreRecords {
                paths: &r.paths,
                images: &r.images.records,
                layers: &r.layers.records,
                read_only: true,
            });
            from.push(Arc::clone(&r.images.records));
        }
        let layers = convert::layer_index(&stores);
        let changed = with_descendants(
            changed_layers(&self.converted_layers, &from_layers),
            &layers,
        );
        self.epoch = self.epoch.wrapping_add(1);
        let epoch = self.epoch;
        // Usage (`usage.rs`): the newest container of each image, and the images that had
        // containers in the previous view and have none now (used until now).
        let now = imaged_core::time::now();
        let mut newest: HashMap<&str, i64> = HashMap::new();
        for c in self.containers.records.iter() {
            let t = parse_rfc3339(&c.created).filter(|t| *t > 0);
            let e = newest.entry(c.image.as_str()).or_insert(0);
            *e = (*e).max(t.unwrap_or(0));
        }
        let lost_users: HashSet<String> = self
            .catalog
            .containers()
            .map(|c| c.image_id.hex())
            .filter(|id| !newest.contains_key(id.as_str()))
            .collect();
        let usage = &mut self.usage;
        // Updated in place: a build after a change of one image allocates nothing for the
        // others.
        let converted = &mut self.converted;
        let converted_from = &self.converted_from;
        let cache = &mut self.cache;
        let pending = &mut self.pending;
        let mut still_pending: HashSet<&str> = HashSet::new();
        let settling = &mut self.settling;
        let built = self.built;
        // Names given since: settled. Older than SETTLE: settled too.
        settling.retain(|_, first| now.saturating_sub(*first) < SETTLE);
        let mut images: Vec<Arc<Image>> = Vec::new();
        let mut ids: HashSet<Digest> = HashSet::new();
        let mut names: HashSet<&str> = HashSet::new();
        let mut live: HashSet<&str> = HashSet::new();
        for (n, s) in stores.iter().enumerate() {
            for (k, rec) in s.images.iter().enumerate() {
                if n == 0 && in_commit(rec) {
                    let first = *pending.entry(rec.id.clone()).or_insert(now);
                    if now.saturating_sub(first) < COMMIT_GRACE {
                        still_pending.insert(rec.id.as_str());
                        continue;
                    }
                }
                if n == 0 && built && rec.names.is_empty() {
                    let new = !converted.contains_key(rec.id.as_str())
                        || pending.contains_key(rec.id.as_str());
                    if new {
                        settling.entry(rec.id.clone()).or_insert(now);
                    }
                } else if !rec.names.is_empty() {
                    settling.remove(rec.id.as_str());
                }
                let same = |c: &Converted| {
                    c.store == n
                        && converted_from
                            .get(c.store)
                            .and_then(|v| v.get(c.idx))
                            .is_some_and(|r| Arc::ptr_eq(r, rec) || r == rec)
                };
                let reused = converted
                    .get(rec.id.as_str())
                    .filter(|c| same(c) && !convert::uses_any(rec, &changed))
                    .map(|c| Arc::clone(&c.image));
                if let Some(t) = newest.get(rec.id.as_str()).filter(|t| **t > 0) {
                    usage.stamp(&rec.id, *t);
                }
                if lost_users.contains(rec.id.as_str()) {
                    usage.stamp(&rec.id, now);
                }
                let recorded = usage.get(&rec.id);
                let last_used = |added: i64| recorded.max((added > 0).then_some(added));
                let img = match reused {
                    Some(img) if img.last_used == last_used(img.added) => img,
                    Some(img) => Arc::new(Image {
                        last_used: last_used(img.added),
                        ..Image::clone(&img)
                    }),
                    None => match convert::image(rec, s, &layers, cache) {
                        Some(img) => Arc::new(Image {
                            last_used: last_used(img.added),
                            ..img
                        }),
                        None => {
                            tracing::warn!(id = %rec.id, "image record with an invalid ID ignored");
                            continue;
                        }
                    },
                };
                if !ids.insert(img.id) {
                    // The primary store's record wins over an additional store's.
                    continue;
                }
                live.insert(rec.id.as_str());
                let entry = Converted {
                    store: n,
                    idx: k,
                    image: Arc::clone(&img),
                    epoch,
                };
                match converted.get_mut(rec.id.as_str()) {
                    Some(c) => *c = entry,
                    None => {
                        converted.insert(rec.id.clone(), entry);
                    }
                }
                // A name on two records: the first keeps it (c/storage repairs the file
                // on its next write).
                let dup = img.names.iter().any(|x| names.contains(x.as_str()));
                let img = if dup {
                    let mut i = (*img).clone();
                    i.names.retain(|x| !names.contains(x.as_str()));
                    Arc::new(i)
                } else {
                    img
                };
                for n in &rec.names {
                    names.insert(n.as_str());
                }
                images.push(img);
            }
        }
        converted.retain(|_, c| c.epoch == epoch);
        pending.retain(|id, _| still_pending.contains(id.as_str()));
        drop(still_pending);
        self.settling.retain(|id, _| live.contains(id.as_str()));
        self.built = true;
        self.cache.retain(&live);
        self.usage.retain(|id| live.contains(id));
        let mounted = self.mounted();
        let containers =
            convert::containers(&self.containers.records, &ids, &mounted, &self.podman);
        drop(live);
        self.converted_from = from;
        self.converted_layers = from_layers;

        // Derive the new catalog from the previous one when possible: O(change).
        let prev = &self.catalog;
        if !prev.is_empty() || prev.containers().next().is_some() {
            let mut change = ChangeSet::default();
            for img in &images {
                if !prev.image(&img.id).is_some_and(|p| Arc::ptr_eq(p, img)) {
                    change.put_images.push(Arc::clone(img));
                }
            }
            change.delete_images = prev
                .images()
                .map(|i| i.id)
                .filter(|id| !ids.contains(id))
                .collect();
            let cids: HashSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
            change.delete_containers = prev
                .containers()
                .filter(|c| !cids.contains(c.id.as_str()))
                .map(|c| c.id.clone())
                .collect();
            for c in &containers {
                if prev.container(&c.id).is_none_or(|p| **p != *c) {
                    change.put_containers.push(Arc::new(c.clone()));
                }
            }
            if let Ok(applied) = prev.apply(&change) {
                return Ok(applied.catalog);
            }
        }
        Catalog::from_records(images, containers)
    }
}

/// How long an image record containers/image is still committing stays out of the
/// catalog (nanoseconds): a commit takes seconds; a record still unfinished after this is
/// a commit that died (podman killed), listed and pruned as podman would.
const COMMIT_GRACE: i64 = 10 * 60 * 1_000_000_000;

/// How long a removal waits for an unnamed image another program just finished
/// (nanoseconds): containers/image names its image right after writing its metadata.
const SETTLE: i64 = 1_000_000_000;

impl Snapshot {
    /// How long a change deleting `ids` should wait before taking the locks: until
    /// [`SETTLE`] has passed since this snapshot first saw each of them finished by another
    /// program and still unnamed. The check under the locks then sees the names a
    /// containers/image commit gave meanwhile, and the plan is refused as stale.
    pub(crate) fn settle_wait(&self, ids: &[Digest]) -> Option<std::time::Duration> {
        if self.settling.is_empty() {
            return None;
        }
        let now = imaged_core::time::now();
        let latest = ids
            .iter()
            .filter_map(|id| self.settling.get(id.hex().as_str()))
            .max()?;
        let left = latest.saturating_add(SETTLE).saturating_sub(now);
        (left > 0).then(|| std::time::Duration::from_nanos(left.unsigned_abs()))
    }

    /// Images imaged itself just copied in (its loads): not another program's commit.
    pub(crate) fn settled(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.settling.remove(&id);
        }
    }
}

/// Whether `rec` is an image containers/image is still committing (SPEC §9.1): its
/// `Commit` creates the record with no names and no metadata, then writes the big-data
/// items (manifest, config), then the metadata, and gives the names last, each step its
/// own lock session. Until then the record is not an image yet: listing it would show a
/// config-less `<none>`, and a dangling prune would delete it under podman's feet (its
/// next step fails with "identifier is not a layer, image, or container"). Every image
/// containers/image finished (podman, buildah, skopeo, and imaged's loads through skopeo)
/// has a metadata document, named or not. The other records without one are podman's
/// manifest lists (`podman manifest create`, through containers/common, which keeps the
/// list's `instances.json` item and never writes metadata).
pub(crate) fn in_commit(rec: &ImageRecord) -> bool {
    rec.names.is_empty()
        && rec.metadata.is_empty()
        && !rec.big_data_names.iter().any(|k| k == "instances.json")
}

/// The IDs of layers whose record differs between `old` (the records the converted images
/// were built from) and `new`: added, removed or changed. Records are shared while their
/// bytes are unchanged ([`Tracked`]), so they are compared by pointer. Nothing when every
/// store's records are the same allocation (the common case: only images changed).
fn changed_layers(old: &[Records<LayerRecord>], new: &[Records<LayerRecord>]) -> HashSet<String> {
    let mut out = HashSet::new();
    if old.len() == new.len() && old.iter().zip(new).all(|(a, b)| Arc::ptr_eq(a, b)) {
        return out;
    }
    let pointers = |v: &[Records<LayerRecord>]| -> HashSet<*const LayerRecord> {
        v.iter().flat_map(|r| r.iter()).map(Arc::as_ptr).collect()
    };
    let (before, after) = (pointers(old), pointers(new));
    for (records, other) in [(old, &after), (new, &before)] {
        for l in records.iter().flat_map(|r| r.iter()) {
            if !other.contains(&Arc::as_ptr(l)) {
                out.insert(l.id.clone());
            }
        }
    }
    out
}

/// `set` and every layer above one of them (by `index`'s parent links): the layers whose
/// chain differs when `set` are the layers that changed.
fn with_descendants(
    mut set: HashSet<String>,
    index: &HashMap<&str, &LayerRecord>,
) -> HashSet<String> {
    if set.is_empty() {
        return set;
    }
    loop {
        let before = set.len();
        for (id, l) in index {
            if !l.parent.is_empty() && set.contains(l.parent.as_str()) && !set.contains(*id) {
                set.insert((*id).to_owned());
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

fn create_dir(d: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(d)
        .map_err(|e| Error::io(&format!("creating {}", d.display()), &e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn layer(id: &str, parent: &str) -> LayerRecord {
        serde_json::from_value(serde_json::json!({"id": id, "parent": parent})).unwrap()
    }

    #[test]
    fn a_changed_layer_taints_everything_above_it() {
        // a ← b ← c ← d, a ← e; f alone; "gone" (removed) was the parent of g.
        let recs = [
            layer("d", "c"),
            layer("c", "b"),
            layer("b", "a"),
            layer("a", ""),
            layer("e", "a"),
            layer("f", ""),
            layer("g", "gone"),
        ];
        let index: HashMap<&str, &LayerRecord> = recs.iter().map(|l| (l.id.as_str(), l)).collect();
        let set =
            |ids: &[&str]| -> HashSet<String> { ids.iter().map(|s| (*s).to_owned()).collect() };
        assert_eq!(with_descendants(set(&["b"]), &index), set(&["b", "c", "d"]));
        assert_eq!(
            with_descendants(set(&["a", "gone"]), &index),
            set(&["a", "b", "c", "d", "e", "gone", "g"])
        );
        assert_eq!(with_descendants(set(&["f"]), &index), set(&["f"]));
        assert!(with_descendants(set(&[]), &index).is_empty());
    }
}

#[cfg(test)]
#[path = "settle_tests.rs"]
mod settle_tests;
