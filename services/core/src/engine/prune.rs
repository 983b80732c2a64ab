//! PruneImages (SPEC §4): podman's selection and fixpoint, with per-image errors instead of
//! an aborted prune, and Docker's reclaimed-bytes accounting (each released blob once).
//!
//! A round selects on one view and its tree, removes the whole selection (children before
//! parents, now-dangling parents with them) in ONE change set, and commits; the next round
//! selects again on the new view, until a round removes nothing. Prunes are serialised.

use std::collections::HashSet;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::digest::Digest;
use crate::engine::Engine;
use crate::engine::ops::{EventKind, PruneFailure, PruneOptions, PruneReport, Record};
use crate::engine::pinned::Pinned;
use crate::engine::remove::plan::Planner;
use crate::error::{Error, ErrorKind, Result};
use crate::fasthash::FastSet;
use crate::filter::{self, Filters};
use crate::graph::index::{IndexRelations, LayerIndex};
use crate::graph::relations::{Relations, TreeRelations};
use crate::graph::tree::Tree;
use crate::graph::{Facts, IndexFacts, TreeFacts};
use crate::model::{Image, ImageId};

/// How many times a prune round is planned again after the store refused it as stale
/// (another program changed the store meanwhile) before the prune gives up.
const MAX_STALE_ROUNDS: u32 = 5;

/// Fewer images than this (per half) are selected on one thread.
const PARALLEL_MIN: usize = 4096;

impl Engine {
    /// PruneImages (SPEC §4). `deadline`: give up waiting for a running prune then
    /// (`DeadlineExceeded`).
    pub fn prune(&self, opts: &PruneOptions, deadline: Option<Instant>) -> Result<PruneReport> {
        let specs = filter::parse(&opts.filters, "filters")?;
        let _serial = self.acquire_prune(deadline)?;
        let pinned = &self.pinned;
        let start = self.view();
        let filters = Filters::compile(
            &specs,
            &opts.filters,
            "filters",
            &start,
            &self.config,
            crate::time::now(),
        )?;
        let mut report = PruneReport::default();
        let mut failed: HashSet<ImageId> = HashSet::new();
        let mut dry_view: Option<Arc<Catalog>> = None;
        let mut stale_rounds = 0;
        // What the previous round left for the next one to look at.
        let mut carried: Option<Carry> = None;
        // Catalogs and trees of earlier rounds: freed off the request's path.
        let mut spent: Vec<Box<dyn Send>> = Vec::new();
        loop {
            let t0 = Instant::now();
            let _w = (!opts.dry_run).then(|| self.write_lock());
            let view = dry_view.clone().unwrap_or_else(|| self.view());
            let (selection, rel, tree, index) = match carried.take() {
                // After a round of ours, and nothing else changed the store: only what
                // that round's deletions touched can newly qualify.
                Some(carry) if Arc::ptr_eq(&carry.after, &view) => {
                    let selection = select_touched(&view, &carry, &filters, opts, pinned, &failed);
                    let rel: Box<dyn Relations> =
                        Box::new(IndexRelations::new(Arc::clone(&carry.index)));
                    (selection, rel, None, Some(carry.index))
                }
                _ => {
                    let tree = if opts.dry_run && dry_view.is_some() {
                        Some(Arc::new(Tree::build(&view)))
                    } else if opts.all {
                        Some(self.trees.get(&view))
                    } else {
                        // After a write the cached tree is stale and a new one costs ~0.3 s
                        // at 100k images: a dangling prune selects on the layer index.
                        self.trees.peek(&view)
                    };
                    match tree {
                        Some(tree) => {
                            let selection = select(&tree, &filters, opts, pinned, &failed)
                                .into_iter()
                                .map(|i| tree.image(i).id)
                                .collect();
                            let rel: Box<dyn Relations> =
                                Box::new(TreeRelations::new(Arc::clone(&tree)));
                            (selection, rel, Some(tree), None)
                        }
                        None => {
                            let index = self.layers.get(&view);
                            let selection =
                                select_indexed(&view, &index, &filters, opts, pinned, &failed);
                            let rel: Box<dyn Relations> =
                                Box::new(IndexRelations::new(Arc::clone(&index)));
                            (selection, rel, None, Some(index))
                        }
                    }
                }
            };
            let t_select = t0.elapsed();
            if selection.is_empty() {
                break;
            }
            let mut p = Planner::bulk(&view, rel.as_ref(), pinned);
            for id in &selection {
                if p.image(id).is_none() {
                    continue;
                }
                if let Err(error) = prune_one(&mut p, id) {
                    failed.insert(*id);
                    report.errors.push(PruneFailure {
                        image_id: *id,
                        error,
                    });
                }
            }
            let plan = p.finish()?;
            drop(rel);
            let t_plan = t0.elapsed();
            if plan.change.is_empty() {
                break;
            }
            let removed: Vec<Arc<Image>> = plan
                .change
                .delete_images
                .iter()
                .filter_map(|id| view.image(id).cloned())
                .collect();
            // With `all` and no `dangling`/`intermediate` filter, no criterion asks what
            // a deletion changes for the images left: nothing can newly qualify.
            let again = !removed.is_empty()
                && (!opts.all || filters.has_dangling || filters.has_intermediate);
            // The parents of what the round removes are found on its view while the
            // store commits (the second core is idle then).
            let parents_here = || parents_of(&view, index.as_deref(), tree.as_deref(), &removed);
            let (committed, parents) = std::thread::scope(|s| {
                let helper = again.then(|| s.spawn(|| (parents_here(), crate::work::take())));
                let committed = if opts.dry_run {
                    view.apply(&plan.change).map(|applied| {
                        let bytes = applied.released.iter().map(|(_, s)| s).sum::<u64>();
                        (Arc::new(applied.catalog), bytes)
                    })
                } else {
                    self.apply_plan(&view, &plan, false)
                        .map(|bytes| (self.view(), bytes))
                };
                let parents = helper.map(|h| match h.join() {
                    Ok((parents, steps)) => {
                        crate::work::add(steps);
                        parents
                    }
                    // Never expected: the same work again, on this thread.
                    Err(_) => parents_here(),
                });
                (committed, parents)
            });
            let after = match committed {
                Ok((after, bytes)) => {
                    report.reclaimed_bytes += bytes;
                    if opts.dry_run {
                        dry_view = Some(Arc::clone(&after));
                    }
                    after
                }
                // Another program changed the store since this round's view (a store
                // with other writers refuses a stale plan whole): select again on a
                // fresh view, a bounded number of times.
                Err(e)
                    if !opts.dry_run
                        && e.kind == ErrorKind::ConcurrentModification
                        && stale_rounds < MAX_STALE_ROUNDS =>
                {
                    stale_rounds += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let t_commit = t0.elapsed();
            // A view one generation on is this round's commit and nothing else (as the
            // engine's layer index assumes); otherwise select on everything again.
            let ours = opts.dry_run || after.generation() == view.generation() + 1;
            let mut full_again = again && !(ours && parents.is_some());
            if let Some(parents) = parents.filter(|_| ours) {
                let index = if opts.dry_run {
                    // The dry run's catalog is no store's view: advance an index by hand.
                    let before = match index {
                        Some(ix) => ix,
                        None => self.layers.get(&view),
                    };
                    Arc::new(before.advance(&view, &plan.change))
                } else {
                    self.layers.get(&after)
                };
                let touched = touched_by(&after, &index, parents, &removed);
                if !touched.is_empty() {
                    carried = Some(Carry {
                        after,
                        index,
                        touched,
                    });
                }
            }
            for r in &plan.records {
                if let Record::Deleted(id) = r {
                    report.deleted_sizes.push(super::remove::batch::image_size(
                        &view,
                        tree.as_deref(),
                        id,
                    ));
                }
            }
            report.records.extend(plan.records);
            report.removed_containers.extend(plan.removed_containers);
            tracing::debug!(
                tree = tree.is_some(),
                selected = selection.len(),
                deleted = plan.change.delete_images.len(),
                select_ms = t_select.as_secs_f64() * 1e3,
                plan_ms = (t_plan - t_select).as_secs_f64() * 1e3,
                commit_ms = (t_commit - t_plan).as_secs_f64() * 1e3,
                rest_ms = (t0.elapsed() - t_commit).as_secs_f64() * 1e3,
                again = carried.is_some() || full_again,
                "prune round"
            );
            spent.push(Box::new((view, tree, removed)));
            if carried.is_none() && !std::mem::take(&mut full_again) {
                break;
            }
        }
        for r in &report.records {
            match r {
                Record::Deleted(id) => report.deleted_images.push(*id),
                Record::Untagged(n) => report.untagged.push(n.clone()),
                // Prunes follow the PODMAN rules: no layer records.
                Record::DeletedLayer(_) => {}
            }
        }
        if !opts.dry_run {
            self.emit(&[crate::engine::ops::Event {
                kind: EventKind::Prune,
                image_id: None,
                name: String::new(),
                time: crate::time::now(),
                reclaimed_bytes: report.reclaimed_bytes,
            }]);
            // The tree of a view this prune replaced holds every image it deleted.
            if let Some(stale) = self.trees.take_stale(&self.view()) {
                spent.push(Box::new(stale));
            }
        }
        spent.push(Box::new((start, dry_view)));
        crate::reclaim::later(spent);
        Ok(report)
    }

    pub(crate) fn acquire_prune(&self, deadline: Option<Instant>) -> Result<MutexGuard<'_, ()>> {
        let Some(deadline) = deadline else {
            return Ok(self.prune_lock());
        };
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(g) = self.try_prune_lock() {
                return Ok(g);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::DeadlineExceeded,
                    "a prune operation is already running; the deadline passed while waiting",
                ));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

/// What a round leaves the next: the catalog after it, that catalog's layer index, and
/// the images left whose facts the round's deletions changed.
struct Carry {
    after: Arc<Catalog>,
    index: Arc<LayerIndex>,
    touched: Vec<ImageId>,
}

/// Every qualifying parent, in `view`, of each of `removed` (images of `view`): from the
/// round's tree when it had one, else from `view`'s layer `index`.
fn parents_of(
    view: &Catalog,
    index: Option<&LayerIndex>,
    tree: Option<&Tree>,
    removed: &[Arc<Image>],
) -> Vec<ImageId> {
    let mut parents = Vec::new();
    for img in removed {
        match (
            tree.and_then(|t| t.index_of(&img.id).map(|i| (t, i))),
            index,
        ) {
            (Some((t, i)), _) => parents.extend(t.all_parents(i).map(|p| t.image(p).id)),
            (None, Some(index)) => parents.extend(index.parents(view, img)),
            // A round has a tree or an index; a tree without the image cannot be.
            (None, None) => {}
        }
    }
    parents
}

/// The images of `after` whose facts the deletion of `removed` changed: every qualifying
/// parent of a removed image (`parents`: they lost a child) and every instance of a
/// removed manifest list that no list names any more. Any other image left has the
/// facts, the names, the containers and the pinning it had in the round that removed
/// them, so a round selecting on every image would select it exactly when that round
/// did (it would have been deleted or have failed then).
fn touched_by(
    after: &Catalog,
    index: &LayerIndex,
    mut touched: Vec<ImageId>,
    removed: &[Arc<Image>],
) -> Vec<ImageId> {
    let unlisted: FastSet<Digest> = removed
        .iter()
        .filter_map(|img| img.instances.as_ref())
        .flatten()
        .map(|x| x.digest)
        .filter(|d| !index.is_listed(d))
        .collect();
    if !unlisted.is_empty() {
        touched.extend(
            after
                .images()
                .filter(|img| img.digests.iter().any(|d| unlisted.contains(d)))
                .map(|img| img.id),
        );
    }
    touched.retain(|id| after.image(id).is_some());
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// [`select`] of a round after one of ours: the criteria asked of the images the
/// previous round touched only ([`touched_by`]), on the layer index, in the same order.
fn select_touched(
    view: &Catalog,
    carry: &Carry,
    filters: &Filters,
    opts: &PruneOptions,
    pinned: &Pinned,
    failed: &HashSet<ImageId>,
) -> Vec<ImageId> {
    let index = &carry.index;
    let mut out: Vec<&Arc<Image>> = carry
        .touched
        .iter()
        .filter_map(|id| view.image(id))
        .filter(|img| {
            let facts = IndexFacts::new(view, index, img);
            eligible(img, &facts, filters, opts, pinned, failed)
        })
        .collect();
    if opts.all {
        // Children before parents, as [`select`]: by depth in the parent chain.
        let mut keyed: Vec<(u32, &Arc<Image>)> = out
            .into_iter()
            .map(|img| (index_depth(view, index, img), img))
            .collect();
        keyed.sort_unstable_by(|(da, a), (db, b)| {
            db.cmp(da).then((a.added, a.id).cmp(&(b.added, b.id)))
        });
        return keyed.into_iter().map(|(_, img)| img.id).collect();
    }
    out.sort_unstable_by_key(|img| (img.added, img.id));
    out.into_iter().map(|img| img.id).collect()
}

/// Distance of `img` from the root of its parent chain ([`depths`] without a tree).
fn index_depth(view: &Catalog, index: &LayerIndex, img: &Image) -> u32 {
    let mut depth = 0;
    let mut cur = index.parent(view, img);
    while let Some(p) = cur.and_then(|id| view.image(&id)) {
        depth += 1;
        cur = index.parent(view, p);
    }
    depth
}

/// Whether `img` qualifies for a prune round: not read-only, not pinned, unused (or, with
/// `external`, used by external containers only), dangling unless `all` or a user
/// `dangling` filter, never intermediate unless `all`, not failed earlier, and passing
/// the filters. Its derived facts come from a tree or from the layer index.
fn eligible(
    img: &Image,
    facts: &dyn Facts,
    filters: &Filters,
    opts: &PruneOptions,
    pinned: &Pinned,
    failed: &HashSet<ImageId>,
) -> bool {
    // Without `all` or a `dangling` filter only dangling images qualify, and a named
    // image is never dangling: that cheap test first spares a prune of a large store the
    // containers lookup of every named image (same result: the terms have no effects).
    if !(opts.all || filters.has_dangling || img.names.is_empty()) {
        return false;
    }
    let users = facts.containers();
    !img.read_only
        && (users.is_empty() || (opts.external && users.iter().all(|c| c.external)))
        && (opts.all || filters.has_dangling || facts.dangling())
        && (opts.all || !facts.intermediate())
        && !failed.contains(&img.id)
        && !pinned.is_pinned(img)
        && filters.matches_facts(img, facts)
}

/// The images a round prunes ([`eligible`]), in store order (children before parents
/// with `all`).
fn select(
    tree: &Tree,
    filters: &Filters,
    opts: &PruneOptions,
    pinned: &Pinned,
    failed: &HashSet<ImageId>,
) -> Vec<u32> {
    let mut out: Vec<u32> = (0..tree.len() as u32)
        .filter(|&i| {
            let facts = TreeFacts { tree, i };
            eligible(tree.image(i), &facts, filters, opts, pinned, failed)
        })
        .collect();
    // Store order, as podman processes a round (the order images were added; the tree's
    // own order follows a hash map and would change from one process to the next).
    let store_order = |i: u32| (tree.image(i).added, tree.image(i).id);
    if opts.all {
        let depth = depths(tree);
        out.sort_unstable_by(|&a, &b| {
            depth[b as usize]
                .cmp(&depth[a as usize])
                .then(store_order(a).cmp(&store_order(b)))
        });
    } else {
        out.sort_unstable_by_key(|&i| store_order(i));
    }
    out
}

/// [`select`] for a dangling prune (not `all`) without a tree: the same criteria asked of
/// the persistent layer index, in store order.
fn select_indexed(
    view: &Catalog,
    index: &LayerIndex,
    filters: &Filters,
    opts: &PruneOptions,
    pinned: &Pinned,
    failed: &HashSet<ImageId>,
) -> Vec<ImageId> {
    let keep = |img: &&&Arc<Image>| {
        let facts = IndexFacts::new(view, index, img);
        eligible(img, &facts, filters, opts, pinned, failed)
    };
    let all: Vec<&Arc<Image>> = view.images().collect();
    // Two halves on two threads: ~0.13 s at 100k images on one.
    let (first, second) = all.split_at(all.len() / 2);
    let mut out: Vec<&Arc<Image>> = if first.len() < PARALLEL_MIN {
        all.iter().filter(&keep).copied().collect()
    } else {
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let rest: Vec<&Arc<Image>> = second.iter().filter(&keep).copied().collect();
                (rest, crate::work::take())
            });
            let mut out: Vec<&Arc<Image>> = first.iter().filter(&keep).copied().collect();
            match other.join() {
                Ok((rest, steps)) => {
                    crate::work::add(steps);
                    out.extend(rest);
                }
                // Never expected: the same work again, on this thread.
                Err(_) => out.extend(second.iter().filter(&keep).copied()),
            }
            out
        })
    };
    out.sort_unstable_by_key(|img| (img.added, img.id));
    out.into_iter().map(|img| img.id).collect()
}

/// Distance from the root of each image's parent chain, O(N) with memoisation.
fn depths(tree: &Tree) -> Vec<u32> {
    const UNKNOWN: u32 = u32::MAX;
    let mut depth = vec![UNKNOWN; tree.len()];
    let mut stack = Vec::new();
    for i in 0..tree.len() as u32 {
        let mut cur = Some(i);
        while let Some(c) = cur {
            if depth[c as usize] != UNKNOWN {
                break;
            }
            stack.push(c);
            cur = tree.parent(c);
        }
        let mut d = cur.map_or(0, |c| depth[c as usize] + 1);
        while let Some(c) = stack.pop() {
            depth[c as usize] = d;
            d += 1;
        }
    }
    depth
}

/// Removes one selected image whole: its (external) containers, itself, its dangling
/// parents. Checks before changing anything.
fn prune_one(p: &mut Planner<'_>, id: &ImageId) -> Result<()> {
    let Some(img) = p.image(id) else {
        return Ok(());
    };
    p.remove_stopped_containers(&img)?;
    let parent = p.rel.parent(p.work(), &img);
    p.delete(id, None)?;
    p.prune_parents(parent)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::engine::ops::PruneOptions;
    use crate::error::ErrorKind;
    use crate::{Engine, MemoryStore};

    #[test]
    fn a_second_prune_gives_up_at_its_deadline() {
        let e = Engine::new(Arc::new(MemoryStore::new()), Default::default());
        let running = e.prune_lock();
        let soon = Instant::now() + Duration::from_millis(20);
        let err = e.prune(&PruneOptions::default(), Some(soon)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::DeadlineExceeded);
        drop(running);
        let later = Instant::now() + Duration::from_secs(30);
        assert!(e.prune(&PruneOptions::default(), Some(later)).is_ok());
    }
}
