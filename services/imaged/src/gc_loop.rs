//! The daemon's GC loop (SPEC §4.1): one thread that runs the policy when its interval
//! passes and when a write crossed the high threshold or the budget
//! ([`GcSignal::notify`]). One run at a time (the engine serialises runs with prunes).

use std::sync::Arc;
use std::thread::JoinHandle;

use imaged_core::Engine;
use imaged_core::engine::gc::{GcCause, GcSignal, Woken};

/// The running loop; [`GcLoop::stop`] ends it.
pub(crate) struct GcLoop {
    signal: Arc<GcSignal>,
    thread: Option<JoinHandle<()>>,
}

impl GcLoop {
    /// Starts the loop over `engine`.
    pub(crate) fn start(engine: Arc<Engine>) -> std::io::Result<Self> {
        let signal = engine.gc_signal();
        let thread = std::thread::Builder::new()
            .name("imaged-gc".into())
            .spawn(move || run(&engine))?;
        Ok(Self {
            signal,
            thread: Some(thread),
        })
    }

    /// Ends the loop after the run in progress, if any.
    pub(crate) fn stop(mut self) {
        self.signal.close();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::warn!("the GC loop panicked");
        }
    }
}

impl Drop for GcLoop {
    fn drop(&mut self) {
        // A start-up that fails after the loop started ends it too.
        self.signal.close();
    }
}

fn run(engine: &Engine) {
    let signal = engine.gc_signal();
    loop {
        let policy = engine.gc_policy();
        let cause = match signal.wait(policy.interval) {
            Woken::Closed => return,
            Woken::Rearmed => continue,
            Woken::Timeout => GcCause::Timer,
            // A write crossed a limit: run if it still is.
            Woken::Notified => match engine.gc_measure() {
                Ok(m) if imaged_core::gc::choose::need(&engine.gc_policy(), &m).0 > 0 => {
                    GcCause::Threshold
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "GC: cannot measure the store");
                    continue;
                }
            },
        };
        if !engine.gc_policy().is_active() {
            continue;
        }
        match engine.run_gc(false, cause, None) {
            Ok(r) => {
                tracing::info!(
                    cause = cause.as_str(),
                    deleted = r.prune.deleted_images.len(),
                    reclaimed_bytes = r.prune.reclaimed_bytes,
                    need_bytes = r.plan.need_bytes,
                    errors = r.prune.errors.len(),
                    "GC run"
                );
                if !r.plan.reaches_target() {
                    let blocked: Vec<String> = r
                        .plan
                        .blocked
                        .iter()
                        .map(|b| {
                            format!(
                                "{}: {} images, {} bytes",
                                b.reason.as_str(),
                                b.images,
                                b.bytes
                            )
                        })
                        .collect();
                    tracing::warn!(
                        need_bytes = r.plan.need_bytes,
                        planned_bytes = r.plan.freed_bytes,
                        ?blocked,
                        "GC could not free enough space"
                    );
                }
            }
            Err(e) => tracing::warn!(cause = cause.as_str(), error = %e, "GC run failed"),
        }
    }
}
