//! TagImage and UntagImage with libimage's rules (SPEC §2, §6): names are normalised
//! (`localhost/` for short names, `:latest` when untagged), a new name goes first (newest
//! first, as libimage) and moves away from any image that held it; untag of a name the image
//! does not have fails with `tag not known`. A tag that adds a name sets the image's
//! `last_used`; an untag does not.

use std::sync::Arc;

use crate::catalog::ChangeSet;
use crate::engine::Engine;
use crate::engine::ops::{Event, EventKind, TagReport, UntagReport};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Image;
use crate::reference::resolve::{Lookup, resolve_with};
use crate::reference::{normalize_name, normalize_tag_name};

impl Engine {
    /// TagImage.
    pub fn tag(&self, source: &str, names: &[String]) -> Result<TagReport> {
        self.tag_with(source, names, &Lookup::default())
    }

    /// TagImage with per-request lookup options (a manifest list's platform, or the list
    /// itself).
    pub fn tag_with(&self, source: &str, names: &[String], lookup: &Lookup) -> Result<TagReport> {
        let normalised: Vec<String> = names
            .iter()
            .map(|n| normalize_tag_name(n))
            .collect::<Result<_>>()?;
        if normalised.is_empty() {
            return Err(
                Error::new(ErrorKind::InvalidArgument, "no name to tag with")
                    .with_field("names", "at least one name is required"),
            );
        }
        let _w = self.write_lock();
        let view = self.view();
        let img = resolve_with(&view, &self.config, source, lookup)?.image;
        let mut change = ChangeSet::default();
        let mut target: Image = (*img).clone();
        let mut added = Vec::new();
        for n in &normalised {
            if target.names.contains(n) {
                continue;
            }
            if let Some(holder) = view.image_by_name(n)
                && holder.id != img.id
            {
                let mut h = change
                    .put_images
                    .iter()
                    .find(|x| x.id == holder.id)
                    .map_or_else(|| (**holder).clone(), |x| (**x).clone());
                h.names.retain(|x| x != n);
                change.put_images.retain(|x| x.id != holder.id);
                change.put_images.push(Arc::new(h));
            }
            target.names.insert(0, n.clone());
            added.push(n.clone());
        }
        if !added.is_empty() {
            // Tagging is a use (SPEC §1 "Usage data"), stamped with the names it adds.
            target.last_used = Some(crate::time::now());
            change.put_images.push(Arc::new(target));
            self.commit(&view, &change)?;
            let time = crate::time::now();
            let events: Vec<Event> = added
                .iter()
                .map(|n| Event {
                    kind: EventKind::Tag,
                    image_id: Some(img.id),
                    name: n.clone(),
                    time,
                    reclaimed_bytes: 0,
                })
                .collect();
            self.emit(&events);
        }
        Ok(TagReport {
            image_id: img.id,
            names: normalised,
        })
    }

    /// UntagImage (empty `names` removes every name).
    pub fn untag(&self, reference: &str, names: &[String]) -> Result<UntagReport> {
        self.untag_with(reference, names, &Lookup::default())
    }

    /// UntagImage with per-request lookup options.
    pub fn untag_with(
        &self,
        reference: &str,
        names: &[String],
        lookup: &Lookup,
    ) -> Result<UntagReport> {
        let _w = self.write_lock();
        let view = self.view();
        let img = resolve_with(&view, &self.config, reference, lookup)?.image;
        let mut gone: Vec<String> = Vec::new();
        if names.is_empty() {
            gone.clone_from(&img.names);
        }
        for n in names {
            if n.starts_with("sha256:") {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{n}: untag by digest not supported"),
                )
                .with_meta("reference", n.as_str()));
            }
            let norm = normalize_name(n)?.to_string();
            if !img.names.contains(&norm) {
                return Err(
                    Error::new(ErrorKind::TagNotKnown, format!("{norm}: tag not known"))
                        .with_meta("reference", norm)
                        .with_meta("image_id", img.id.to_string()),
                );
            }
            if !gone.contains(&norm) {
                gone.push(norm);
            }
        }
        if !gone.is_empty() {
            let mut next = (*img).clone();
            next.names.retain(|x| !gone.contains(x));
            self.commit(
                &view,
                &ChangeSet {
                    put_images: vec![Arc::new(next)],
                    ..ChangeSet::default()
                },
            )?;
            let time = crate::time::now();
            let events: Vec<Event> = gone
                .iter()
                .map(|n| Event {
                    kind: EventKind::Untag,
                    image_id: Some(img.id),
                    name: n.clone(),
                    time,
                    reclaimed_bytes: 0,
                })
                .collect();
            self.emit(&events);
        }
        Ok(UntagReport {
            image_id: img.id,
            untagged: gone,
        })
    }
}
