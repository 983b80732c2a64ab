//! RemoveImages (SPEC §3.3): many removals in one call, libimage's `RemoveImages`. The
//! references are removed one after another in the order given, each resolved when its
//! turn comes, exactly as the same sequence of RemoveImage calls would (two names of one
//! image end with the image deleted, podman#930); a failure is that reference's outcome
//! and the batch goes on. Without references, the images the filters select (or every
//! image, `all`) are removed whole. The writer lock is held for the whole batch, so no
//! other write interleaves; a dry run plans each removal on the result of the previous
//! ones and changes nothing.

use std::sync::Arc;

use crate::engine::Engine;
use crate::engine::ops::{
    ListOptions, Record, RemoveImagesOptions, RemoveImagesReport, RemoveOptions, RemoveOutcome,
};
use crate::error::{Error, ErrorKind, Result};
use crate::model::ImageId;

impl Engine {
    /// RemoveImages (SPEC §3.3).
    pub fn remove_images(&self, opts: &RemoveImagesOptions) -> Result<RemoveImagesReport> {
        if !opts.references.is_empty() && (!opts.filters.is_empty() || opts.all) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "give references, or filters / all, not both",
            )
            .with_field("references", "set together with filters or all"));
        }
        if opts.references.is_empty() && opts.filters.is_empty() && !opts.all {
            return Err(Error::new(
                ErrorKind::InvalidReference,
                "image name or ID must be specified",
            ));
        }
        let _w = self.write_lock();
        let mut view = self.view();
        let selected = if opts.references.is_empty() {
            self.select(&opts.filters)?
        } else {
            Vec::new()
        };
        let one = |reference: &str| RemoveOptions {
            reference: reference.to_owned(),
            ..opts.each.clone()
        };
        let targets: Vec<(String, Option<ImageId>)> = if opts.references.is_empty() {
            selected
                .into_iter()
                .map(|id| (id.to_string(), Some(id)))
                .collect()
        } else {
            opts.references.iter().map(|r| (r.clone(), None)).collect()
        };
        let mut report = RemoveImagesReport::default();
        for (reference, id) in targets {
            let before = Arc::clone(&view);
            let result = self.remove_on(&view, &one(&reference), id.as_ref());
            let outcome = match result {
                Ok((r, after)) => {
                    view = after;
                    let deleted_sizes = r
                        .records
                        .iter()
                        .filter_map(|rec| match rec {
                            Record::Deleted(id) => Some((*id, image_size(&before, None, id))),
                            Record::Untagged(_) | Record::DeletedLayer(_) => None,
                        })
                        .collect();
                    RemoveOutcome {
                        reference,
                        result: Ok(r),
                        deleted_sizes,
                    }
                }
                Err(e) => RemoveOutcome {
                    reference,
                    result: Err(e),
                    deleted_sizes: Vec::new(),
                },
            };
            report.outcomes.push(outcome);
        }
        Ok(report)
    }

    /// The IDs of every image `filters` select (intermediate images included), in
    /// ListImages' default order.
    fn select(&self, filters: &[String]) -> Result<Vec<ImageId>> {
        let mut ids = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self.list_map(
                &ListOptions {
                    filters: filters.to_vec(),
                    all: true,
                    page_size: i32::MAX,
                    page_token: page_token.clone(),
                    ..ListOptions::default()
                },
                |tree, i, _, _| tree.image(i).id,
            )?;
            ids.extend(page.items);
            if page.next_page_token.is_empty() || page.next_page_token == page_token {
                return Ok(ids);
            }
            page_token = page.next_page_token;
        }
    }
}

/// The size ListImages shows for image `id` of `view` (0 when it is not there): read from
/// `tree`, the tree of `view` when the caller has it (an array read; it holds each image's
/// `Image::size`), else computed from the image.
pub(crate) fn image_size(
    view: &crate::catalog::Catalog,
    tree: Option<&crate::graph::tree::Tree>,
    id: &ImageId,
) -> u64 {
    match tree.and_then(|t| t.index_of(id).map(|i| (t, i))) {
        Some((t, i)) => t.size(i),
        None => view.image(id).map_or(0, |img| img.size()),
    }
}
