//! Frees large values off the request's path: the last catalog holding the images a
//! prune deleted takes ~0.5 s to drop at 80k images (every record's allocations), which
//! the caller need not wait for.

use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock, PoisonError};

type Garbage = Box<dyn Send>;

static QUEUE: OnceLock<Option<Mutex<Sender<Garbage>>>> = OnceLock::new();

fn start() -> Option<Mutex<Sender<Garbage>>> {
    let (tx, rx) = mpsc::channel::<Garbage>();
    std::thread::Builder::new()
        .name("imaged-reclaim".to_owned())
        .spawn(move || {
            while let Ok(garbage) = rx.recv() {
                drop(garbage);
            }
        })
        .map_err(|e| tracing::debug!(error = %e, "no reclaim thread: values are dropped in place"))
        .ok()?;
    Some(Mutex::new(tx))
}

/// Drops `value` on the reclaim thread (in place when there is none).
pub(crate) fn later<T: Send + 'static>(value: T) {
    let Some(queue) = QUEUE.get_or_init(start) else {
        return;
    };
    let tx = queue.lock().unwrap_or_else(PoisonError::into_inner);
    // A send fails only when the thread is gone: the value then drops here.
    let _ = tx.send(Box::new(value));
}
