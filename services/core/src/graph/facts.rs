//! What filters and prune's selection ask of one image ([`Facts`]): its containers,
//! whether it is dangling or intermediate. Answered from a built [`Tree`] or from the
//! persistent [`LayerIndex`] (after a write, without building a tree).

use std::cell::OnceCell;
use std::sync::Arc;

use super::index::LayerIndex;
use super::relations::Relations as _;
use super::tree::Tree;
use crate::catalog::Catalog;
use crate::model::{Container, Image};

/// The derived facts of one image that filters and prune's selection ask about.
pub trait Facts {
    /// The containers using the image.
    fn containers(&self) -> &[Arc<Container>];
    /// libimage dangling: no names, no children, not in a manifest list.
    fn dangling(&self) -> bool;
    /// libimage intermediate: no names and at least one child.
    fn intermediate(&self) -> bool;
}

/// The facts of image `i` of a tree.
pub struct TreeFacts<'a> {
    /// The tree.
    pub tree: &'a Tree,
    /// The image's index in it.
    pub i: u32,
}

impl Facts for TreeFacts<'_> {
    fn containers(&self) -> &[Arc<Container>] {
        self.tree.containers(self.i)
    }
    fn dangling(&self) -> bool {
        self.tree.dangling(self.i)
    }
    fn intermediate(&self) -> bool {
        self.tree.intermediate(self.i)
    }
}

/// The facts of an image of a catalog, from its persistent layer index (no tree).
pub struct IndexFacts<'a> {
    view: &'a Catalog,
    index: &'a LayerIndex,
    img: &'a Image,
    /// Whether the image has children, once asked (a dangling prune asks twice).
    has_children: OnceCell<bool>,
}

impl<'a> IndexFacts<'a> {
    /// The facts of `img` in `view`, whose layer index is `index`.
    pub fn new(view: &'a Catalog, index: &'a LayerIndex, img: &'a Image) -> Self {
        Self {
            view,
            index,
            img,
            has_children: OnceCell::new(),
        }
    }

    fn has_children(&self) -> bool {
        *self
            .has_children
            .get_or_init(|| self.index.has_children(self.view, self.img))
    }
}

impl Facts for IndexFacts<'_> {
    fn containers(&self) -> &[Arc<Container>] {
        self.view.containers_of(&self.img.id)
    }
    fn dangling(&self) -> bool {
        self.img.names.is_empty()
            && !self.has_children()
            && !self.index.in_manifest_list(self.view, self.img)
    }
    fn intermediate(&self) -> bool {
        self.img.names.is_empty() && self.has_children()
    }
}
