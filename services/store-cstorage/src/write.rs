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
//! Every prefix of this sequence is a state podman accepts (§10.5); `recover` finishes it
//! at the next open. The trash is emptied in the background after the locks are released
//! (`reaper`).
//!
//! With the `failpoints` feature, `IMAGED_CSTORAGE_CRASH_AT=<step>` aborts the process at
//! a step: `after-containers`, `after-images`, `after-flag`, `mid-data` (after the first
//! layer's data), `after-data` (before the final `layers.json`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::Path;
use std::sync::Arc;

use imaged_core::catalog::{Applied, Catalog, ChangeSet};
use imaged_core::digest::Digest;
use imaged_core::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic;
use crate::driver::Paths;
use crate::lockfile::WriteGuard;
use crate::schema::{self, ContainerRecord, INCOMPLETE, ImageRecord, LayerRecord};
use crate::snapshot::{Locks, Snapshot};
use crate::store::CStorageStore;

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

fn write_journal(paths: &Paths, j: &Journal) -> Result<()> {
    let p = journal_path(paths);
    std::fs::create_dir_all(paths.state_dir())
        .map_err(|e| io_err("creating", &paths.state_dir(), &e))?;
    let data = serde_json::to_vec(j).map_err(|e| Error::internal(e.to_string()))?;
    atomic::write_file(&p, &data, 0o600).map_err(|e| io_err("writing", &p, &e))
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

/// Writes one of the JSON files and touches its lock; the bytes written.
pub(crate) fn save<T: Serialize>(
    path: &Path,
    recs: &[T],
    lock: &WriteGuard<'_>,
) -> Result<Vec<u8>> {
    let data = to_json(recs)?;
    write_bytes(path, &data, lock)?;
    Ok(data)
}

/// Records as the bytes c/storage writes.
fn to_json<T: Serialize>(recs: &[T]) -> Result<Vec<u8>> {
    schema::to_go_json(recs).map_err(|e| Error::internal(e.to_string()))
}

/// Replaces one of the JSON files with `data` and touches its lock.
fn write_bytes(path: &Path, data: &[u8], lock: &WriteGuard<'_>) -> Result<()> {
    atomic::write_file(path, data, 0o600).map_err(|e| io_err("writing", path, &e))?;
    lock.touch()
        .map(|_| ())
        .map_err(|e| io_err("touching the lock of", path, &e))
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

/// Whether any layer outside `gone` has `id` as parent.
fn has_live_child(id: &str, children: &HashMap<&str, Vec<&str>>, gone: &HashSet<String>) -> bool {
    children
        .get(id)
        .is_some_and(|c| c.iter().any(|k| !gone.contains(*k)))
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
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in layers.iter() {
        if !l.parent.is_empty() {
            children
                .entry(l.parent.as_str())
                .or_default()
                .push(l.id.as_str());
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
    let removable = |id: &str, gone: &HashSet<String>| {
        by_id.contains_key(id)
            && !gone.contains(id)
            && !other_tops.contains(id)
            && !ctr_layers.contains(id)
            && !has_live_child(id, &children, gone)
    };
    for img in images.iter().filter(|i| del_imgs.contains(&i.id)) {
        plan.image_dirs.push(img.id.clone());
        for m in &img.mapped_layers {
            if removable(m, &gone) {
                plan.layers.push(m.clone());
                gone.insert(m.clone());
            }
        }
        let mut cur = (!img.layer.is_empty()).then(|| img.layer.clone());
        while let Some(id) = cur {
            if !removable(&id, &gone) {
                break;
            }
            cur = by_id
                .get(id.as_str())
                .and_then(|l| (!l.parent.is_empty()).then(|| l.parent.clone()));
            plan.layers.push(id.clone());
            gone.insert(id);
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
    let index: BTreeMap<String, usize> = recs
        .iter()
        .enumerate()
        .map(|(n, r)| (r.id.clone(), n))
        .collect();
    for img in &change.put_images {
        let hex = img.id.hex();
        let Some(&at) = index.get(&hex) else {
            let ro = snap
                .ro
                .iter()
                .find_map(|r| r.images.records.iter().find(|i| i.id == hex));
            if let Some(ro) = ro {
                if ro.names == img.names {
                    // Nothing to write (e.g. only `last_used` changed).
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
    containers: Option<Vec<u8>>,
    images: Option<Vec<u8>>,
    layers: Option<(Vec<Arc<LayerRecord>>, Vec<u8>)>,
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
    // Everything is serialized first, images.json and layers.json on two threads
    // (megabytes each at a thousand images), so the locks wait for I/O only.
    let (images, layers) = std::thread::scope(|s| {
        let layers = (!plan.layers.is_empty())
            .then(|| s.spawn(|| prepare_layers(&snap.layers.records, &plan.layers)));
        let images = plan.images.as_deref().map(to_json).transpose();
        let layers = layers
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::internal("serializing layers.json panicked")))
            })
            .transpose();
        (images, layers)
    });
    let (images, layers) = (images?, layers?);
    if !plan.layers.is_empty() {
        write_journal(
            paths,
            &Journal {
                layers: plan.layers.clone(),
            },
        )?;
    }
    let trash =
        |p: &Path| -> Result<()> { paths.to_trash(p).map_err(|e| io_err("removing", p, &e)) };
    if let Some(c) = &plan.containers {
        written.containers = Some(save(&snap.containers.json, c, &locks.containers)?);
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
    if let Some(i) = images {
        write_bytes(&snap.images.json, &i, &locks.images)?;
        written.images = Some(i);
        failpoint("after-images");
        par_each(&plan.image_dirs, |id| trash(&paths.images_dir().join(id)))?;
    }
    let Some(prepared) = layers else {
        return Ok(written);
    };
    let kept = remove_layers(
        paths,
        &plan.layers,
        prepared,
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
    kept_bytes: Vec<u8>,
}

/// Serializes the `layers.json` contents that remove `ids` from `layers`.
pub(crate) fn prepare_layers(layers: &[Arc<LayerRecord>], ids: &[String]) -> Result<LayerWrite> {
    let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut flag = false;
    let flagged: Vec<Arc<LayerRecord>> = layers
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
    let flagged_bytes = if flag { Some(to_json(&flagged)?) } else { None };
    let kept: Vec<Arc<LayerRecord>> = flagged
        .into_iter()
        .filter(|l| !set.contains(l.id.as_str()))
        .collect();
    let kept_bytes = to_json(&kept)?;
    Ok(LayerWrite {
        flagged: flagged_bytes,
        kept,
        kept_bytes,
    })
}

/// Flags `ids` incomplete (one write), removes their data, then their records (one
/// write): c/storage's `deleteInternal` for many layers at once. Returns the records
/// written last and their bytes.
pub(crate) fn remove_layers(
    paths: &Paths,
    ids: &[String],
    prepared: LayerWrite,
    json: &Path,
    lock: &WriteGuard<'_>,
) -> Result<(Vec<Arc<LayerRecord>>, Vec<u8>)> {
    if let Some(flagged) = &prepared.flagged {
        write_bytes(json, flagged, lock)?;
    }
    failpoint("after-flag");
    if let Some((first, rest)) = ids.split_first() {
        remove_data(paths, std::slice::from_ref(first))?;
        failpoint("mid-data");
        remove_data(paths, rest)?;
    }
    failpoint("after-data");
    write_bytes(json, &prepared.kept_bytes, lock)?;
    Ok((prepared.kept, prepared.kept_bytes))
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
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
        .min(items.len().div_ceil(PER_THREAD));
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

    let start = std::time::Instant::now();
    let mut snap = store.lock_snap();
    let locks = store.locks.write()?;
    reload_locked(&store.locks, &mut snap)?;
    let locked = start.elapsed();
    let before = std::sync::Arc::clone(&snap.catalog);
    let mut plan = plan(&snap, change)?;
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
    });
    let written = start.elapsed();
    let reloaded = reload_locked(&store.locks, &mut snap);
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
    drop(snap);
    let removed =
        !plan.layers.is_empty() || !plan.image_dirs.is_empty() || !plan.container_dirs.is_empty();
    if removed {
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
