//! Finishing interrupted removals (at open, and `check(repair)`), and the consistency
//! check.
//!
//! Under layers W → images W → containers W: every layer flagged `incomplete` is removed
//! exactly as c/storage's `layerStore.Load` does (its data, then its record; once we hold
//! layers W nobody is creating it). Layers in imaged's intent journal (an apply killed
//! between `images.json` and `layers.json`) are removed when still unused: not an image's
//! top or mapped layer, not a container's layer, not mounted, without a surviving child.
//! Unjournaled unreferenced layers are never swept (c/image creates layers before their
//! image record during pulls). The trash is emptied afterwards.

use std::collections::HashSet;

use imaged_core::digest::Digest;
use imaged_core::error::Result;
use imaged_core::store::CheckReport;

use crate::snapshot::Snapshot;
use crate::store::CStorageStore;
use crate::write::{
    clear_journal, journal_path, prepare_layers, read_journal, reload_locked, remove_layers,
};

/// Recovers the store (the caller holds the snapshot; this takes the write locks).
/// Returns the layers removed.
pub(crate) fn recover(store: &CStorageStore, snap: &mut Snapshot) -> Result<Vec<String>> {
    let locks = store.view.locks.write()?;
    reload_locked(&store.view.locks, snap)?;
    let journal = read_journal(&store.paths);
    let layers = &snap.layers.records;
    let mut ids: Vec<String> = layers
        .iter()
        .filter(|l| l.is_incomplete())
        .map(|l| l.id.clone())
        .collect();
    if !journal.layers.is_empty() {
        let mut used: HashSet<&str> = HashSet::new();
        for i in snap.images.records.iter() {
            used.insert(i.layer.as_str());
            used.extend(i.mapped_layers.iter().map(String::as_str));
        }
        for c in snap.containers.records.iter() {
            used.insert(c.layer.as_str());
        }
        let mounted = snap.mounted();
        for id in &journal.layers {
            if ids.contains(id) || !layers.iter().any(|l| &l.id == id) {
                continue;
            }
            let child = layers
                .iter()
                .any(|l| &l.parent == id && !ids.contains(&l.id));
            if used.contains(id.as_str()) || mounted.contains(id.as_str()) || child {
                continue;
            }
            ids.push(id.clone());
        }
    }
    if !ids.is_empty() {
        tracing::warn!(layers = ?ids, "containers-storage: finishing the removal of layers");
        let staged = prepare_layers(&snap.layers, &ids)?.stage(&snap.layers.json)?;
        remove_layers(&store.paths, &ids, staged, &snap.layers.json, &locks.layers)?;
    }
    if journal_path(&store.paths).exists() {
        clear_journal(&store.paths)?;
    }
    remove_temporaries(&store.paths);
    reload_locked(&store.view.locks, snap)?;
    drop(locks);
    Ok(ids)
}

/// Removes the `.tmp-<file><digits>` temporaries a killed writer left next to the JSON
/// files and the journal (an apply stages its files before renaming them). Under the
/// write locks no writer (c/storage's or ours) has one open.
fn remove_temporaries(paths: &crate::driver::Paths) {
    let files = [
        (paths.layers_dir(), "layers.json"),
        (paths.images_dir(), "images.json"),
        (paths.containers_dir(), "containers.json"),
        (paths.state_dir(), "cstorage-intent.json"),
        (paths.state_dir(), crate::usage::FILE),
    ];
    for (dir, base) in files {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name()
                .to_str()
                .is_some_and(|n| crate::atomic::is_temporary(n, base))
                && let Err(err) = std::fs::remove_file(e.path())
            {
                tracing::warn!(path = %e.path().display(), error = %err, "containers-storage: removing a leftover temporary");
            }
        }
    }
}

/// `Store::check`: image records against their files (big-data items with their sizes,
/// the layer chain, the driver's layer directories). `repair` only finishes incomplete
/// layers and empties the trash; it never deletes podman's data otherwise.
pub(crate) fn check(store: &CStorageStore, repair: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    if repair {
        let mut snap = store.lock_snap();
        let removed = recover(store, &mut snap)?;
        report.orphans_removed = removed.len();
        store.publish(&snap);
        snap.usage.save();
        drop(snap);
        if let Err(e) = store.paths.empty_trash() {
            report.problems.push(format!("emptying the trash: {e}"));
        }
    }
    let _ = store.refresh();
    let snap = store.lock_snap();
    let by_id: std::collections::HashMap<&str, &crate::schema::LayerRecord> = snap
        .layers
        .records
        .iter()
        .map(|l| (l.id.as_str(), l.as_ref()))
        .collect();
    for l in snap.layers.records.iter() {
        if l.is_incomplete() {
            report
                .problems
                .push(format!("layer {}: flagged incomplete", l.id));
        }
    }
    for rec in snap.images.records.iter() {
        report.images_checked += 1;
        let mut broken = false;
        for key in &rec.big_data_names {
            report.blobs_checked += 1;
            let p = snap.paths.image_big_data(&rec.id, key);
            match std::fs::metadata(&p) {
                Ok(m) => {
                    if let Some(want) = rec.big_data_sizes.get(key)
                        && u64::try_from(*want).ok() != Some(m.len())
                    {
                        report.problems.push(format!(
                            "image {}: big-data {key} is {} bytes, its record says {want}",
                            rec.id,
                            m.len()
                        ));
                        broken = true;
                    }
                }
                Err(_) => {
                    report
                        .problems
                        .push(format!("image {}: big-data {key} missing", rec.id));
                    broken = true;
                }
            }
        }
        let mut cur = (!rec.layer.is_empty()).then_some(rec.layer.as_str());
        while let Some(id) = cur {
            report.blobs_checked += 1;
            let Some(l) = by_id.get(id) else {
                report
                    .problems
                    .push(format!("image {}: layer {id} missing", rec.id));
                broken = true;
                break;
            };
            if !snap.paths.layer_data(id).exists() {
                report
                    .problems
                    .push(format!("image {}: data of layer {id} missing", rec.id));
                broken = true;
            }
            cur = (!l.parent.is_empty()).then_some(l.parent.as_str());
        }
        if broken && let Ok(d) = Digest::from_hex(&rec.id) {
            report.broken_images.push(d);
        }
    }
    Ok(report)
}
