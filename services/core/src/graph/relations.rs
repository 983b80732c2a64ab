//! Parent/child questions the removal planners ask while they change a working catalog.
//!
//! Two answers to the same questions: [`TreeRelations`] over a prebuilt [`Tree`] (prune,
//! or a removal when the engine's cached tree is current) and the persistent
//! [`crate::graph::index::LayerIndex`] (a removal right after another write: no full build).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::graph::tree::Tree;
use crate::model::{Image, ImageId};

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
