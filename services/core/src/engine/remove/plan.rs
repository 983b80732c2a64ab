//! The removal planner: the steps every removal is made of (untag a name, remove container
//! records, delete an image, prune now-dangling parents), applied to a working copy of the
//! catalog, and the one [`ChangeSet`] that moves the starting view to the final state.
//!
//! Planners check every precondition of a step before changing anything, so an error never
//! leaves a half-planned image behind; the engine commits nothing on error.

use std::collections::HashSet;
use std::sync::Arc;

use crate::catalog::{Applied, Catalog, ChangeSet};
use crate::engine::ops::{EventKind, Record};
use crate::engine::pinned::Pinned;
use crate::error::{Error, Result};
use crate::fasthash::FastSet;
use crate::graph::relations::Relations;
use crate::model::{Container, Image, ImageId};

/// A planned removal.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The change from the starting view.
    pub change: ChangeSet,
    /// Records in order.
    pub records: Vec<Record>,
    /// Container records removed.
    pub removed_containers: Vec<String>,
    /// Events to publish after the commit: (kind, image, name).
    pub events: Vec<(EventKind, ImageId, String)>,
    /// The planner's working catalog at the end, as [`Catalog::apply`] of `change` to the
    /// starting view gives it (one generation on, the blobs released): the store may
    /// publish it instead of applying the change again. `None` for bulk planners.
    pub applied: Option<Applied>,
}

/// Plans removals on a working copy of `view`.
pub(crate) struct Planner<'a> {
    view: &'a Catalog,
    /// The working catalog; for a bulk planner the starting view itself, never changed:
    /// its deletions are `gone`.
    work: Catalog,
    /// Bulk planners: the images deleted so far (the working copy is `work` less these).
    /// Deleting from a persistent map, step by step, cost as much as the commit's own
    /// apply of the same change set (a prune of 80k images).
    gone: Option<FastSet<ImageId>>,
    /// Parent/child answers.
    pub rel: &'a dyn Relations,
    pinned: &'a Pinned,
    /// Images whose container records this plan removed.
    users_removed: HashSet<ImageId>,
    touched_images: Vec<ImageId>,
    touched_set: HashSet<ImageId>,
    keep_containers: bool,
    /// A step that failed left `work` partly changed: the plan is void.
    broken: Option<Error>,
    /// Blobs the steps released from `work` (non-bulk planners), and whether every step
    /// added none (else `work` is not offered as the plan's result).
    released: Vec<(crate::digest::Digest, u64)>,
    added_none: bool,
    plan: Plan,
}

impl<'a> Planner<'a> {
    /// A planner starting from `view` for a few removals: the working copy keeps the
    /// container records.
    pub(crate) fn new(view: &'a Catalog, rel: &'a dyn Relations, pinned: &'a Pinned) -> Self {
        Self::with_containers(view, rel, pinned, true)
    }

    /// A planner for many removals (prune, GC) that only deletes images and their
    /// containers: the working copy is the view less a set of deleted images, container
    /// records are tracked aside, and the relations learn of each deletion through
    /// [`Relations::deleted`] (they answer for the view less those images).
    pub(crate) fn bulk(view: &'a Catalog, rel: &'a dyn Relations, pinned: &'a Pinned) -> Self {
        Self::with_containers(view, rel, pinned, false)
    }

    fn with_containers(
        view: &'a Catalog,
        rel: &'a dyn Relations,
        pinned: &'a Pinned,
        keep_containers: bool,
    ) -> Self {
        Self {
            view,
            work: view.clone(),
            gone: (!keep_containers).then(FastSet::default),
            rel,
            pinned,
            users_removed: HashSet::new(),
            keep_containers,
            touched_images: Vec::new(),
            touched_set: HashSet::new(),
            broken: None,
            released: Vec::new(),
            added_none: true,
            plan: Plan::default(),
        }
    }

    /// The working catalog.
    pub(crate) fn work(&self) -> &Catalog {
        &self.work
    }

    /// The image `id` in the working catalog.
    pub(crate) fn image(&self, id: &ImageId) -> Option<Arc<Image>> {
        self.working(id).cloned()
    }

    fn working(&self, id: &ImageId) -> Option<&Arc<Image>> {
        match &self.gone {
            Some(gone) if gone.contains(id) => None,
            _ => self.work.image(id),
        }
    }

    /// The pinned patterns.
    pub(crate) fn pinned(&self) -> &Pinned {
        self.pinned
    }

    /// Adds a record that no step of the working catalog stands for.
    pub(crate) fn record(&mut self, r: Record) {
        self.plan.records.push(r);
    }

    /// Containers (still) using `id`.
    pub(crate) fn containers_of(&self, id: &ImageId) -> &'a [Arc<Container>] {
        if self.users_removed.contains(id) {
            return &[];
        }
        self.view.containers_of(id)
    }

    fn touch(&mut self, id: ImageId) {
        if self.touched_set.insert(id) {
            self.touched_images.push(id);
        }
    }

    /// Applies one step to the working copy in place (a prune makes thousands of steps;
    /// copying the catalog's shared paths for each was most of its planning time).
    fn step(&mut self, change: &ChangeSet) -> Result<()> {
        crate::work::add(1);
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let applied = match &mut self.gone {
            Some(gone) => delete_aside(&self.work, gone, change),
            None => self.work.apply_in_place(change).map(|(released, added)| {
                self.released.extend(released);
                self.added_none &= added.is_empty();
            }),
        };
        if let Err(e) = applied {
            let e = Error::internal(format!("removal plan is inconsistent: {e}"));
            self.broken = Some(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Removes `names` from image `id` (records `untagged` for each, in the given order).
    pub(crate) fn untag(&mut self, id: &ImageId, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let Some(img) = self.image(id) else {
            return Err(Error::internal(format!(
                "image {id} vanished while planning"
            )));
        };
        let mut next = (*img).clone();
        next.names.retain(|n| !names.contains(n));
        self.touch(*id);
        self.step(&ChangeSet {
            put_images: vec![Arc::new(next)],
            ..ChangeSet::default()
        })?;
        for n in names {
            self.plan.records.push(Record::Untagged(n.clone()));
            self.plan.events.push((EventKind::Untag, *id, n.clone()));
        }
        Ok(())
    }

    /// Removes the container records of `img`, refusing (nothing changed) when one of them
    /// is running: imaged is not a runtime and never stops containers.
    pub(crate) fn remove_stopped_containers(&mut self, img: &Image) -> Result<()> {
        let running: Vec<&Container> = self
            .containers_of(&img.id)
            .iter()
            .map(AsRef::as_ref)
            .filter(|c| c.state == crate::model::ContainerState::Running)
            .collect();
        if !running.is_empty() {
            return Err(crate::engine::remove::errors::running(img, &running));
        }
        self.remove_containers(&img.id)
    }

    /// Removes every container record using `id`.
    pub(crate) fn remove_containers(&mut self, id: &ImageId) -> Result<()> {
        let users = self.containers_of(id);
        if users.is_empty() {
            return Ok(());
        }
        self.users_removed.insert(*id);
        let ids: Vec<String> = users.iter().map(|c| c.id.clone()).collect();
        if self.keep_containers {
            self.step(&ChangeSet {
                delete_containers: ids.clone(),
                ..ChangeSet::default()
            })?;
        }
        self.plan.removed_containers.extend(ids);
        Ok(())
    }

    /// Deletes image `id` like [`Planner::delete`], always recording `deleted` (Docker's
    /// records: its images have no children; shared layers simply stay).
    pub(crate) fn delete_recorded(&mut self, id: &ImageId, first: Option<&str>) -> Result<()> {
        if !self.delete(id, first)? {
            self.plan.records.push(Record::Deleted(*id));
            self.plan
                .events
                .push((EventKind::Delete, *id, String::new()));
        }
        Ok(())
    }

    /// Deletes image `id` (its containers must be gone): `untagged` for each name (`first`
    /// leading), then `deleted` unless children still use its layers. Returns whether a
    /// `deleted` record was written.
    pub(crate) fn delete(&mut self, id: &ImageId, first: Option<&str>) -> Result<bool> {
        let Some(img) = self.image(id) else {
            return Err(Error::internal(format!(
                "image {id} vanished while planning"
            )));
        };
        let has_children = self.rel.has_children(&self.work, &img);
        self.delete_known(&img, first, has_children)
    }

    /// [`Planner::delete`] of `img` (in the working catalog) whose children the caller
    /// already asked about.
    pub(crate) fn delete_known(
        &mut self,
        img: &Image,
        first: Option<&str>,
        has_children: bool,
    ) -> Result<bool> {
        let id = &img.id;
        let mut names: Vec<String> = Vec::with_capacity(img.names.len());
        if let Some(f) = first.filter(|f| img.names.iter().any(|n| n == f)) {
            names.push(f.to_owned());
        }
        names.extend(
            img.names
                .iter()
                .filter(|n| Some(n.as_str()) != first)
                .cloned(),
        );
        self.touch(*id);
        self.step(&ChangeSet {
            delete_images: vec![*id],
            ..ChangeSet::default()
        })?;
        self.rel.deleted(id);
        for n in names {
            self.plan.records.push(Record::Untagged(n.clone()));
            self.plan.events.push((EventKind::Untag, *id, n));
        }
        if !has_children {
            self.plan.records.push(Record::Deleted(*id));
            self.plan
                .events
                .push((EventKind::Delete, *id, String::new()));
        }
        Ok(!has_children)
    }

    /// Whether `img` may be removed quietly as a dangling parent: no names, no children, not
    /// in a manifest list, no containers, not read-only, not pinned.
    pub(crate) fn quietly_removable(&self, img: &Image) -> bool {
        img.names.is_empty()
            && !img.read_only
            && self.containers_of(&img.id).is_empty()
            && !self.pinned.is_pinned(img)
            && !self.rel.has_children(&self.work, img)
            && !self.rel.in_manifest_list(&self.work, img)
    }

    /// Removes `parent` and its ancestors while each is dangling and unused (SPEC §3.1.8:
    /// quiet, a parent that cannot go is left alone).
    pub(crate) fn prune_parents(&mut self, mut parent: Option<ImageId>) -> Result<()> {
        while let Some(pid) = parent {
            let Some(p) = self.image(&pid) else {
                return Ok(());
            };
            if !self.quietly_removable(&p) {
                return Ok(());
            }
            parent = self.rel.parent(&self.work, &p);
            self.delete(&pid, None)?;
        }
        Ok(())
    }

    /// The change set and records; an error when a step failed (nothing may be committed).
    pub(crate) fn finish(mut self) -> Result<Plan> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut change = ChangeSet::default();
        for id in &self.touched_images {
            match (self.view.image(id), self.working(id)) {
                (Some(_), None) => change.delete_images.push(*id),
                (before, Some(after)) if before.is_none_or(|b| !Arc::ptr_eq(b, after)) => {
                    change.put_images.push(Arc::clone(after));
                }
                _ => {}
            }
        }
        change
            .delete_containers
            .clone_from(&self.plan.removed_containers);
        if self.gone.is_none() && self.added_none && !change.is_empty() {
            let mut released = std::mem::take(&mut self.released);
            released.sort_unstable_by_key(|(d, _)| *d);
            released.dedup_by_key(|(d, _)| *d);
            self.plan.applied = Some(Applied {
                catalog: std::mem::take(&mut self.work).one_step_from(self.view),
                released,
                added: Vec::new(),
            });
        }
        self.plan.change = change;
        Ok(self.plan)
    }
}

/// A bulk planner's step: `change` may only delete images of `work` not deleted yet.
fn delete_aside(work: &Catalog, gone: &mut FastSet<ImageId>, change: &ChangeSet) -> Result<()> {
    if !(change.put_images.is_empty()
        && change.put_containers.is_empty()
        && change.delete_containers.is_empty())
    {
        return Err(Error::internal(
            "a bulk removal plan only deletes images".to_owned(),
        ));
    }
    for id in &change.delete_images {
        if work.image(id).is_none() || !gone.insert(*id) {
            return Err(Error::internal(format!("image {id} vanished")));
        }
    }
    Ok(())
}
