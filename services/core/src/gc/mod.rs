//! Garbage collection by policy (SPEC §4.1): the policy ([`GcPolicy`]), the choice of
//! what a run deletes ([`choose()`]) and its plan ([`GcPlan`]). The engine runs a plan
//! through the prune planner (`Engine::run_gc`).

pub mod choose;
pub mod policy;

pub use choose::{
    Blocked, Blocker, FsSpace, GcChoice, GcPlan, Measure, Trigger, Why, choose, last_use,
};
pub use policy::{GcPolicy, Threshold};
