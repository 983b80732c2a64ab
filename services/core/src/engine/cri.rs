//! The CRI helper operations (`runtime.v1.ImageService` semantics, SPEC §8): status and
//! list never fail for an absent image, removal takes the whole image and is idempotent.

use crate::engine::Engine;
use crate::engine::list::summary;
use crate::engine::ops::{ImageDetails, ImageSummary, Order, RemoveReport};
use crate::engine::remove::plan::Planner;
use crate::engine::remove::{errors, podman};
use crate::error::{ErrorKind, Result};
use crate::model::ContainerState;
use crate::reference::resolve::{How, resolve};

impl Engine {
    /// CRI ImageStatus: the image a reference resolves to, `None` when absent.
    pub fn cri_status(&self, reference: &str) -> Result<Option<ImageDetails>> {
        match self.inspect(reference) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind == ErrorKind::ImageNotKnown => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// CRI ListImages: every image (`reference` empty) or the one it resolves to; manifest
    /// lists are not CRI images and are left out. Ordered by ID.
    pub fn cri_list(&self, reference: &str) -> Result<Vec<ImageSummary>> {
        if reference.is_empty() {
            let view = self.view();
            let tree = self.trees.get(&view);
            let pinned = &self.pinned;
            return Ok(tree
                .sorted(Order::Id)
                .iter()
                .filter(|&&i| !tree.image(i).is_manifest_list())
                .map(|&i| summary(&tree, i, None, pinned))
                .collect());
        }
        Ok(self
            .cri_status(reference)?
            .filter(|d| !d.summary.is_manifest_list)
            .map(|d| d.summary)
            .into_iter()
            .collect())
    }

    /// CRI RemoveImage: the whole image with all its names; absent is OK; a RUNNING
    /// container fails with `ContainerRunning`.
    ///
    /// Decisions (containerd's behaviour, which kubelet expects): created, stopped and
    /// external container records do not block; they are removed with the image and
    /// reported — except on a store whose containers belong to its engine
    /// (`containers_read_only`, containers-storage), where any container blocks with
    /// `ImageInUse`, as CRI-O's RemoveImage does. Children do not block (the record goes, the layers stay for them).
    /// Dangling parents are not pruned: CRI removes exactly the image asked for.
    pub fn cri_remove(&self, reference: &str) -> Result<RemoveReport> {
        let _w = self.write_lock();
        let view = self.view();
        let resolved = match resolve(&view, &self.config, reference) {
            Ok(r) => r,
            Err(e) if e.kind == ErrorKind::ImageNotKnown => return Ok(RemoveReport::default()),
            Err(e) => return Err(e),
        };
        let img = &resolved.image;
        if img.read_only {
            return Err(errors::read_only(img));
        }
        let rel = self.relations(&view);
        let pinned = &self.pinned;
        let mut p = Planner::new(&view, rel.as_ref(), pinned);
        let running: Vec<_> = p
            .containers_of(&img.id)
            .iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.as_ref().clone())
            .collect();
        if !running.is_empty() {
            return Err(errors::running(img, &running.iter().collect::<Vec<_>>()));
        }
        // When the store's containers belong to its engine (containers-storage: CRI-O,
        // podman, buildah), a CRI removal never deletes them: CRI-O's own RemoveImage
        // refuses an image any container uses, and deleting a runtime's container behind
        // its back would break it (SPEC §8).
        if self.store.info().containers_read_only {
            let users = p.containers_of(&img.id);
            if !users.is_empty() {
                return Err(errors::in_use(
                    img,
                    &users.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
                ));
            }
        }
        let first = match &resolved.how {
            How::Name(n) => Some(n.clone()),
            _ => None,
        };
        podman::remove_whole(&mut p, &img.id, first.as_deref(), true, true)?;
        let plan = p.finish()?;
        let reclaimed = self.apply_plan(&view, &plan, false)?;
        Ok(RemoveReport {
            records: plan.records,
            removed_containers: plan.removed_containers,
            reclaimed_bytes: reclaimed,
        })
    }
}
