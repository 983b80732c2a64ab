//! RemoveImage (SPEC §3) and CRI RemoveImage: resolve, plan with the policy's rules on the
//! newest view under the writer lock, commit one change set (or, for `dry_run`, apply it to
//! a copy), then publish events.

pub(crate) mod batch;
pub(crate) mod docker;
pub(crate) mod errors;
pub(crate) mod plan;
pub(crate) mod podman;

use std::sync::Arc;

use crate::catalog::{Catalog, ChangeSet};
use crate::engine::Engine;
use crate::engine::ops::{Event, Policy, RemoveOptions, RemoveReport};
use crate::engine::remove::plan::{Plan, Planner};
use crate::error::{ErrorKind, Result};
use crate::graph::index::IndexRelations;
use crate::graph::relations::{Relations, TreeRelations};
use crate::reference::resolve::{Lookup, resolve, resolve_with};

impl Engine {
    /// RemoveImage (SPEC §3).
    pub fn remove(&self, opts: &RemoveOptions) -> Result<RemoveReport> {
        let _w = self.write_lock();
        let view = self.view();
        self.remove_on(&view, opts, None).map(|(report, _)| report)
    }

    /// One removal planned on `view`, the writer lock held: of `opts.reference`, or of
    /// the `selected` image as a whole (RemoveImages by filter: libimage removes such an
    /// image whatever its names). Gives the report and the catalog after it (for
    /// `dry_run`, the copy the plan was applied to).
    pub(crate) fn remove_on(
        &self,
        view: &Arc<Catalog>,
        opts: &RemoveOptions,
        selected: Option<&crate::model::ImageId>,
    ) -> Result<(RemoveReport, Arc<Catalog>)> {
        let rel = self.relations(view);
        let pinned = &self.pinned;
        let mut p = Planner::new(view, rel.as_ref(), pinned);
        match selected {
            Some(id) => {
                // Removed earlier in the same batch (a pruned parent): nothing left to do.
                let Some(img) = view.image(id) else {
                    return Ok((RemoveReport::default(), Arc::clone(view)));
                };
                match opts.policy {
                    Policy::Podman => podman::remove_selected(&mut p, img, opts)?,
                    Policy::Docker => {
                        let resolved = resolve(view, &self.config, &id.to_string())?;
                        docker::remove(&mut p, &resolved, &id.to_string(), opts)?;
                    }
                }
            }
            None => {
                let lookup = Lookup {
                    platform: opts.platform.clone(),
                    manifest: opts.lookup_manifest,
                };
                let resolved = match resolve_with(view, &self.config, &opts.reference, &lookup) {
                    Ok(r) => r,
                    Err(e) if e.kind == ErrorKind::ImageNotKnown && opts.ignore_missing => {
                        return Ok((RemoveReport::default(), Arc::clone(view)));
                    }
                    Err(e) => return Err(e),
                };
                match opts.policy {
                    Policy::Podman => podman::remove(&mut p, &resolved, opts)?,
                    Policy::Docker => docker::remove(&mut p, &resolved, &opts.reference, opts)?,
                }
            }
        }
        let plan = p.finish()?;
        let (reclaimed, after) = if opts.dry_run {
            match plan.change.is_empty() {
                true => (0, Arc::clone(view)),
                false => {
                    let applied = view.apply(&plan.change)?;
                    let released = applied.released.iter().map(|(_, s)| s).sum();
                    (released, Arc::new(applied.catalog))
                }
            }
        } else {
            (self.apply_plan(view, &plan, false)?, self.view())
        };
        Ok((
            RemoveReport {
                records: plan.records,
                removed_containers: plan.removed_containers,
                reclaimed_bytes: reclaimed,
            },
            after,
        ))
    }

    /// The relations to plan a removal on `view`: the cached tree when it is current, else
    /// the persistent layer index (advanced by every commit: no full build per removal).
    pub(crate) fn relations(&self, view: &Arc<Catalog>) -> Box<dyn Relations> {
        match self.trees.peek(view) {
            Some(tree) => Box::new(TreeRelations::new(tree)),
            None => Box::new(IndexRelations::new(self.layers.get(view))),
        }
    }

    /// Commits `plan` (or applies it to a copy for `dry_run`), publishes its events and
    /// returns the bytes released, each blob once.
    pub(crate) fn apply_plan(&self, view: &Catalog, plan: &Plan, dry_run: bool) -> Result<u64> {
        let planned = if dry_run { None } else { plan.applied.clone() };
        self.apply_change(view, &plan.change, dry_run, &plan.events, None, planned)
    }

    /// Commits `change` (or applies it to a copy), publishes `events` (plus a final extra
    /// event with the reclaimed bytes) and returns the bytes released. `planned`: the
    /// planner's result of the change, which the store may publish as is.
    fn apply_change(
        &self,
        view: &Catalog,
        change: &ChangeSet,
        dry_run: bool,
        events: &[(crate::engine::ops::EventKind, crate::model::ImageId, String)],
        last: Option<crate::engine::ops::EventKind>,
        planned: Option<crate::catalog::Applied>,
    ) -> Result<u64> {
        if change.is_empty() {
            return Ok(0);
        }
        let applied = if dry_run {
            view.apply(change)?
        } else {
            match self.commit_planned(view, change, planned)? {
                Some(a) => a,
                None => return Ok(0),
            }
        };
        let reclaimed: u64 = applied.released.iter().map(|(_, s)| s).sum();
        if !dry_run {
            let time = crate::time::now();
            let mut out: Vec<Event> = events
                .iter()
                .map(|(kind, id, name)| Event {
                    kind: *kind,
                    image_id: Some(*id),
                    name: name.clone(),
                    time,
                    reclaimed_bytes: 0,
                })
                .collect();
            if let Some(kind) = last {
                out.push(Event {
                    kind,
                    image_id: None,
                    name: String::new(),
                    time,
                    reclaimed_bytes: reclaimed,
                });
            }
            self.emit(&out);
        }
        Ok(reclaimed)
    }
}
