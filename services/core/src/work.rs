//! Work counters: how many elementary steps (index entries built, images examined, sort
//! elements) an operation performed on the calling thread. Tests use them to prove that
//! listing and pruning grow linearly with the store, independent of machine speed.

use std::cell::Cell;

thread_local! {
    static WORK: Cell<u64> = const { Cell::new(0) };
}

/// Counts `n` steps on this thread.
#[inline]
pub fn add(n: u64) {
    WORK.with(|w| w.set(w.get().wrapping_add(n)));
}

/// Steps counted on this thread since the last [`take`].
pub fn take() -> u64 {
    WORK.with(|w| w.replace(0))
}
