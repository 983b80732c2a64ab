//! Paging under concurrent removal (SPEC §5.2): images removed between pages are skipped,
//! none is returned twice, every other image is returned once, the token stays bound to its
//! request.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::images::{ImageSpec, add_images};
use imaged_core::engine::Engine;
use imaged_core::ops::{ListOptions, Order, RemoveOptions};
use imaged_core::store::Store;

/// Lists 30 images 7 at a time for every order while removing images between pages.
pub fn paging_under_removal(store: Arc<dyn Store>) -> Result<(), String> {
    let specs: Vec<ImageSpec> = (0..30)
        .map(|i| ImageSpec::base(&format!("page-{i}"), i).name(&format!("localhost/p{i}:latest")))
        .collect();
    let ids = add_images(&*store, &specs).map_err(|e| e.to_string())?;
    let engine = Engine::new(store, Default::default());
    let mut removed_total = 0;
    for (round, order) in [Order::Created, Order::Id, Order::Size, Order::Name]
        .into_iter()
        .enumerate()
    {
        let opts = ListOptions {
            page_size: 7,
            order,
            ..ListOptions::default()
        };
        let first = engine.list(&opts).map_err(|e| e.to_string())?;
        let mut seen: Vec<_> = first.images.iter().map(|i| i.id).collect();
        let before: BTreeSet<_> = engine
            .list(&ListOptions {
                page_size: 1000,
                order,
                ..ListOptions::default()
            })
            .map_err(|e| e.to_string())?
            .images
            .iter()
            .map(|i| i.id)
            .collect();
        // Remove one image already returned and two not yet returned.
        let pending: Vec<_> = before
            .iter()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        let victims = [seen[0], pending[round * 2], pending[round * 2 + 5]];
        for v in victims {
            engine
                .remove(&RemoveOptions {
                    reference: v.to_string(),
                    ..RemoveOptions::default()
                })
                .map_err(|e| format!("removing {v}: {e}"))?;
        }
        removed_total += victims.len();
        let mismatched = ListOptions {
            order: Order::Id,
            ..opts.clone()
        };
        if order != Order::Id {
            let bad = ListOptions {
                page_token: first.next_page_token.clone(),
                ..mismatched
            };
            match engine.list(&bad) {
                Err(e) if e.kind.reason() == "INVALID_PAGE_TOKEN" => {}
                other => return Err(format!("a token of another order was accepted: {other:?}")),
            }
        }
        let mut token = first.next_page_token;
        while !token.is_empty() {
            let page = engine
                .list(&ListOptions {
                    page_token: token,
                    ..opts.clone()
                })
                .map_err(|e| e.to_string())?;
            seen.extend(page.images.iter().map(|i| i.id));
            token = page.next_page_token;
        }
        let unique: BTreeSet<_> = seen.iter().copied().collect();
        if unique.len() != seen.len() {
            return Err(format!("{order:?}: an image was returned twice"));
        }
        for v in &victims[1..] {
            if unique.contains(v) {
                return Err(format!("{order:?}: removed image {v} was returned"));
            }
        }
        let expected: BTreeSet<_> = before
            .iter()
            .filter(|id| !victims[1..].contains(id))
            .copied()
            .collect();
        if unique != expected {
            return Err(format!(
                "{order:?}: expected {} images, got {}",
                expected.len(),
                unique.len()
            ));
        }
    }
    let left = engine
        .list(&ListOptions::default())
        .map_err(|e| e.to_string())?;
    if left.total_size != ids.len() - removed_total {
        return Err(format!("total_size {} after removals", left.total_size));
    }
    Ok(())
}
