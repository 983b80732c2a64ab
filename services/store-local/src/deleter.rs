//! Deletes the blob files a committed change released on a background thread, so that a
//! removal or prune answers as soon as its commit is durable instead of after every
//! unlink (SPEC §9: blobs are deleted *after* the commit that releases them; when does not
//! matter for safety, a crash in between leaves orphans the start-up sweep removes).
//!
//! The thread runs the same guarded deletion as before ([`Inner::delete_unused`]: under
//! the blob lock, skipping leased blobs and blobs a newer view refers to again), so a load
//! that brings a released blob back cannot lose it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;

use imaged_core::Digest;

use crate::inner::Inner;

/// A batch of released blobs and their bytes.
type Batch = (Vec<Digest>, u64);

/// The background deleter of one store.
pub(crate) struct Deleter {
    tx: Mutex<Option<Sender<Batch>>>,
    pending: Arc<Pending>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Batches submitted and not yet deleted.
#[derive(Default)]
struct Pending {
    count: Mutex<usize>,
    idle: Condvar,
    /// Bytes of the blobs submitted and not yet deleted.
    bytes: AtomicU64,
}

impl Pending {
    fn add(&self, n: isize) {
        let mut c = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *c = c.saturating_add_signed(n);
        if *c == 0 {
            self.idle.notify_all();
        }
    }
}

/// How much nicer than the daemon the deleter thread runs (Linux nice values are per
/// thread). On a busy 2-core node the unlinks of a large prune (tens of thousands of
/// files) otherwise take a core from the requests that follow it: with CFS weights a
/// nice-10 thread gets ~10% of a contended core and still every idle cycle, so the
/// deletions finish as soon as the daemon is idle.
const NICENESS: i32 = 10;

/// Lowers the calling thread's priority by [`NICENESS`]; failing to is harmless (logged).
fn lower_priority() {
    if let Err(e) = rustix::process::nice(NICENESS) {
        tracing::debug!(error = %e, "the blob deleter keeps the daemon's priority");
    }
}

impl Deleter {
    /// Starts the thread. `None` when the thread cannot be created (deletion then stays
    /// on the caller's thread).
    pub(crate) fn spawn(inner: Weak<Inner>) -> Option<Self> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let pending = Arc::new(Pending::default());
        let p = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("imaged-blob-delete".to_owned())
            .spawn(move || {
                lower_priority();
                while let Ok((batch, bytes)) = rx.recv() {
                    if let Some(inner) = inner.upgrade() {
                        inner.delete_unused_paced(batch);
                    }
                    p.bytes.fetch_sub(bytes, Ordering::Relaxed);
                    p.add(-1);
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "no background blob deletion"))
            .ok()?;
        Some(Self {
            tx: Mutex::new(Some(tx)),
            pending,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `batch` (blobs of `bytes` in all); gives it back when the thread is gone.
    pub(crate) fn submit(&self, batch: Vec<Digest>, bytes: u64) -> Result<(), Vec<Digest>> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else {
            return Err(batch);
        };
        self.pending.add(1);
        self.pending.bytes.fetch_add(bytes, Ordering::Relaxed);
        tx.send((batch, bytes)).map_err(|e| {
            self.pending.bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.pending.add(-1);
            e.0.0
        })
    }

    /// Bytes of the blobs released and not yet deleted (free as far as the store's
    /// images are concerned: GC counts them as available).
    pub(crate) fn pending_bytes(&self) -> u64 {
        self.pending.bytes.load(Ordering::Relaxed)
    }

    /// Waits until every submitted batch has been handled.
    pub(crate) fn wait_idle(&self) {
        let mut c = self
            .pending
            .count
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while *c > 0 {
            c = self
                .pending
                .idle
                .wait(c)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Deleter {
    /// Finishes the queued deletions before the store closes.
    fn drop(&mut self) {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::warn!("the blob deletion thread panicked; the next sweep cleans up");
        }
    }
}
