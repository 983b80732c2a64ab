//! GC-by-policy cases (SPEC §4.1): the choice on every backend, run through the prune
//! planner, checked as a prune report (records in deletion order, what remains). Images
//! are set up oldest first (ascending creation time, so that every backend's last use,
//! from the record's creation or the store's, has the same order); `min_age` is 0 since a
//! backend's store stamps its own times.

use std::time::Duration;

use super::build::case;
use super::{Case, Rec::D, Rec::U, Reclaim};
use crate::images::ImageSpec;
use imaged_core::gc::GcPolicy;
use imaged_core::model::ContainerState::Stopped;

/// A budget no store meets: every image that may go, goes.
fn everything() -> GcPolicy {
    GcPolicy {
        budget_bytes: Some(0),
        min_age: Duration::ZERO,
        ..GcPolicy::default()
    }
}

/// The GC cases.
pub(super) fn cases() -> Vec<Case> {
    let base = ImageSpec::base("gc-p", 1);
    vec![
        case(
            "gc: least recently used first, a parent after its child, never an image in use",
            "SPEC §4.1",
        )
        .image("p", base.clone())
        .image("c", base.child("gc-c", 2).name("localhost/gc/c:1"))
        .image("x", ImageSpec::base("gc-x", 3).name("localhost/gc/x:1"))
        .image("y", ImageSpec::base("gc-y", 4).name("localhost/gc/y:1"))
        .ctr("ctr1", "x", Stopped)
        .gc(everything())
        .records(vec![
            U("localhost/gc/c:1"),
            D("c"),
            D("p"),
            U("localhost/gc/y:1"),
            D("y"),
        ])
        .remaining(&["x"])
        .reclaimed(Reclaim::Positive),
        case(
            "gc: keep_tags keeps the newest tags of each repository",
            "SPEC §4.1",
        )
        .image("r1", ImageSpec::base("gc-r1", 1).name("localhost/gc/r:1"))
        .image("r2", ImageSpec::base("gc-r2", 2).name("localhost/gc/r:2"))
        .image("r3", ImageSpec::base("gc-r3", 3).name("localhost/gc/r:3"))
        .image("o", ImageSpec::base("gc-o", 4).name("localhost/gc/o:1"))
        .gc(GcPolicy {
            keep_tags: 1,
            ..everything()
        })
        .records(vec![
            U("localhost/gc/r:1"),
            D("r1"),
            U("localhost/gc/r:2"),
            D("r2"),
        ])
        .remaining(&["r3", "o"]),
        case("gc: a policy with no limit deletes nothing", "SPEC §4.1")
            .image("a", ImageSpec::base("gc-a", 1).name("localhost/gc/a:1"))
            .image("d", ImageSpec::base("gc-d", 2))
            .gc(GcPolicy {
                min_age: Duration::ZERO,
                ..GcPolicy::default()
            })
            .records(vec![])
            .remaining(&["a", "d"])
            .reclaimed(Reclaim::Zero),
    ]
}
