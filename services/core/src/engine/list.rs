//! ListImages (SPEC §5), InspectImage, ImageDiskUsage and the CRI read operations.
//!
//! A listing works on one view and its tree (cached per catalog version, with each sort
//! order computed once), binary-searches the cursor and scans forward until the page is
//! full: all pages of a listing cost O(N log N) once plus O(N) filter checks.

use std::collections::HashSet;
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::graph::index::LayerIndex;
use crate::graph::relations::Relations as _;
use crate::model::{Image, ImageId};

use crate::engine::Engine;
use crate::engine::ops::{
    DiskUsage, ImageDetails, ImageSummary, ImageUsage, InstanceSummary, ListOptions, ListPage,
    MappedPage, Order,
};
use crate::engine::pinned::Pinned;
use crate::engine::token::PageToken;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{self, Filters};
use crate::graph::tree::{Tree, compare};
use crate::reference::resolve::{Lookup, resolve_with};
use crate::reference::split_stored;

/// Default page size.
pub(super) const DEFAULT_PAGE_SIZE: usize = 1000;
/// Largest page size.
pub(super) const MAX_PAGE_SIZE: usize = 10_000;

impl Engine {
    /// ListImages (SPEC §5).
    pub fn list(&self, opts: &ListOptions) -> Result<ListPage> {
        let page = self.list_map(opts, |tree, i, names, pinned| {
            summary(tree, i, names, pinned)
        })?;
        Ok(ListPage {
            images: page.items,
            next_page_token: page.next_page_token,
            total_size: page.total_size,
        })
    }

    /// ListImages with each listed image given to `item` as (tree, index, narrowed names,
    /// pinned patterns) instead of built as an [`ImageSummary`]: the gRPC layer encodes
    /// from it, caching an image's encoding per tree (one tree per catalog version).
    pub fn list_map<T>(
        &self,
        opts: &ListOptions,
        mut item: impl FnMut(&Arc<Tree>, u32, Option<Vec<String>>, &Pinned) -> T,
    ) -> Result<MappedPage<T>> {
        let size = match opts.page_size {
            n if n < 0 => {
                let m = format!("page_size must not be negative (got {n})");
                return Err(
                    Error::new(ErrorKind::InvalidArgument, m.clone()).with_field("page_size", m)
                );
            }
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let specs = filter::parse(&opts.filters, "filters")?;
        let bind = PageToken::binding(&opts.filters, opts.all, opts.order);
        let cursor = match opts.page_token.as_str() {
            "" => None,
            t => Some(PageToken::decode(t, bind)?),
        };
        let view = self.view();
        let tree = self.trees.get(&view);
        let filters = Filters::compile(
            &specs,
            &opts.filters,
            "filters",
            &view,
            &self.config,
            crate::time::now(),
        )?;
        let pinned = &self.pinned;
        let visible = |i: u32| {
            (opts.all || filters.has_intermediate || !tree.intermediate(i))
                && filters.matches(&tree, i)
        };
        let order = tree.sorted(opts.order);
        let start = match &cursor {
            None => 0,
            Some(c) => order.partition_point(|&i| {
                let k = tree.sort_key(opts.order, i);
                compare(opts.order, (&k, &tree.image(i).id), (&c.key, &c.id)).is_le()
            }),
        };
        let narrows = filters.narrows();
        let mut images = Vec::with_capacity(size.min(order.len()));
        let mut last = None;
        let mut more = false;
        for &i in &order[start..] {
            if !visible(i) {
                continue;
            }
            if images.len() == size {
                more = true;
                break;
            }
            let names = if narrows {
                filters.narrow(&tree.image(i).names)
            } else {
                None
            };
            images.push(item(&tree, i, names, pinned));
            last = Some(i);
        }
        let total_size = match &cursor {
            Some(c) if c.generation == view.generation() => c.total,
            None if !more => images.len(),
            _ => order.iter().filter(|&&i| visible(i)).count(),
        };
        let next_page_token = match (more, last) {
            (true, Some(i)) => PageToken {
                bind,
                generation: view.generation(),
                total: total_size,
                key: tree.sort_key(opts.order, i),
                id: tree.image(i).id,
            }
            .encode(),
            _ => String::new(),
        };
        Ok(MappedPage {
            items: images,
            next_page_token,
            total_size,
        })
    }

    /// Builds the derived indexes (layer tree, parent/child index) of the current view, so
    /// that the first requests after start do not pay for them.
    pub fn warm(&self) {
        let view = self.view();
        self.trees.get(&view);
        self.layers.get(&view);
    }

    /// InspectImage.
    pub fn inspect(&self, reference: &str) -> Result<ImageDetails> {
        self.inspect_with(reference, &Lookup::default())
    }

    /// InspectImage with per-request lookup options (a manifest list's platform, or the
    /// list itself).
    pub fn inspect_with(&self, reference: &str, lookup: &Lookup) -> Result<ImageDetails> {
        let view = self.view();
        let resolved = resolve_with(&view, &self.config, reference, lookup)?;
        let pinned = &self.pinned;
        if let Some(tree) = self.trees.peek(&view)
            && let Some(i) = tree.index_of(&resolved.image.id)
        {
            return Ok(details(&tree, i, pinned));
        }
        let index = self.layers.get(&view);
        Ok(details_single(&view, &index, &resolved.image, pinned))
    }

    /// ImageDiskUsage: totals as `docker system df`; `reclaimable_bytes` are the bytes of
    /// blobs no kept image (in use, read-only or pinned) refers to, i.e. what
    /// `prune --all` would release.
    pub fn disk_usage(&self, verbose: bool) -> Result<DiskUsage> {
        let view = self.view();
        let tree = self.trees.get(&view);
        let pinned = &self.pinned;
        let mut kept: HashSet<crate::digest::Digest> = HashSet::new();
        let mut active = 0u32;
        for i in 0..tree.len() as u32 {
            let img = tree.image(i);
            let used = !tree.containers(i).is_empty();
            active += u32::from(used);
            if used || img.read_only || pinned.is_pinned(img) {
                kept.extend(img.blobs().map(|b| b.digest));
            }
        }
        let (mut total, mut reclaimable) = (0u64, 0u64);
        for (d, e) in view.blobs() {
            total += e.size;
            if !kept.contains(d) {
                reclaimable += e.size;
            }
        }
        let per_image = if verbose {
            tree.sorted(Order::Created)
                .iter()
                .map(|&i| ImageUsage {
                    id: tree.image(i).id,
                    names: tree.image(i).names.clone(),
                    size: tree.size(i),
                    shared_size: tree.shared_size(i),
                    unique_size: tree.size(i).saturating_sub(tree.shared_size(i)),
                    containers: u32::try_from(tree.containers(i).len()).unwrap_or(u32::MAX),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(DiskUsage {
            images: u32::try_from(tree.len()).unwrap_or(u32::MAX),
            active_images: active,
            total_bytes: total,
            reclaimable_bytes: reclaimable,
            containers: u32::try_from(view.containers().count()).unwrap_or(u32::MAX),
            per_image,
        })
    }
}

/// `<repo>@sha256:<hex>` with one allocation.
fn repo_digest(repo: &str, d: &crate::digest::Digest) -> String {
    let mut hex = [0u8; 64];
    let mut out = String::with_capacity(repo.len() + 72);
    out.push_str(repo);
    out.push_str("@sha256:");
    if hex::encode_to_slice(d.as_bytes(), &mut hex).is_ok() {
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }
    out
}

/// The derived facts a summary needs.
struct Parts {
    size: u64,
    shared: u64,
    containers: usize,
    parent: Option<ImageId>,
    has_children: bool,
    in_list: bool,
    instances: Vec<Option<ImageId>>,
}

fn build_summary(
    img: &Image,
    names: Option<Vec<String>>,
    p: Parts,
    pinned: &Pinned,
) -> ImageSummary {
    let names = names.unwrap_or_else(|| img.names.clone());
    let repo_tags = names
        .iter()
        .filter(|n| split_stored(n).1.is_some())
        .cloned()
        .collect();
    let mut repo_digests: Vec<String> = names
        .iter()
        .flat_map(|n| {
            let repo = split_stored(n).0;
            img.digests.iter().map(move |d| repo_digest(repo, d))
        })
        .collect();
    repo_digests.sort();
    repo_digests.dedup();
    let instances = img
        .instances
        .iter()
        .flatten()
        .zip(p.instances.into_iter().chain(std::iter::repeat(None)))
        .map(|(x, image_id)| InstanceSummary {
            digest: x.digest,
            platform: x.platform.clone(),
            image_id,
        })
        .collect();
    let unnamed = img.names.is_empty();
    ImageSummary {
        id: img.id,
        names,
        repo_tags,
        repo_digests,
        created: img.config.created,
        size: p.size,
        shared_size: p.shared,
        unique_size: p.size - p.shared,
        containers: u32::try_from(p.containers).unwrap_or(u32::MAX),
        labels: img.config.labels.clone(),
        parent_id: p.parent,
        dangling: unnamed && !p.has_children && !p.in_list,
        intermediate: unnamed && p.has_children,
        read_only: img.read_only,
        is_manifest_list: img.is_manifest_list(),
        digest: img.digest(),
        digests: img.digests.clone(),
        platform: (*img.config.platform).clone(),
        pinned: pinned.is_pinned(img),
        last_used: img.last_used,
        instances,
    }
}

/// The listed fields of image `i` (`names` replaces the stored names when narrowed).
pub fn summary(tree: &Tree, i: u32, names: Option<Vec<String>>, pinned: &Pinned) -> ImageSummary {
    let img = tree.image(i);
    let parts = Parts {
        size: tree.size(i),
        shared: tree.shared_size(i),
        containers: tree.containers(i).len(),
        parent: tree.parent(i).map(|p| tree.image(p).id),
        has_children: !tree.children(i).is_empty(),
        in_list: tree.in_manifest_list(i),
        instances: img
            .instances
            .iter()
            .flatten()
            .map(|x| tree.instance_image(&x.digest).map(|j| tree.image(j).id))
            .collect(),
    };
    build_summary(img, names, parts, pinned)
}

/// InspectImage of one image without a full tree: parents and children from the
/// persistent layer index, sizes from the catalog's blob table, containers by one pass.
pub(super) fn details_single(
    view: &Catalog,
    index: &LayerIndex,
    img: &Arc<Image>,
    pinned: &Pinned,
) -> ImageDetails {
    let (mut size, mut shared) = (0u64, 0u64);
    img.for_each_blob(|b| {
        size += b.size;
        if view.blob(&b.digest).is_some_and(|e| e.refs > 1) {
            shared += b.size;
        }
    });
    let container_ids: Vec<String> = view
        .containers()
        .filter(|c| c.image_id == img.id)
        .map(|c| c.id.clone())
        .collect();
    let child_ids = index.children(view, img);
    let instances = img
        .instances
        .iter()
        .flatten()
        .map(|x| {
            view.images()
                .filter(|i| !i.is_manifest_list() && i.digests.contains(&x.digest))
                .map(|i| i.id)
                .min()
        })
        .collect();
    let parts = Parts {
        size,
        shared,
        containers: container_ids.len(),
        parent: index.parent(view, img),
        has_children: !child_ids.is_empty(),
        in_list: index.in_manifest_list(view, img),
        instances,
    };
    ImageDetails {
        summary: build_summary(img, None, parts, pinned),
        config: Arc::clone(&img.config),
        layers: img.layers.clone(),
        container_ids,
        child_ids,
    }
}

/// Everything InspectImage reports about image `i`.
pub(super) fn details(tree: &Tree, i: u32, pinned: &Pinned) -> ImageDetails {
    let img = tree.image(i);
    ImageDetails {
        summary: summary(tree, i, None, pinned),
        config: Arc::clone(&img.config),
        layers: img.layers.clone(),
        container_ids: tree.containers(i).iter().map(|c| c.id.clone()).collect(),
        child_ids: tree.children(i).iter().map(|&c| tree.image(c).id).collect(),
    }
}
