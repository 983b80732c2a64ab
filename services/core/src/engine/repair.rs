//! Repairs shared by backends' consistency checks.

use crate::catalog::{Catalog, ChangeSet};
use crate::digest::Digest;

/// The change that drops `broken` images and the containers using them.
pub fn drop_broken(view: &Catalog, broken: &[Digest]) -> ChangeSet {
    let mut change = ChangeSet::default();
    for id in broken {
        if view.image(id).is_some() {
            change.delete_images.push(*id);
        }
    }
    for c in view.containers() {
        if broken.contains(&c.image_id) {
            change.delete_containers.push(c.id.clone());
        }
    }
    change
}
