//! GC runs (SPEC §4.1): the policy in force, the run itself (choose, then delete through
//! the prune planner in one commit), the signal that wakes the daemon's GC loop, and the
//! counters its metrics show.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::engine::ops::{Event, EventKind, PruneFailure, PruneReport, Record};
use crate::engine::remove::plan::{Plan, Planner};
use crate::error::{Error, ErrorKind, Result};
use crate::gc::{Blocked, GcPlan, GcPolicy, Measure, choose};
use crate::graph::relations::TreeRelations;
use crate::model::Image;
use crate::time::UnixNanos;

/// How many times a run is planned again after the store refused it as stale.
const MAX_STALE: u32 = 5;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcCause {
    /// RunGc.
    Request,
    /// The policy's interval.
    Timer,
    /// A write that crossed the high threshold or the budget.
    Threshold,
}

impl GcCause {
    /// The lower-case name used in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Timer => "timer",
            Self::Threshold => "threshold",
        }
    }
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// What started it.
    pub cause: GcCause,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The space figures it decided on.
    pub measure: Measure,
    /// What it chose and why.
    pub plan: GcPlan,
    /// What the planner deleted (as PruneImages reports it).
    pub prune: PruneReport,
}

/// Totals of the runs since the daemon started (dry runs aside), for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Runs finished.
    pub runs: u64,
    /// Bytes released.
    pub bytes_freed: u64,
    /// Images deleted.
    pub images_deleted: u64,
    /// When the last run finished.
    pub last_run: Option<UnixNanos>,
    /// What held the last run back when it could not free what the limits asked for
    /// (empty when it could).
    pub last_blocked: Vec<Blocked>,
}

/// Wakes the daemon's GC loop.
#[derive(Debug, Default)]
pub struct GcSignal {
    state: Mutex<Wake>,
    cv: Condvar,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Wake {
    pending: bool,
    rearm: bool,
    closed: bool,
}

/// Why [`GcSignal::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A write crossed a limit.
    Notified,
    /// The policy changed: wait again with its interval (no run).
    Rearmed,
    /// The timeout passed.
    Timeout,
    /// The daemon is stopping.
    Closed,
}

impl GcSignal {
    /// Wakes the waiter (or the next wait returns at once).
    pub fn notify(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending = true;
        self.cv.notify_all();
    }

    /// Makes the waiter start its wait again (the policy changed).
    pub fn rearm(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rearm = true;
        self.cv.notify_all();
    }

    /// Ends every wait, now and later.
    pub fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.cv.notify_all();
    }

    /// Waits for a notification, the close, or `timeout` (`None`: no timeout).
    pub fn wait(&self, timeout: Option<Duration>) -> Woken {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.closed {
                return Woken::Closed;
            }
            if s.pending {
                s.pending = false;
                return Woken::Notified;
            }
            if s.rearm {
                s.rearm = false;
                return Woken::Rearmed;
            }
            match deadline {
                None => s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Woken::Timeout;
                    }
                    s = self
                        .cv
                        .wait_timeout(s, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// The engine's GC state.
#[derive(Debug, Default)]
pub(crate) struct GcState {
    policy: Mutex<GcPolicy>,
    stats: Mutex<GcStats>,
    signal: Arc<GcSignal>,
}

impl GcState {
    pub(crate) fn new(policy: GcPolicy) -> Self {
        Self {
            policy: Mutex::new(policy),
            ..Self::default()
        }
    }
}

impl Engine {
    /// The GC policy in force.
    pub fn gc_policy(&self) -> GcPolicy {
        self.gc
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the GC policy (checked first); the GC loop waits again with its interval.
    /// Nothing runs because of the change itself: the next write that crosses a limit,
    /// the next interval or RunGc does.
    pub fn set_gc_policy(&self, policy: GcPolicy) -> Result<()> {
        policy.validate()?;
        *self
            .gc
            .policy
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = policy;
        self.gc.signal.rearm();
        Ok(())
    }

    /// The signal the daemon's GC loop waits on.
    pub fn gc_signal(&self) -> Arc<GcSignal> {
        Arc::clone(&self.gc.signal)
    }

    /// Totals of the runs so far.
    pub fn gc_stats(&self) -> GcStats {
        self.gc
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The space figures of the store now.
    pub fn gc_measure(&self) -> Result<Measure> {
        Ok(Measure {
            fs: self.store.fs_space()?,
            store_bytes: self.store.fs_usage()?.used_bytes,
        })
    }

    /// After a write: wakes the GC loop when the store crossed the high threshold or the
    /// budget. Cheap (a `statvfs`); does nothing without such a limit.
    pub(crate) fn gc_after_write(&self) {
        let policy = self.gc_policy();
        if policy.high.is_none() && policy.budget_bytes.is_none() {
            return;
        }
        match self.gc_measure() {
            Ok(m) if crate::gc::choose::need(&policy, &m).0 > 0 => self.gc.signal.notify(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "GC: cannot measure the store"),
        }
    }

    /// Runs the GC policy once: chooses (SPEC §4.1), then deletes the chosen images through
    /// the prune planner in one commit; with `dry_run` reports exactly that and changes
    /// nothing. Runs and prunes are serialised; `deadline` bounds the wait for another.
    pub fn run_gc(
        &self,
        dry_run: bool,
        cause: GcCause,
        deadline: Option<Instant>,
    ) -> Result<GcReport> {
        let policy = self.gc_policy();
        let _serial = self.acquire_prune(deadline)?;
        let mut stale = 0;
        loop {
            let _w = (!dry_run).then(|| self.write_lock());
            let view = self.view();
            // The tree a prune -a plans on (cached per catalog version): an image's
            // children and a planner's answers are an array read, not a history hash
            // and a range query of the layer index per image.
            let tree = self.trees.get(&view);
            let measure = self.gc_measure()?;
            let plan = choose(
                &view,
                &*tree,
                &self.pinned,
                &policy,
                &measure,
                crate::time::now(),
            );
            let rel = TreeRelations::new(Arc::clone(&tree));
            let mut p = Planner::bulk(&view, &rel, &self.pinned);
            let mut errors = Vec::new();
            for c in &plan.chosen {
                let Some(img) = p.image(&c.id) else {
                    continue;
                };
                if let Err(error) = delete_one(&mut p, &img) {
                    errors.push(PruneFailure {
                        image_id: c.id,
                        error,
                    });
                }
            }
            let planned = p.finish()?;
            let reclaimed = match self.apply_plan(&view, &planned, dry_run) {
                Ok(n) => n,
                Err(e) if e.kind == ErrorKind::ConcurrentModification && stale < MAX_STALE => {
                    stale += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Plan {
                change,
                records,
                removed_containers,
                events,
                applied,
            } = planned;
            let mut prune = PruneReport {
                reclaimed_bytes: reclaimed,
                errors,
                removed_containers,
                ..PruneReport::default()
            };
            for r in records {
                match &r {
                    Record::Deleted(id) => {
                        prune.deleted_images.push(*id);
                        prune.deleted_sizes.push(super::remove::batch::image_size(
                            &view,
                            Some(&tree),
                            id,
                        ));
                    }
                    Record::Untagged(n) => prune.untagged.push(n.clone()),
                    Record::DeletedLayer(_) => {}
                }
                prune.records.push(r);
            }
            let report = GcReport {
                cause,
                dry_run,
                measure,
                plan,
                prune,
            };
            if !dry_run {
                self.finished_run(&report);
            }
            // What the run planned on and with is freed off the request's path, as a
            // prune's (after a real run, the cached tree of the view it replaced holds
            // every image it deleted).
            let stale_tree = if dry_run {
                None
            } else {
                self.trees.take_stale(&self.view())
            };
            crate::reclaim::later((view, tree, rel, change, events, applied, stale_tree));
            return Ok(report);
        }
    }

    fn finished_run(&self, report: &GcReport) {
        let time = crate::time::now();
        {
            let mut s = self.gc.stats.lock().unwrap_or_else(PoisonError::into_inner);
            s.runs += 1;
            s.bytes_freed += report.prune.reclaimed_bytes;
            s.images_deleted += report.prune.deleted_images.len() as u64;
            s.last_run = Some(time);
            s.last_blocked.clone_from(&report.plan.blocked);
        }
        self.emit(&[Event {
            kind: EventKind::Gc,
            image_id: None,
            name: report.cause.as_str().to_owned(),
            time,
            reclaimed_bytes: report.prune.reclaimed_bytes,
        }]);
    }
}

/// Deletes `img` in the plan, unless something changed since the choice: a container,
/// a child still there, a pin or a read-only store refuse it.
fn delete_one(p: &mut Planner<'_>, img: &Image) -> Result<()> {
    if let Some(c) = p.containers_of(&img.id).first() {
        return Err(Error::new(
            ErrorKind::ImageInUse,
            format!("image is in use by a container: {}", c.id),
        ));
    }
    if img.read_only || p.pinned().is_pinned(img) {
        return Err(Error::new(
            ErrorKind::Conflict,
            "image is pinned or read-only".to_owned(),
        ));
    }
    if p.rel.has_children(p.work(), img) {
        return Err(Error::new(
            ErrorKind::Conflict,
            "image has dependent child images".to_owned(),
        ));
    }
    p.delete_known(img, None, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{GcSignal, Woken};

    #[test]
    fn the_signal_wakes_for_a_notification_a_rearm_and_the_close() {
        let s = Arc::new(GcSignal::default());
        assert_eq!(s.wait(Some(Duration::from_millis(1))), Woken::Timeout);
        s.notify();
        assert_eq!(s.wait(None), Woken::Notified);
        s.rearm();
        assert_eq!(s.wait(None), Woken::Rearmed);
        let waiter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || s.wait(None))
        };
        s.close();
        assert_eq!(waiter.join().ok(), Some(Woken::Closed));
        assert_eq!(s.wait(None), Woken::Closed);
    }
}
