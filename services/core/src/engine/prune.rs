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
use crate::engine::Engine;
use crate::engine::ops::{EventKind, PruneFailure, PruneOptions, PruneReport, Record};
use crate::engine::pinned::Pinned;
use crate::engine::remove::plan::Planner;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{self, Filters};
use crate::graph::index::LayerIndex;
use crate::graph::relations::{Relations, TreeRelations};
use crate::graph::tree::Tree;
use crate::graph::{Facts, IndexFacts, TreeFacts};
use crate::model::{Image, ImageId};

/// How many times a prune round is planned again after the store refused it as stale
/// (another program changed the store meanwhile) before the prune gives up.
const MAX_STALE_ROUNDS: u32 = 5;

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
        loop {
            let _w = (!opts.dry_run).then(|| self.write_lock());
            let view = dry_view.clone().unwrap_or_else(|| self.view());
            let tree = if opts.dry_run && dry_view.is_some() {
                Some(Arc::new(Tree::build(&view)))
            } else if opts.all {
                Some(self.trees.get(&view))
            } else {
                // After a write the cached tree is stale and a new one costs ~1 s at
                // 100k images: a dangling prune selects on the persistent layer index.
                self.trees.peek(&view)
            };
            let index = match tree {
                Some(_) => None,
                None => Some(self.layers.get(&view)),
            };
            let (selection, rel): (Vec<ImageId>, Box<dyn Relations>) = match (&tree, &index) {
                (Some(tree), _) => (
                    select(tree, &filters, opts, pinned, &failed)
                        .into_iter()
                        .map(|i| tree.image(i).id)
                        .collect(),
                    Box::new(TreeRelations::new(Arc::clone(tree))),
                ),
                (None, Some(index)) => (
                    select_indexed(&view, index, &filters, opts, pinned, &failed),
                    Box::new(crate::graph::index::IndexRelations(Arc::clone(index))),
                ),
                (None, None) => break,
            };
            if selection.is_empty() {
                break;
            }
            let mut p = Planner::bulk(&view, rel.as_ref(), pinned);
            for id in selection {
                if p.image(&id).is_none() {
                    continue;
                }
                if let Err(error) = prune_one(&mut p, &id) {
                    failed.insert(id);
                    report.errors.push(PruneFailure {
                        image_id: id,
                        error,
                    });
                }
            }
            let plan = p.finish()?;
            if plan.change.is_empty() {
                break;
            }
            if opts.dry_run {
                let applied = view.apply(&plan.change)?;
                report.reclaimed_bytes += applied.released.iter().map(|(_, s)| s).sum::<u64>();
                dry_view = Some(Arc::new(applied.catalog));
            } else {
                match self.apply_plan(&view, &plan, false) {
                    Ok(n) => report.reclaimed_bytes += n,
                    // Another program changed the store since this round's view (a store
                    // with other writers refuses a stale plan whole): select again on a
                    // fresh view, a bounded number of times.
                    Err(e)
                        if e.kind == ErrorKind::ConcurrentModification
                            && stale_rounds < MAX_STALE_ROUNDS =>
                    {
                        stale_rounds += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            // On the index another round is cheap and decides exactly.
            let again = tree.as_ref().is_none_or(|tree| {
                next_round_needed(tree, &plan.records, &filters, opts, pinned, &failed)
            });
            for r in &plan.records {
                if let Record::Deleted(id) = r {
                    report
                        .deleted_sizes
                        .push(super::remove::batch::image_size(&view, id));
                }
            }
            report.records.extend(plan.records);
            report.removed_containers.extend(plan.removed_containers);
            if !again {
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
        }
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

/// Whether another round could select an image this one did not, judged on this round's
/// tree without building the next one (a full tree costs ~1 s at 100k images).
///
/// A survivor's read-only flag, pinning, containers and the filters other than
/// `dangling`/`intermediate`/`reference` are the same in the next round, so only an image
/// whose children, manifest-list membership or names changed can newly qualify: the
/// parents of deleted images and the instances of deleted manifest lists (a round
/// untags nothing, but an untag record makes us go on anyway). With `all`, the
/// dangling/intermediate facts do not matter to the selection and nothing can newly
/// qualify; otherwise such an image qualifies only when it lost its last child and
/// passes every other criterion. Conservative: when unsure, go on (the next round then
/// builds its tree and decides exactly, as before).
fn next_round_needed(
    tree: &Tree,
    records: &[Record],
    filters: &Filters,
    opts: &PruneOptions,
    pinned: &Pinned,
    failed: &HashSet<ImageId>,
) -> bool {
    if filters.has_dangling || filters.has_intermediate {
        return true;
    }
    let mut deleted: HashSet<u32> = HashSet::with_capacity(records.len());
    for r in records {
        match r {
            Record::Deleted(id) => match tree.index_of(id) {
                Some(i) => {
                    deleted.insert(i);
                }
                None => return true,
            },
            Record::Untagged(_) | Record::DeletedLayer(_) => return true,
        }
    }
    if opts.all {
        return false;
    }
    let mut touched: Vec<u32> = Vec::new();
    for &i in &deleted {
        touched.extend(tree.all_parents(i));
        for x in tree.image(i).instances.iter().flatten() {
            touched.extend(tree.instance_image(&x.digest));
        }
    }
    touched.into_iter().any(|t| {
        let facts = AfterRound {
            tree,
            i: t,
            deleted: &deleted,
        };
        !deleted.contains(&t) && eligible(tree.image(t), &facts, filters, opts, pinned, failed)
    })
}

/// The facts of a survivor of a round, read from the round's tree: its children are
/// those not deleted. Conservative where it cannot tell: manifest-list membership is not
/// asked (an image still in a list is only taken for dangling, which means one more
/// exact round).
struct AfterRound<'a> {
    tree: &'a Tree,
    i: u32,
    deleted: &'a HashSet<u32>,
}

impl AfterRound<'_> {
    fn childless(&self) -> bool {
        self.tree
            .children(self.i)
            .iter()
            .all(|c| self.deleted.contains(c))
    }
}

impl Facts for AfterRound<'_> {
    fn containers(&self) -> &[Arc<crate::model::Container>] {
        // Containers go only with their image, and this image survived.
        self.tree.containers(self.i)
    }
    fn dangling(&self) -> bool {
        self.tree.image(self.i).names.is_empty() && self.childless()
    }
    fn intermediate(&self) -> bool {
        self.tree.image(self.i).names.is_empty() && !self.childless()
    }
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
    let mut out: Vec<&Arc<Image>> = view
        .images()
        .filter(|img| {
            let facts = IndexFacts { view, index, img };
            eligible(img, &facts, filters, opts, pinned, failed)
        })
        .collect();
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
