//! RemoveImage with the PODMAN policy (libimage, SPEC §3.1).

use crate::engine::ops::RemoveOptions;
use crate::engine::remove::errors;
use crate::engine::remove::plan::Planner;
use crate::error::Result;
use crate::model::ImageId;
use crate::reference::resolve::{How, Resolved};

/// Plans the removal of a resolved reference.
pub(crate) fn remove(p: &mut Planner<'_>, r: &Resolved, opts: &RemoveOptions) -> Result<()> {
    let img = &r.image;
    if img.read_only {
        return Err(errors::read_only(img));
    }
    let mut first: Option<&str> = None;
    match &r.how {
        // libimage resolves a `containers-storage:` reference to no name: the whole image.
        How::Storage => {}
        How::Id { sha256_prefix } => {
            if img.names.len() > 1 && !opts.force {
                return Err(errors::multiple_names(img, *sha256_prefix));
            }
        }
        How::IdPrefix | How::ListInstance { .. } => {
            if img.names.len() > 1 && !opts.force {
                return Err(errors::multiple_names(img, false));
            }
        }
        How::Name(name) => {
            if img.names.len() != 1 {
                if !img.names.contains(name) {
                    return Err(errors::tag_not_known(img, name));
                }
                // Remove that name only; force changes nothing (podman#10685).
                p.untag(&img.id, std::slice::from_ref(name))?;
                return Ok(());
            }
            first = Some(name);
        }
    }
    remove_whole_external(p, &img.id, first, opts)
}

/// Plans the removal of an image a RemoveImages filter selected: the whole image
/// whatever its names (libimage removes it "by --all", without the by-ID name check).
pub(crate) fn remove_selected(
    p: &mut Planner<'_>,
    img: &crate::model::Image,
    opts: &RemoveOptions,
) -> Result<()> {
    if img.read_only {
        return Err(errors::read_only(img));
    }
    remove_whole_external(p, &img.id, None, opts)
}

/// [`remove_whole`] with libimage's `ExternalContainers` (`opts.external`, without
/// force): containers that are all external (build containers, another engine's) are
/// removed with the image; a non-external one refuses the removal.
fn remove_whole_external(
    p: &mut Planner<'_>,
    id: &ImageId,
    first: Option<&str>,
    opts: &RemoveOptions,
) -> Result<()> {
    if opts.external
        && !opts.force
        && let Some(img) = p.image(id)
    {
        let users = p.containers_of(id);
        if let Some(c) = users.iter().find(|c| !c.external) {
            let refs: Vec<_> = users.iter().map(AsRef::as_ref).collect();
            let mut e = errors::in_use(&img, &refs);
            e.message = format!(
                "cannot remove container {}: not an external container",
                c.id
            );
            return Err(e);
        }
        if !users.is_empty() {
            p.remove_containers(id)?;
        }
    }
    remove_whole(p, id, first, opts.force, opts.no_prune)
}

/// Removes a whole image: containers (force), the image, then its dangling parents.
pub(crate) fn remove_whole(
    p: &mut Planner<'_>,
    id: &ImageId,
    first: Option<&str>,
    force: bool,
    no_prune: bool,
) -> Result<()> {
    let Some(img) = p.image(id) else {
        return Ok(());
    };
    let users = p.containers_of(id);
    if !users.is_empty() {
        if !force {
            let refs: Vec<_> = users.iter().map(AsRef::as_ref).collect();
            return Err(errors::in_use(&img, &refs));
        }
        p.remove_stopped_containers(&img)?;
    }
    let parent = p.rel.parent(p.work(), &img);
    p.delete(id, first)?;
    if !no_prune {
        p.prune_parents(parent)?;
    }
    Ok(())
}
