//! A small builder to write cases compactly.

use super::{Action, Batch, BatchItem, Case, Expect, Rec, Reclaim, Ref, SetupContainer};
use crate::images::ImageSpec;
use imaged_core::model::ContainerState;
use imaged_core::ops::{Policy, PruneOptions, RemoveOptions};

/// Starts a case.
pub(super) fn case(name: impl Into<String>, source: &'static str) -> Case {
    Case {
        name: name.into(),
        source,
        deviation: None,
        images: Vec::new(),
        tags: Vec::new(),
        containers: Vec::new(),
        action: Action::List(Vec::new(), false),
        expect: Expect::default(),
    }
}

/// `Ref::Text`.
pub(super) fn t(s: &str) -> Ref {
    Ref::Text(s.to_owned())
}

/// RemoveImage options.
pub(super) fn rm_opts(policy: Policy, force: bool) -> RemoveOptions {
    RemoveOptions {
        policy,
        force,
        ..RemoveOptions::default()
    }
}

impl Case {
    /// Adds an image.
    #[must_use]
    pub fn image(mut self, key: &'static str, spec: ImageSpec) -> Self {
        self.images.push((key, spec));
        self
    }

    /// Adds a name after the setup's images are stored.
    #[must_use]
    pub fn tag(mut self, key: &'static str, name: &'static str) -> Self {
        self.tags.push((key, name));
        self
    }

    /// Adds a container record.
    #[must_use]
    pub fn ctr(mut self, id: &'static str, image: &'static str, state: ContainerState) -> Self {
        self.containers.push(SetupContainer {
            id,
            image,
            state,
            external: false,
        });
        self
    }

    /// Adds an external container record.
    #[must_use]
    pub fn ext(mut self, id: &'static str, image: &'static str, state: ContainerState) -> Self {
        self.containers.push(SetupContainer {
            id,
            image,
            state,
            external: true,
        });
        self
    }

    /// Names the deviation from the peer.
    #[must_use]
    pub fn deviation(mut self, d: &'static str) -> Self {
        self.deviation = Some(d);
        self
    }

    /// RemoveImage of one reference.
    #[must_use]
    pub fn rm(mut self, r: Ref, opts: RemoveOptions) -> Self {
        self.action = Action::Remove(vec![r], opts);
        self
    }

    /// RemoveImage of several references in turn.
    #[must_use]
    pub fn rm_seq(mut self, refs: Vec<Ref>, opts: RemoveOptions) -> Self {
        self.action = Action::Remove(refs, opts);
        self
    }

    /// RemoveImages of these references in one call.
    #[must_use]
    pub fn rm_batch(mut self, refs: Vec<Ref>, opts: RemoveOptions) -> Self {
        self.action = Action::RemoveBatch(Batch {
            refs,
            filters: Vec::new(),
            all: false,
            opts,
        });
        self
    }

    /// RemoveImages of what `filters` select (`all` without filters: every image).
    #[must_use]
    pub fn rm_selected(mut self, filters: &[&str], all: bool, opts: RemoveOptions) -> Self {
        self.action = Action::RemoveBatch(Batch {
            refs: Vec::new(),
            filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            all,
            opts,
        });
        self
    }

    /// Expects these outcomes of the batch's removals, in order.
    #[must_use]
    pub fn batch(mut self, items: Vec<BatchItem>) -> Self {
        self.expect.batch = Some(items);
        self
    }

    /// CRI RemoveImage.
    #[must_use]
    pub fn cri_rm(mut self, r: Ref) -> Self {
        self.action = Action::CriRemove(r);
        self
    }

    /// PruneImages.
    #[must_use]
    pub fn prune(mut self, all: bool, filters: &[&str], external: bool) -> Self {
        self.action = Action::Prune(PruneOptions {
            all,
            filters: filters.iter().map(|s| (*s).to_owned()).collect(),
            external,
            dry_run: false,
        });
        self
    }

    /// SetGcPolicy, then RunGc.
    #[must_use]
    pub fn gc(mut self, policy: imaged_core::gc::GcPolicy) -> Self {
        self.action = Action::Gc(policy);
        self
    }

    /// ListImages.
    #[must_use]
    pub fn list(mut self, filters: &[&str], all: bool) -> Self {
        self.action = Action::List(filters.iter().map(|s| (*s).to_owned()).collect(), all);
        self
    }

    /// Expects an error reason and a message part.
    #[must_use]
    pub fn err(mut self, reason: &'static str, message: &'static str) -> Self {
        self.expect.error = Some(reason);
        self.expect.message = (!message.is_empty()).then_some(message);
        self
    }

    /// Expects these records.
    #[must_use]
    pub fn records(mut self, r: Vec<Rec>) -> Self {
        self.expect.records = Some(r);
        self
    }

    /// Expects these images to remain (and no other).
    #[must_use]
    pub fn remaining(mut self, keys: &[&'static str]) -> Self {
        self.expect.remaining = Some(keys.to_vec());
        self
    }

    /// Expects these names on an image (or listed).
    #[must_use]
    pub fn names(mut self, key: &'static str, names: &[&'static str]) -> Self {
        self.expect.names.push((key, names.to_vec()));
        self
    }

    /// Expects these container records to remain.
    #[must_use]
    pub fn containers(mut self, ids: &[&'static str]) -> Self {
        self.expect.containers = Some(ids.to_vec());
        self
    }

    /// Expects these containers reported removed.
    #[must_use]
    pub fn removed(mut self, ids: &[&'static str]) -> Self {
        self.expect.removed_containers = Some(ids.to_vec());
        self
    }

    /// Expects these images listed (any order).
    #[must_use]
    pub fn listed(mut self, keys: &[&'static str]) -> Self {
        self.expect.listed = Some(keys.to_vec());
        self
    }

    /// Expects these images listed in this order.
    #[must_use]
    pub fn listed_in_order(mut self, keys: &[&'static str]) -> Self {
        self.expect.listed = Some(keys.to_vec());
        self.expect.ordered = true;
        self
    }

    /// Expects prune errors for these images.
    #[must_use]
    pub fn prune_errors(mut self, keys: &[&'static str]) -> Self {
        self.expect.prune_errors = Some(keys.to_vec());
        self
    }

    /// Expects reclaimed bytes.
    #[must_use]
    pub fn reclaimed(mut self, r: Reclaim) -> Self {
        self.expect.reclaimed = Some(r);
        self
    }
}
