//! LoadImages (SPEC §6): read and verify an archive into a staging, then commit every
//! image it holds in one change set.
//!
//! Names: the archive's names (normalised by [`crate::archive`]) go to their images;
//! `LoadOptions::default_names` (normalised as TagImage does) go to the first top-level
//! image the archive leaves unnamed. A name held by another image moves (the old image
//! may become dangling); if two images of one archive claim a name, the later one wins,
//! as `docker load` does. Re-loading an image that exists merges: new names first, then
//! its existing ones; its record (blobs, `added`) is kept and the new manifest digest is
//! added to its digests. Read-only images are never modified: a load that would take a
//! name from one, or add names to one, fails with `ReadOnlyImage`.
//!
//! Usage (SPEC §1 "Usage data"): every image of the archive (or the pull) counts as used
//! now: a new image gets `last_used` = its `added`, an existing one `last_used` = the
//! load's time, in the same change set (a read-only image keeps its record).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use crate::archive::{self, Found};
use crate::catalog::{Catalog, ChangeSet};
use crate::engine::Engine;
use crate::engine::ops::{Event, EventKind, LoadOptions, LoadReport, LoadedImage};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Image, ImageId};
use crate::reference::normalize_tag_name;

impl Engine {
    /// LoadImages (SPEC §6): reads a whole archive from `reader` (`docker-archive` or
    /// `oci-archive`, plain or gzip), verifies every blob, and stores its images, all or
    /// nothing. Malformed input, or a tar header or metadata entry over its limit →
    /// `InvalidArchive`; more than `EngineConfig::max_load_bytes` read, more than
    /// `max_load_unpacked_bytes` unpacked or `max_load_metadata_total_bytes` of metadata
    /// → `TooLarge` (metadata `limit`).
    pub fn load(&self, reader: &mut dyn Read, opts: &LoadOptions) -> Result<LoadReport> {
        let default_names = opts
            .default_names
            .iter()
            .map(|n| normalize_tag_name(n))
            .collect::<Result<Vec<_>>>()?;
        let store = Arc::clone(&self.store);
        let mut staging = store.stage()?;
        let limits = archive::Limits::of(&self.config);
        let files = archive::collect(reader, &limits, staging.as_mut())?;
        let mut found = archive::parse(&files, opts.format, store.as_ref(), staging.as_mut())?;
        drop(files);
        if !default_names.is_empty()
            && let Some(f) = found.iter_mut().find(|f| f.top_level && f.names.is_empty())
        {
            f.names = default_names;
        }

        let report = self.commit_found(found)?;
        drop(staging);
        Ok(report)
    }

    /// Commits images read and verified into a running staging (by a load or a pull),
    /// with LoadImages' naming rules, and emits their events.
    pub(crate) fn commit_found(&self, found: Vec<Found>) -> Result<LoadReport> {
        let _w = self.write_lock();
        let view = self.view();
        let plan = plan(&view, found, crate::time::now())?;
        self.commit(&view, &plan.change)?;
        let now = crate::time::now();
        let events: Vec<Event> = plan
            .report
            .images
            .iter()
            .map(|i| Event {
                kind: EventKind::Load,
                image_id: Some(i.id),
                name: i.names.first().cloned().unwrap_or_default(),
                time: now,
                reclaimed_bytes: 0,
            })
            .collect();
        self.emit(&events);
        Ok(plan.report)
    }
}

/// The change set of a load and its report.
struct Plan {
    change: ChangeSet,
    report: LoadReport,
}

fn read_only(id: &ImageId, what: &str) -> Error {
    Error::new(
        ErrorKind::ReadOnlyImage,
        format!("image {id} is read-only: cannot {what}"),
    )
    .with_meta("image_id", id.to_string())
}

/// Plans the commit of `found` (archive order) on `view`.
fn plan(view: &Catalog, found: Vec<Found>, now: i64) -> Result<Plan> {
    // Who gets each name: the last image of the archive claiming it.
    let mut owner: HashMap<String, ImageId> = HashMap::new();
    for f in &found {
        for n in &f.names {
            owner.insert(n.clone(), f.image.id);
        }
    }
    let mut records: Vec<Image> = Vec::new(); // new or changed records, archive order first
    let mut order: Vec<ImageId> = Vec::new();
    let mut in_archive: HashSet<ImageId> = HashSet::new();
    // New images are "added" one nanosecond apart in archive order, so that the store
    // order (`added`, then ID) is the archive order, as in podman's store (prune
    // processes a round's images in that order).
    let mut new_images = 0i64;
    for f in found {
        let id = f.image.id;
        let new_names: Vec<String> = f
            .names
            .into_iter()
            .filter(|n| owner.get(n) == Some(&id))
            .collect();
        let rec = match view.image(&id) {
            Some(old) => {
                let mut r = Image::clone(old);
                let mut names = new_names;
                names.extend(
                    old.names
                        .iter()
                        .filter(|n| !owner.contains_key(*n))
                        .cloned(),
                );
                r.names = dedup(names);
                for d in &f.image.digests {
                    if !r.digests.contains(d) {
                        r.digests.push(*d);
                    }
                }
                if !r.read_only {
                    r.last_used = Some(now);
                }
                r
            }
            None => {
                new_images += 1;
                let added = now + new_images - 1;
                Image {
                    names: new_names,
                    added,
                    last_used: Some(added),
                    ..f.image
                }
            }
        };
        order.push(id);
        in_archive.insert(id);
        records.push(rec);
    }
    // Images outside the archive that lose a name.
    let mut moved = Vec::new();
    let mut losers: Vec<ImageId> = Vec::new();
    let mut seen_losers: HashSet<ImageId> = HashSet::new();
    for (name, to) in &owner {
        if let Some(holder) = view.image_by_name(name)
            && holder.id != *to
        {
            moved.push(name.clone());
            if !in_archive.contains(&holder.id) && seen_losers.insert(holder.id) {
                losers.push(holder.id);
            }
        }
    }
    moved.sort();
    for id in &losers {
        if let Some(old) = view.image(id) {
            let mut r = Image::clone(old);
            r.names.retain(|n| owner.get(n).is_none_or(|o| o == id));
            records.push(r);
        }
    }
    let report = LoadReport {
        images: records
            .iter()
            .take(order.len())
            .map(|r| LoadedImage {
                id: r.id,
                names: r.names.clone(),
            })
            .collect(),
        moved_names: moved,
    };
    let mut changed = Vec::new();
    for r in records {
        match view.image(&r.id) {
            Some(old) if **old == r => {}
            Some(old) if old.read_only => {
                return Err(read_only(&r.id, "modify it by a load"));
            }
            _ => changed.push(r),
        }
    }
    Ok(Plan {
        change: order_puts(view, changed),
        report,
    })
}

fn dedup(names: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect()
}

/// Orders the puts so that no image takes a name before its old holder has let it go
/// (the catalog applies puts one by one). Images swapping names are deleted and put
/// again in the same change set (deletions apply first).
fn order_puts(view: &Catalog, mut pending: Vec<Image>) -> ChangeSet {
    let mut change = ChangeSet::default();
    // Current holder of each name, as the deletions and puts so far leave it.
    let mut holder: HashMap<String, Option<ImageId>> = HashMap::new();
    let current = |holder: &HashMap<String, Option<ImageId>>, n: &str| match holder.get(n) {
        Some(h) => *h,
        None => view.image_by_name(n).map(|i| i.id),
    };
    // Lets go of the names `id` holds in the view (its deletion or its put does that).
    let release = |holder: &mut HashMap<String, Option<ImageId>>, id: &ImageId| {
        for n in view
            .image(id)
            .map(|i| i.names.as_slice())
            .unwrap_or_default()
        {
            if current(holder, n) == Some(*id) {
                holder.insert(n.clone(), None);
            }
        }
    };
    while !pending.is_empty() {
        let ready = pending.iter().position(|r| {
            r.names
                .iter()
                .all(|n| current(&holder, n).is_none_or(|h| h == r.id))
        });
        let Some(i) = ready else {
            // A cycle (images swapping names): delete one of them first, which frees its
            // old names; it is put again once the names it wants are free.
            let Some(r) = pending
                .iter()
                .find(|r| !change.delete_images.contains(&r.id))
            else {
                break; // unreachable: every image freed its names; let the catalog judge
            };
            change.delete_images.push(r.id);
            release(&mut holder, &r.id);
            continue;
        };
        let r = pending.remove(i);
        release(&mut holder, &r.id);
        for n in &r.names {
            holder.insert(n.clone(), Some(r.id));
        }
        change.put_images.push(Arc::new(r));
    }
    change.put_images.extend(pending.into_iter().map(Arc::new));
    change
}
