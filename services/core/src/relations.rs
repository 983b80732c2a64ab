//! Parent/child questions the removal planners ask while they change a working catalog.
//!
//! Two answers to the same questions: [`TreeRelations`] over a prebuilt [`Tree`] (prune,
//! or a removal when the engine's cached tree is current) and [`ScanRelations`], which
//! scans the working catalog with cheap comparisons and needs no index build (a single
//! removal right after another write).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::model::{Image, ImageId};
use crate::tree::{Tree, is_parent};
use crate::work;

/// What the planners need to know about the images around the one they remove.
pub trait Relations {
    /// The parent of `img` (asked before it is removed).
    fn parent(&self, work: &Catalog, img: &Image) -> Option<ImageId>;
    /// Whether any image still in `work` is a child of `img`.
    fn has_children(&self, work: &Catalog, img: &Image) -> bool;
    /// Whether `img` is an instance of a manifest list in `work`.
    fn in_manifest_list(&self, work: &Catalog, img: &Image) -> bool;
    /// `id` was deleted from the working catalog.
    fn deleted(&self, id: &ImageId);
}

/// Relations read from a tree built on the planner's starting catalog.
#[derive(Debug)]
pub struct TreeRelations {
    tree: Arc<Tree>,
    gone_children: RefCell<HashMap<u32, u32>>,
}

impl TreeRelations {
    /// Relations of `tree`.
    pub fn new(tree: Arc<Tree>) -> Self {
        Self {
            tree,
            gone_children: RefCell::new(HashMap::new()),
        }
    }
}

impl Relations for TreeRelations {
    fn parent(&self, _work: &Catalog, img: &Image) -> Option<ImageId> {
        let i = self.tree.index_of(&img.id)?;
        self.tree.parent(i).map(|p| self.tree.image(p).id)
    }

    fn has_children(&self, _work: &Catalog, img: &Image) -> bool {
        let Some(i) = self.tree.index_of(&img.id) else {
            return false;
        };
        let gone = self.gone_children.borrow().get(&i).copied().unwrap_or(0);
        self.tree.children(i).len() > gone as usize
    }

    fn in_manifest_list(&self, _work: &Catalog, img: &Image) -> bool {
        self.tree
            .index_of(&img.id)
            .is_some_and(|i| self.tree.in_manifest_list(i))
    }

    fn deleted(&self, id: &ImageId) {
        if let Some(i) = self.tree.index_of(id) {
            let mut gone = self.gone_children.borrow_mut();
            for p in self.tree.all_parents(i) {
                *gone.entry(p).or_insert(0) += 1;
            }
        }
    }
}

/// Relations found by scanning the working catalog (no index build).
#[derive(Debug, Default)]
pub struct ScanRelations;

impl Relations for ScanRelations {
    fn parent(&self, work: &Catalog, img: &Image) -> Option<ImageId> {
        let mut best: Option<&Arc<Image>> = None;
        for p in work.images() {
            work::add(1);
            if quick_reject(p, img) || !is_parent(p, img) {
                continue;
            }
            let class = |x: &Image| usize::from(x.layers.len() != img.layers.len());
            if best.is_none_or(|b| (class(p), p.id) < (class(b), b.id)) {
                best = Some(p);
            }
        }
        best.map(|p| p.id)
    }

    fn has_children(&self, work: &Catalog, img: &Image) -> bool {
        work.images().any(|c| {
            work::add(1);
            !quick_reject(img, c) && is_parent(img, c)
        })
    }

    fn in_manifest_list(&self, work: &Catalog, img: &Image) -> bool {
        work.images().any(|l| {
            l.instances
                .as_ref()
                .is_some_and(|v| v.iter().any(|x| img.digests.contains(&x.digest)))
        })
    }

    fn deleted(&self, _id: &ImageId) {}
}

/// Cheap length checks before comparing layers and history.
fn quick_reject(p: &Image, c: &Image) -> bool {
    c.config.history.len() != p.config.history.len() + 1
        || !(c.layers.len() == p.layers.len() || c.layers.len() == p.layers.len() + 1)
}
