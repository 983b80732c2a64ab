//! Applying a [`ChangeSet`] in place (design doc §10.3–§10.5).
//!
//! One lock session per change set: layers W → images W → (additional stores R) →
//! containers W, waiting (mountpoints R inside, while reading mounts). Under the locks
//! the files are re-read and the change set is **re-validated against them**; any
//! violation is an error and nothing is written. Then, each file replaced atomically and
//! its lock file touched right after its rename:
//!
//! 1. the intent journal (`<root>/imaged/cstorage-intent.json`: the layers about to go);
//! 2. `containers.json` without the deleted containers (their directories to the trash);
//! 3. `images.json` with the new names and without the deleted images (their big-data
//!    directories to the trash);
//! 4. `layers.json` with `flags.incomplete = true` on every layer to remove;
//! 5. each layer's data: overlay link, then the driver directory into the trash,
//!    `<id>.tar-split.gz`, the layer's big-data directory;
//! 6. `layers.json` without them; the journal is cleared.
//!
//! A later `last_used` the change carries (the engine's loads and tags) goes to imaged's
//! usage data (`usage.rs`), written after the locks are released.
//!
//! Every prefix of this sequence is a state podman accepts (§10.5); `recover` finishes it
//! at the next open. The trash is emptied in the background after the locks are released
//! (`reaper`).
//!
//! With the `failpoints` feature, `IMAGED_CSTORAGE_CRASH_AT=<step>` aborts the process at
//! a step: `after-containers`, `after-images`, `after-flag`, `mid-data` (after the first
//! layer's data), `after-data` (before the final `layers.json`).

use std::io;
use std::path::Path;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};
use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::digest::Digest;
use imaged_core::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic::{self, Staged};
use crate::driver::Paths;
use crate::lockfile::WriteGuard;
use crate::schema::{ContainerRecord, INCOMPLETE, ImageRecord, LayerRecord};
use crate::snapshot::{Locks, Snapshot};
use crate::store::CStorageStore;
use crate::tracked::{Encoded, Tracked};

/// Aborts the process at `step` when the `failpoints` feature is on and
/// `IMAGED_CSTORAGE_CRASH_AT` names it (crash tests).
pub(crate) fn failpoint(step: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("IMAGED_CSTORAGE_CRASH_AT").as_deref() == Ok(step) {
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = step;
}

/// An I/O error as a domain error (`ENOSPC` → `NoSpace`).
pub(crate) fn io_err(context: &str, path: &Path, e: &io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        Error::new(
            ErrorKind::NoSpace,
            format!("{context} {}: no space left on device", path.display()),
        )
    } else {
        Error::io(&format!("{context} {}", path.display()), e)
    }
}

fn conflict(msg: String) -> Error {
    Error::new(ErrorKind::ConcurrentModification, msg)
}

/// The intent journal: layers an interrupted apply was removing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// Layer IDs, in removal order.
    pub(crate) layers: Vec<String>,
}

/// `<root>/imaged/cstorage-intent.json`.
pub(crate) fn journal_path(paths: &Paths) -> std::path::PathBuf {
    paths.state_dir().join("cstorage-intent.json")
}

/// Reads the journal (missing or unreadable: empty).
pub(crate) fn read_journal(paths: &Paths) -> Journal {
    std::fs::read(journal_path(paths))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The journal listing `layers`, staged (see [`atomic::stage`]).
fn stage_journal(paths: &Paths, layers: &[String]) -> Result<Staged> {
    let p = journal_path(paths);
    std::fs::create_dir_all(paths.state_dir())
        .map_err(|e| io_err("creating", &paths.state_dir(), &e))?;
    let j = Journal {
        layers: layers.to_vec(),
    };
    let data = serde_json::to_vec(&j).map_err(|e| Error::internal(e.to_string()))?;
    stage_json(&p, &data)
}

/// One of the JSON files with `data`, staged.
fn stage_json(path: &Path, data: &[u8]) -> Result<Staged> {
    atomic::stage(path, data, 0o600).map_err(|e| io_err("writing", path, &e))
}

/// The result of a thread writing the store's files.
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    h.join().unwrap_or_else(|_| {
        Err(Error::internal(
            "a thread writing the store's files panicked",
        ))
    })
}

/// Renames a staged JSON file over its target (its old contents left in the trash for
/// the reaper) and touches its lock.
fn commit(staged: Staged, paths: &Paths, path: &Path, lock: &WriteGuard<'_>) -> Result<()> {
    staged
        .commit_keeping_old(&paths.trash_entry(path))
        .map_err(|e| io_err("writing", path, &e))?;
    lock.touch()
        .map(|_| ())
        .map_err(|e| io_err("touching the lock of", path, &e))
}

/// Clears the journal.
pub(crate) fn clear_journal(paths: &Paths) -> Result<()> {
    let p = journal_path(paths);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", &p, &e)),
    }
}

/// Re-reads the store under the held write locks (mountpoints R inside).
pub(crate) fn reload_locked(locks: &Locks, snap: &mut Snapshot) -> Result<()> {
    let _m = locks.mounts_read()?;
    let probe = snap.probe(locks);
    snap.reload(probe)
}

/// What an apply writes.
#[derive(Debug, Default)]
struct Plan {
    containers: Option<Vec<Arc<ContainerRecord>>>,
    images: Option<Vec<Arc<ImageRecord>>>,
    /// Layers to remove, in order (container layers, then each image's mapped layers and
    /// its chain top → base).
    layers: Vec<String>,
    image_dirs: Vec<String>,
    container_dirs: Vec<String>,
}

fn plan(snap: &Snapshot, change: &ChangeSet) -> Result<Plan> {
    let images = &snap.images.records;
    let layers = &snap.layers.records;
    let containers = &snap.containers.records;
    let mounted = snap.mounted();
    let mut plan = Plan::default();
    let image_by_id: HashMap<&str, &ImageRecord> =
        images.iter().map(|i| (i.id.as_str(), i.as_ref())).collect();
    let container_by_id: HashMap<&str, &ContainerRecord> = containers
        .iter()
        .map(|c| (c.id.as_str(), c.as_ref()))
        .collect();

    // Containers.
    let del_ctrs: HashSet<&str> = change
        .delete_containers
        .iter()
        .map(String::as_str)
        .collect();
    let mut gone: HashSet<String> = HashSet::new();
    for cid in &change.delete_containers {
        let Some(c) = container_by_id.get(cid.as_str()) else {
            return Err(conflict(format!("container {cid} vanished")));
        };
        let name = c.names.first().map_or(c.id.as_str(), String::as_str);
        if snap.podman.contains(cid) {
            return Err(Error::new(
                ErrorKind::ImageInUse,
                format!(
                    "container {name} ({}) is podman's: remove it with `podman rm {name}` \
                     (imaged never changes podman's database)",
                    &c.id[..c.id.len().min(12)]
                ),
            )
            .with_violation("CONTAINER", cid.clone(), "a podman container")
            .with_meta("container", cid.clone()));
        }
        if mounted.contains(c.layer.as_str()) {
            return Err(Error::new(
                ErrorKind::ContainerRunning,
                format!("container {name} ({cid}) is running (its layer is mounted)"),
            )
            .with_violation("CONTAINER", cid.clone(), "running")
            .with_meta("container", cid.clone()));
        }
        if !c.layer.is_empty() && layers.iter().any(|l| l.id == c.layer) {
            plan.layers.push(c.layer.clone());
            gone.insert(c.layer.clone());
        }
        plan.container_dirs.push(c.id.clone());
    }
    if !change.delete_containers.is_empty() {
        plan.containers = Some(
            containers
                .iter()
                .filter(|c| !del_ctrs.contains(c.id.as_str()))
                .cloned()
                .collect(),
        );
    }

    // The plan's view of each image it deletes or renames must still hold: another program
    // (a `podman load` naming the image it just created, a `podman tag`) may have changed
    // it since the engine looked. A stale plan is refused whole; the caller may retry.
    for seen in &change.seen {
        let hex = seen.id.hex();
        if let Some(now) = image_by_id.get(hex.as_str()) {
            let mut a: Vec<&str> = now.names.iter().map(String::as_str).collect();
            let mut b: Vec<&str> = seen.names.iter().map(String::as_str).collect();
            a.sort_unstable();
            b.sort_unstable();
            if a != b {
                return Err(conflict(format!(
                    "image {} changed while imaged was working on it (its names are now [{}]); \
                     nothing was changed, try again",
                    seen.id,
                    now.names.join(", ")
                ))
                .with_meta("image_id", seen.id.to_string()));
            }
        }
    }

    // Images: existence, users, read-only.
    let del_imgs: HashSet<String> = change.delete_images.iter().map(Digest::hex).collect();
    // The first container (in file order) of each image.
    let mut user: HashMap<&str, &ContainerRecord> = HashMap::new();
    for c in containers.iter() {
        if !del_ctrs.contains(c.id.as_str()) {
            user.entry(c.image.as_str()).or_insert(c.as_ref());
        }
    }
    for id in &change.delete_images {
        let hex = id.hex();
        if !image_by_id.contains_key(hex.as_str()) {
            if snap
                .ro
                .iter()
                .any(|r| r.images.records.iter().any(|i| i.id == hex))
            {
                return Err(Error::new(
                    ErrorKind::ReadOnlyImage,
                    format!("image {id} is in a read-only image store"),
                ));
            }
            return Err(conflict(format!("image {id} vanished")));
        }
        if let Some(c) = user.get(hex.as_str()) {
            return Err(Error::new(
                ErrorKind::ImageInUse,
                format!("image used by {}: image is in use by a container", c.id),
            )
            .with_violation("CONTAINER", c.id.clone(), "uses the image"));
        }
    }

    // Layers of deleted images (c/storage's DeleteImage walk, whole change set at once).
    // Each layer's children outside `gone`, counted.
    let mut live_children: HashMap<&str, u32> = HashMap::with_capacity(layers.len());
    for l in layers.iter() {
        if !l.parent.is_empty() && !gone.contains(&l.id) {
            *live_children.entry(l.parent.as_str()).or_default() += 1;
        }
    }
    let by_id: HashMap<&str, &LayerRecord> =
        layers.iter().map(|l| (l.id.as_str(), l.as_ref())).collect();
    let mut other_tops: HashSet<&str> = HashSet::new();
    for i in images.iter().filter(|i| !del_imgs.contains(&i.id)) {
        other_tops.insert(i.layer.as_str());
        other_tops.extend(i.mapped_layers.iter().map(String::as_str));
    }
    let ctr_layers: HashSet<&str> = containers
        .iter()
        .filter(|c| !del_ctrs.contains(c.id.as_str()))
        .map(|c| c.layer.as_str())
        .collect();
    let removable = |id: &str, gone: &HashSet<String>, live: &HashMap<&str, u32>| {
        by_id.contains_key(id)
            && !gone.contains(id)
            && !other_tops.contains(id)
            && !ctr_layers.contains(id)
            && live.get(id).is_none_or(|n| *n == 0)
    };
    let remove = |id: &str,
                  out: &mut Vec<String>,
                  gone: &mut HashSet<String>,
                  live: &mut HashMap<&str, u32>| {
        if let Some(n) = by_id
            .get(id)
            .filter(|l| !l.parent.is_empty())
            .and_then(|l| live.get_mut(l.parent.as_str()))
        {
            *n = n.saturating_sub(1);
        }
        out.push(id.to_owned());
        gone.insert(id.to_owned());
    };
    for img in images.iter().filter(|i| del_imgs.contains(&i.id)) {
        plan.image_dirs.push(img.id.clone());
        for m in &img.mapped_layers {
            if removable(m, &gone, &live_children) {
                remove(m, &mut plan.layers, &mut gone, &mut live_children);
            }
        }
        let mut cur = (!img.layer.is_empty()).then_some(img.layer.as_str());
        while let Some(id) = cur {
            if !removable(id, &gone, &live_children) {
                break;
            }
            remove(id, &mut plan.layers, &mut gone, &mut live_children);
            cur = by_id
                .get(id)
                .and_then(|l| (!l.parent.is_empty()).then_some(l.parent.as_str()));
        }
    }
    for l in &plan.layers {
        if mounted.contains(l.as_str()) {
            return Err(Error::new(
                ErrorKind::ContainerRunning,
                format!("layer {l} is mounted; unmount it first"),
            )
            .with_violation("LAYER", l.clone(), "mounted"));
        }
    }

    // Names (c/storage's updateNames for each changed image).
    let mut recs: Vec<Arc<ImageRecord>> = images
        .iter()
        .filter(|i| !del_imgs.contains(&i.id))
        .cloned()
        .collect();
    let mut names_changed = false;
    // Positions in `recs`, keyed by the snapshot's strings (`recs` is changed below).
    let index: HashMap<&str, usize> = if change.put_images.is_empty() {
        HashMap::new()
    } else {
        images
            .iter()
            .filter(|i| !del_imgs.contains(&i.id))
            .enumerate()
            .map(|(n, r)| (r.id.as_str(), n))
            .collect()
    };
    for img in &change.put_images {
        let hex = img.id.hex();
        let Some(&at) = index.get(hex.as_str()) else {
            let ro = snap
                .ro
                .iter()
                .find_map(|r| r.images.records.iter().find(|i| i.id == hex));
            if let Some(ro) = ro {
                if ro.names == img.names {
                    // Nothing to write in c/storage's files (only `last_used` changed: that
                    // goes to imaged's usage data, see `apply`).
                    continue;
                }
                return Err(Error::new(
                    ErrorKind::ReadOnlyImage,
                    format!("image {} is in a read-only image store", img.id),
                ));
            }
            return Err(conflict(format!("image {} vanished", img.id)));
        };
        let mut wanted: Vec<String> = Vec::new();
        for n in &img.names {
            if !wanted.contains(n) {
                wanted.push(n.clone());
            }
        }
        if recs[at].names == wanted {
            continue;
        }
        names_changed = true;
        for name in &wanted {
            for (n, other) in recs.iter_mut().enumerate() {
                if n != at && other.names.contains(name) {
                    Arc::make_mut(other).names.retain(|x| x != name);
                }
            }
            let r = Arc::make_mut(&mut recs[at]);
            let mut h = vec![name.clone()];
            h.extend(r.names_history.iter().filter(|x| *x != name).cloned());
            r.names_history = h;
        }
        Arc::make_mut(&mut recs[at]).names = wanted;
    }
    if names_changed || !del_imgs.is_empty() {
        plan.images = Some(recs);
    }
    Ok(plan)
}

/// The bytes of each file an apply wrote (what the snapshot takes as read).
#[derive(Debug, Default)]
struct Written {
    containers: Option<Encoded>,
    images: Option<Encoded>,
    layers: Option<(Vec<Arc<LayerRecord>>, Encoded)>,
}

/// Writes `plan`.
fn execute(
    store: &CStorageStore,
    snap: &Snapshot,
    locks: &crate::snapshot::WriteLocks<'_>,
    plan: &Plan,
) -> Result<Written> {
    let mut written = Written::default();
    let paths = &store.paths;
    // Every file is serialized (mostly copies of the bytes read) and written and synced to
    // a temporary first, each on its own thread: the syncs share the filesystem's journal
    // commits, and the locks wait for renames only. Nothing is visible until the renames
    // below, in the protocol's order.
    let (journal, containers, images, layers) = std::thread::scope(|s| {
        let layers = (!plan.layers.is_empty()).then(|| {
            s.spawn(|| prepare_layers(&snap.layers, &plan.layers)?.stage(&snap.layers.json))
        });
        let journal =
            (!plan.layers.is_empty()).then(|| s.spawn(|| stage_journal(paths, &plan.layers)));
        let containers = plan.containers.as_deref().map(|c| {
            s.spawn(|| {
                let enc = snap.containers.encode(c)?;
                let staged = stage_json(&snap.containers.json, &enc.bytes)?;
                Ok((enc, staged))
            })
        });
        let images = plan
            .images
            .as_deref()
            .map(|i| {
                let enc = snap.images.encode(i)?;
                let staged = stage_json(&snap.images.json, &enc.bytes)?;
                Ok((enc, staged))
            })
            .transpose();
        (
            journal.map(joined).transpose(),
            containers.map(joined).transpose(),
            images,
            layers.map(joined).transpose(),
        )
    });
    let (journal, containers, images, layers) = (journal?, containers?, images?, layers?);
    if let Some(j) = journal {
        let p = journal_path(paths);
        j.commit().map_err(|e| io_err("writing", &p, &e))?;
    }
    let trash =
        |p: &Path| -> Result<()> { paths.to_trash(p).map_err(|e| io_err("removing", p, &e)) };
    if let Some((enc, staged)) = containers {
        commit(staged, paths, &snap.containers.json, &locks.containers)?;
        written.containers = Some(enc);
        failpoint("after-containers");
        par_each(&plan.container_dirs, |id| {
            trash(&paths.containers_dir().join(id))?;
            if let Some(run) = &paths.run {
                let d = run
                    .join(format!("{}-containers", paths.driver.name()))
                    .join(id);
                // The run root may be another filesystem: delete in place then.
                trash(&d)?;
            }
            Ok(())
        })?;
    }
    if let Some((enc, staged)) = images {
        commit(staged, paths, &snap.images.json, &locks.images)?;
        written.images = Some(enc);
        failpoint("after-images");
        par_each(&plan.image_dirs, |id| trash(&paths.images_dir().join(id)))?;
    }
    let Some(staged) = layers else {
        return Ok(written);
    };
    let kept = remove_layers(
        paths,
        &plan.layers,
        staged,
        &snap.layers.json,
        &locks.layers,
    )?;
    clear_journal(paths)?;
    written.layers = Some(kept);
    Ok(written)
}

/// The two `layers.json` contents of a layer removal, serialized before anything is
/// written.
pub(crate) struct LayerWrite {
    /// With `flags.incomplete` on the layers to remove (`None`: all flagged already).
    flagged: Option<Vec<u8>>,
    /// Without them: the records and their bytes.
    kept: Vec<Arc<LayerRecord>>,
    kept_bytes: Encoded,
}

/// Serializes the `layers.json` contents that remove `ids` from `layers`.
pub(crate) fn prepare_layers(layers: &Tracked<LayerRecord>, ids: &[String]) -> Result<LayerWrite> {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut flag = false;
    let flagged: Vec<Arc<LayerRecord>> = layers
        .records
        .iter()
        .map(|l| {
            if set.contains(l.id.as_str()) && !l.is_incomplete() {
                flag = true;
                let mut l = LayerRecord::clone(l);
                l.flags.insert(INCOMPLETE.to_owned(), Value::Bool(true));
                Arc::new(l)
            } else {
                Arc::clone(l)
            }
        })
        .collect();
    let flagged_bytes = if flag {
        Some(layers.encode(&flagged)?.bytes)
    } else {
        None
    };
    // The kept records are the current ones (unflagged): copied as read.
    let kept: Vec<Arc<LayerRecord>> = layers
        .records
        .iter()
        .filter(|l| !set.contains(l.id.as_str()))
        .cloned()
        .collect();
    let kept_bytes = layers.encode(&kept)?;
    Ok(LayerWrite {
        flagged: flagged_bytes,
        kept,
        kept_bytes,
    })
}

impl LayerWrite {
    /// Both contents staged (on two threads).
    pub(crate) fn stage(self, json: &Path) -> Result<StagedLayers> {
        let (flagged, kept) = std::thread::scope(|s| {
            let flagged = self
                .flagged
                .as_deref()
                .map(|f| s.spawn(|| stage_json(json, f)));
            let kept = stage_json(json, &self.kept_bytes.bytes);
            let flagged = flagged.map(joined).transpose();
            (flagged, kept)
        });
        Ok(StagedLayers {
            flagged: flagged?,
            kept_file: kept?,
            kept: self.kept,
            kept_bytes: self.kept_bytes,
        })
    }
}

/// A [`LayerWrite`] staged.
pub(crate) struct StagedLayers {
    flagged: Option<Staged>,
    kept_file: Staged,
    kept: Vec<Arc<LayerRecord>>,
    kept_bytes: Encoded,
}

/// Flags `ids` incomplete (one write), removes their data, then their records (one
/// write): c/storage's `deleteInternal` for many layers at once. Returns the records
/// written last and their bytes.
pub(crate) fn remove_layers(
    paths: &Paths,
    ids: &[String],
    staged: StagedLayers,
    json: &Path,
    lock: &WriteGuard<'_>,
) -> Result<(Vec<Arc<LayerRecord>>, Encoded)> {
    if let Some(flagged) = staged.flagged {
        commit(flagged, paths, json, lock)?;
    }
    failpoint("after-flag");
    if let Some((first, rest)) = ids.split_first() {
        remove_data(paths, std::slice::from_ref(first))?;
        failpoint("mid-data");
        remove_data(paths, rest)?;
    }
    failpoint("after-data");
    commit(staged.kept_file, paths, json, lock)?;
    Ok((staged.kept, staged.kept_bytes))
}

/// Removes the data of `ids` (each flagged incomplete already, so the order does not
/// matter).
fn remove_data(paths: &Paths, ids: &[String]) -> Result<()> {
    par_each(ids, |id| {
        paths
            .remove_layer_data(id)
            .map_err(|e| io_err("removing the data of layer", Path::new(id), &e))
    })
}

/// `f` on each item, on a few threads when there are many (a large prune's renames and
/// unlinks dominate it); the first error.
fn par_each(items: &[String], f: impl Fn(&String) -> Result<()> + Sync) -> Result<()> {
    const PER_THREAD: usize = 64;
    // Asked once: the standard library reads the cgroup files on every call.
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if items.len() <= PER_THREAD {
        return items.iter().try_for_each(f);
    }
    let threads = items.len().div_ceil(PER_THREAD).min(*CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, 4)
    }));
    if threads <= 1 {
        return items.iter().try_for_each(f);
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().try_for_each(f)))
            .collect();
        let mut result = Ok(());
        for w in workers {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Error::internal("a removal thread panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    })
}

/// Blobs with their sizes.
type Blobs = Vec<(Digest, u64)>;

fn blob_diff(before: &Catalog, after: &Catalog) -> (Blobs, Blobs) {
    let mut released: Vec<(Digest, u64)> = before
        .blobs()
        .filter(|(d, _)| after.blob(d).is_none())
        .map(|(d, e)| (*d, e.size))
        .collect();
    let mut added: Vec<(Digest, u64)> = after
        .blobs()
        .filter(|(d, _)| before.blob(d).is_none())
        .map(|(d, e)| (*d, e.size))
        .collect();
    released.sort();
    added.sort();
    (released, added)
}

/// `Store::apply`.
pub(crate) fn apply(store: &CStorageStore, change: &ChangeSet) -> Result<Applied> {
    if !change.put_containers.is_empty() {
        return Err(Error::new(
            ErrorKind::ReadOnlyStore,
            "containers-storage: containers are podman's / buildah's / CRI-O's; imaged cannot register them",
        ));
    }
    let before_view = store.refresh();
    if !change.put_images.is_empty() {
        // Space a removal freed is free before a load writes.
        store.reaper.wait_idle();
    }
    // New images: copied in by skopeo without any of our locks held (skopeo takes them).
    for img in &change.put_images {
        if before_view.image(&img.id).is_some() {
            continue;
        }
        // Copied without a name: skopeo would move a name another image holds before our
        // own (checked) name change below, and the plan's view of that image would no
        // longer hold. The names are set natively, under the locks, with the rest.
        store.loads.import(&store.opts, img, "")?;
    }

    // An unnamed image another program finished a moment ago may be a containers/image
    // commit about to name it (SPEC §9.1): wait until it settled; the check under the
    // locks then refuses the plan if it was named meanwhile.
    let wait = store.lock_snap().settle_wait(&change.delete_images);
    if let Some(wait) = wait {
        tracing::debug!(
            ?wait,
            "containers-storage: waiting for a just-finished image to settle"
        );
        std::thread::sleep(wait);
    }

    let start = std::time::Instant::now();
    // The reaper (deleting what an earlier removal left in the trash) waits for this one.
    let _hold = store.reaper.hold();
    let mut snap = store.lock_snap();
    let locks = store.view.locks.write()?;
    reload_locked(&store.view.locks, &mut snap)?;
    snap.settled(change.put_images.iter().map(|i| i.id.hex()));
    let locked = start.elapsed();
    let before = std::sync::Arc::clone(&snap.catalog);
    let mut plan = plan(&snap, change)?;
    // Anything written leaves something in the trash (at least the files it replaced).
    let wrote = !plan.layers.is_empty()
        || !plan.image_dirs.is_empty()
        || !plan.container_dirs.is_empty()
        || plan.images.is_some()
        || plan.containers.is_some();
    let planned = start.elapsed();
    let result = execute(store, &snap, &locks, &plan).map(|written| {
        // What was written is known: the catalog is rebuilt from it, not read back.
        if let (Some(c), Some(b)) = (plan.containers.take(), written.containers) {
            snap.containers.set(c, b);
        }
        if let (Some(i), Some(b)) = (plan.images.take(), written.images) {
            snap.images.set(i, b);
        }
        if let Some((l, b)) = written.layers {
            snap.layers.set(l, b);
        }
        // The engine's uses (a load, a tag): a later `last_used` than the view's goes to
        // imaged's usage data (c/storage has no field for it); the catalog is rebuilt
        // with it even when no c/storage file changed.
        let mut used = false;
        for img in &change.put_images {
            let known = before.image(&img.id).and_then(|i| i.last_used);
            if let Some(t) = img.last_used.filter(|t| Some(*t) > known) {
                used |= snap.usage.stamp(&img.id.hex(), t);
            }
        }
        if used {
            snap.invalidate();
        }
    });
    let written = start.elapsed();
    let reloaded = reload_locked(&store.view.locks, &mut snap);
    tracing::debug!(
        ?locked,
        ?planned,
        ?written,
        rebuilt = ?start.elapsed(),
        layers = plan.layers.len(),
        images = plan.image_dirs.len(),
        "containers-storage: applied (times since the call)"
    );
    drop(locks);
    store.publish(&snap);
    snap.usage.save();
    drop(snap);
    if wrote {
        store.reaper.kick(&store.paths);
    }
    result?;
    reloaded?;
    let after = store.current();
    let (released, added) = blob_diff(&before, &after);
    Ok(Applied {
        catalog: (*after).clone(),
        released,
        added,
    })
}
