//! The backend conformance suite: SPEC §2–§5 as data.
//!
//! Every [`Case`] is a setup (images built with [`crate::images`], container records), one
//! action (RemoveImage with either policy, CRI RemoveImage, PruneImages, ListImages) and the
//! expected outcome (error reason, records, remaining images, names, containers). Cases are
//! plain data so that other drivers can execute them: the in-process driver here
//! ([`run_case`], [`trials`]) runs them on an [`Engine`](imaged_core::Engine) over any [`Store`]; a gRPC driver
//! calls [`setup`] on the store behind its server, performs [`Case::action`] through a
//! client, converts the replies into an [`Observed`] and calls [`check`]; a driver that
//! only has the public API loads the archives of [`api_case`] instead and checks with
//! [`check_observed`] on [`Observation`]s of the store.
//!
//! Sources: the decision table (peers-semantics §3.6) for both policies, the peers'
//! scenarios (§8, adapted where SPEC deviates — each such case names its deviation), every
//! filter key with positive, `!=` and malformed forms, and paging under concurrent removal
//! ([`paging_under_removal`]).

mod batch_cases;
mod build;
mod check;
mod gc_cases;
mod list_cases;
mod paging;
mod prune_cases;
mod remote;
mod remove_cases;
mod remove_scenarios;

use std::sync::Arc;

use crate::images::ImageSpec;
use imaged_core::model::ContainerState;
use imaged_core::ops::{PruneOptions, RemoveOptions};
use imaged_core::store::Store;

pub use check::{
    Fixture, ListInstance, Observed, RealContainer, RealList, SetupHook, check, execute, setup,
    setup_with,
};
pub use paging::paging_under_removal;
pub use remote::{ApiArchive, ApiCase, Observation, api_case, check_observed};

/// A reference as a case writes it, expanded once the setup's image IDs are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `sha256:<hex>` of the image with this key.
    Id(&'static str),
    /// The bare 64 hex of the image with this key.
    Hex(&'static str),
    /// The first `n` hex characters of the image's ID.
    Prefix(&'static str, usize),
    /// `<repo>@<manifest digest>` of the image with this key.
    RepoDigest(&'static str, &'static str),
    /// A literal string.
    Text(String),
}

/// A container record of the setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupContainer {
    /// Container ID.
    pub id: &'static str,
    /// Key of the image it uses.
    pub image: &'static str,
    /// State.
    pub state: ContainerState,
    /// External container.
    pub external: bool,
}

/// What a case does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// RemoveImage of each reference in turn (stops at the first error), with these
    /// options (`reference` ignored).
    Remove(Vec<Ref>, RemoveOptions),
    /// RemoveImages: one batch call.
    RemoveBatch(Batch),
    /// CRI RemoveImage.
    CriRemove(Ref),
    /// PruneImages.
    Prune(PruneOptions),
    /// ListImages (every page) with these filters; `all`.
    List(Vec<String>, bool),
    /// SetGcPolicy with this policy, then RunGc (its prune report is checked as a
    /// prune's).
    Gc(imaged_core::gc::GcPolicy),
}

/// A RemoveImages call: the references (or, without them, the filters / `all`
/// selection) and the options every removal shares (`reference` ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// References, removed in order.
    pub refs: Vec<Ref>,
    /// ListImages filters selecting the images (no references).
    pub filters: Vec<String>,
    /// Every image (no references, no filters).
    pub all: bool,
    /// Shared options.
    pub opts: RemoveOptions,
}

/// The expected outcome of one removal of a batch: its records, or its error reason.
pub type BatchItem = Result<Vec<Rec>, &'static str>;

/// An expected record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rec {
    /// `untagged: <name>`.
    U(&'static str),
    /// `deleted: <id of key>`.
    D(&'static str),
    /// `deleted_layer`: the chain ID of key's layers up to the one at this index (0: the
    /// bottom layer), the DOCKER policy's record of a released layer.
    L(&'static str, usize),
}

/// Expected reclaimed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// Nothing released.
    Zero,
    /// Something released.
    Positive,
    /// Exactly the bytes of every blob of the store before the action.
    AllBlobs,
}

/// The expected outcome. `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// The `ErrorInfo` reason of the failure; `None` = success.
    pub error: Option<&'static str>,
    /// A substring of the error message; `{hex:k}`, `{id:k}`, `{short:k}` expand to the
    /// image with key `k`.
    pub message: Option<&'static str>,
    /// Records, in order.
    pub records: Option<Vec<Rec>>,
    /// Keys of the images left in the store (all of them).
    pub remaining: Option<Vec<&'static str>>,
    /// Names of an image afterwards (for List: the listed names).
    pub names: Vec<(&'static str, Vec<&'static str>)>,
    /// Container records left.
    pub containers: Option<Vec<&'static str>>,
    /// Container records the action reports removed.
    pub removed_containers: Option<Vec<&'static str>>,
    /// List: keys listed, in order when `ordered`.
    pub listed: Option<Vec<&'static str>>,
    /// List: compare `listed` in order.
    pub ordered: bool,
    /// Prune: keys of the images reported in `errors`.
    pub prune_errors: Option<Vec<&'static str>>,
    /// Reclaimed bytes.
    pub reclaimed: Option<Reclaim>,
    /// RemoveImages: each removal's outcome, in order (the case's `records`,
    /// `removed_containers` and `reclaimed` then apply to the successful ones together).
    pub batch: Option<Vec<BatchItem>>,
}

/// One conformance case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Unique name.
    pub name: String,
    /// Where the behaviour comes from (decision-table row, scenario number, SPEC section).
    pub source: &'static str,
    /// How SPEC deviates from the peer here, if it does.
    pub deviation: Option<&'static str>,
    /// Images of the setup, by key.
    pub images: Vec<(&'static str, ImageSpec)>,
    /// Names added after the images are stored (key, name), newest first as TagImage does.
    pub tags: Vec<(&'static str, &'static str)>,
    /// Container records of the setup.
    pub containers: Vec<SetupContainer>,
    /// The action.
    pub action: Action,
    /// The expectation.
    pub expect: Expect,
}

impl Case {
    /// Whether the action can be dry-run: a single RemoveImage, a RemoveImages batch or a
    /// PruneImages (the dry run must report the same as the real call and change
    /// nothing).
    pub fn has_dry_run(&self) -> bool {
        match &self.action {
            Action::Remove(refs, _) => refs.len() == 1,
            Action::RemoveBatch(_) | Action::Prune(_) | Action::Gc(_) => true,
            Action::CriRemove(_) | Action::List(..) => false,
        }
    }
}

/// Every case: removal (both policies, CRI), prune, list.
pub fn cases() -> Vec<Case> {
    let mut v = remove_cases::cases();
    v.extend(batch_cases::cases());
    v.extend(prune_cases::cases());
    v.extend(gc_cases::cases());
    v.extend(list_cases::cases());
    v
}

/// The removal cases (decision table, both policies, CRI, RemoveImages batches) — for
/// drivers that re-run them.
pub fn removal_cases() -> Vec<Case> {
    let mut v = remove_cases::cases();
    v.extend(batch_cases::cases());
    v
}

/// The prune cases.
pub fn prune_cases() -> Vec<Case> {
    prune_cases::cases()
}

/// The list and filter cases.
pub fn list_cases() -> Vec<Case> {
    list_cases::cases()
}

/// Runs one case on a fresh store with the in-process driver. Write actions run first as a
/// dry run on the same setup (the report must equal the real one and nothing may change).
pub fn run_case(case: &Case, store: Arc<dyn Store>) -> Result<(), String> {
    run_case_with(case, store, false)
}

/// [`run_case`], with the engine's derived indexes built first when `warm` (a prune then
/// selects on the cached tree instead of the persistent layer index: both must agree).
pub fn run_case_with(case: &Case, store: Arc<dyn Store>, warm: bool) -> Result<(), String> {
    run_case_hooked(case, store, None, warm)
}

/// [`run_case_with`] on a backend that makes the setup's containers (and some names) itself
/// (`hook`, see [`SetupHook`]).
pub fn run_case_hooked(
    case: &Case,
    store: Arc<dyn Store>,
    hook: Option<&dyn SetupHook>,
    warm: bool,
) -> Result<(), String> {
    let fixture = setup_with(case, &*store, hook)?;
    run_on_setup(case, store, &fixture, warm)
}

/// Runs `case`'s action and checks on a store whose setup is done already (`fixture`).
fn run_on_setup(
    case: &Case,
    store: Arc<dyn Store>,
    fixture: &Fixture,
    warm: bool,
) -> Result<(), String> {
    let fixture = fixture.clone();
    let engine = imaged_core::engine::Engine::new(Arc::clone(&store), Default::default());
    if warm {
        engine.warm();
    }
    let before = store.view();
    if case.has_dry_run() {
        let dry = execute(&engine, case, &fixture, true);
        if store.view().generation() != before.generation() {
            return Err("the dry run changed the store".to_owned());
        }
        let real = execute(&engine, case, &fixture, false);
        if dry != real {
            return Err(format!(
                "the dry run reported {dry:?}, the real call {real:?}"
            ));
        }
        check(case, &fixture, &real, &before, &store.view())
    } else {
        let out = execute(&engine, case, &fixture, false);
        check(case, &fixture, &out, &before, &store.view())
    }
}

/// A fresh, empty store of one backend, with the backend's own setup steps (if any) and
/// whatever must live as long as the store (a temporary directory, a daemon, a podman
/// store) in the guard. Dropped in field order: the store first, the guard last.
pub struct Fresh {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// How the backend makes containers and names itself, for a store that does not take
    /// container records (`None`: everything goes through `Store::apply`).
    pub hook: Option<Box<dyn SetupHook>>,
    /// Kept alive until the case ends.
    pub guard: Box<dyn std::any::Any + Send>,
}

impl Fresh {
    /// A store whose setup goes entirely through `Store::apply`.
    pub fn plain(store: Arc<dyn Store>, guard: Box<dyn std::any::Any + Send>) -> Self {
        Self {
            store,
            hook: None,
            guard,
        }
    }
}

/// A backend under test: its name (shown in every test name) and how to make a fresh
/// store. A new backend joins the suite with one `Backend` line in `tests/conformance.rs`.
#[derive(Clone, Copy)]
pub struct Backend {
    /// Short name, e.g. `memory`, `local`.
    pub name: &'static str,
    /// Makes a fresh, empty store; `Err` (the reason) fails the test.
    pub fresh: fn() -> Result<Fresh, String>,
    /// Why the backend cannot represent a case, for the cases it cannot (reported as an
    /// ignored test whose name carries the reason, never skipped silently).
    pub excluded: fn(&Case) -> Option<&'static str>,
    /// At most this many of the backend's tests at a time (0: no limit), for backends
    /// whose fixtures drive external tools that contend with each other.
    pub max_parallel: usize,
    /// ListImages cases with equal setups share one store (set up once, by the first of
    /// them to run): ListImages never writes, and a backend whose setup drives external
    /// tools spends its time there, not in the listing.
    pub share_list_setups: bool,
}

/// Excludes no case.
pub fn no_exclusions(_: &Case) -> Option<&'static str> {
    None
}

/// Why the containers-storage backends cannot represent `case` (an ignored test with this
/// reason), `None` for the cases they run. Manifest lists are made by `podman manifest
/// create/add` there ([`SetupHook::list`]); what podman does differently excludes:
/// * a list older than a cutoff relative to now (`until=<duration>`): podman stamps a list
///   with the time `podman manifest create` ran (c/storage's `created`, which libimage's
///   `until` compares), while the case's list was created seconds after the epoch;
/// * a podman container the action is expected to remove: on containers-storage imaged
///   never removes podman's containers (it would have to write podman's database) and
///   answers with an error naming the container instead (issue 12 §3; the store's own
///   tests cover that answer).
pub fn cstorage_excluded(case: &Case) -> Option<&'static str> {
    let has_list = case.images.iter().any(|(_, s)| s.instances.is_some());
    if has_list && relative_cutoff(case) {
        return Some(
            "podman stamps a manifest list with the time of `podman manifest create`, never \
             older than a cutoff relative to now",
        );
    }
    let podman_removed = case
        .expect
        .removed_containers
        .iter()
        .flatten()
        .any(|id| case.containers.iter().any(|c| c.id == *id && !c.external));
    if podman_removed {
        return Some("imaged never removes podman's own containers");
    }
    None
}

/// Whether the case lists with an `until` filter given as a duration (`until=1h`: a cutoff
/// relative to now, not a timestamp).
fn relative_cutoff(case: &Case) -> bool {
    let Action::List(filters, _) = &case.action else {
        return false;
    };
    filters.iter().any(|f| {
        let value = f
            .strip_prefix("until!=")
            .or_else(|| f.strip_prefix("until="))
            .unwrap_or("");
        value.starts_with(|c: char| c.is_ascii_digit()) && value.ends_with(['h', 'm', 's'])
    })
}

/// A counting semaphore bounding one backend's concurrent tests.
struct Slots {
    free: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Slots {
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut n = self
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while *n == 0 {
                n = self
                    .cv
                    .wait(n)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *n -= 1;
        }
        struct Release<'a>(&'a Slots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let mut n = self
                    .0
                    .free
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *n += 1;
                self.0.cv.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }
}

/// Runs `f` on a fresh store of `b` within its parallelism bound.
fn on_fresh(
    b: Backend,
    slots: &Option<Arc<Slots>>,
    f: impl FnOnce(Fresh) -> Result<(), String>,
) -> Result<(), libtest_mimic::Failed> {
    let go = || f((b.fresh)()?);
    match slots {
        Some(s) => s.run(go),
        None => go(),
    }
    .map_err(libtest_mimic::Failed::from)
}

/// The setup of a case, the part [`Backend::share_list_setups`] compares.
type SetupKey = (
    Vec<(&'static str, ImageSpec)>,
    Vec<(&'static str, &'static str)>,
    Vec<SetupContainer>,
);

fn setup_key(c: &Case) -> SetupKey {
    (c.images.clone(), c.tags.clone(), c.containers.clone())
}

/// A store set up once for the ListImages cases of one setup, dropped (store removed) with
/// the last of their tests.
#[derive(Default)]
struct SharedSetup {
    state: std::sync::Mutex<Option<Result<(Fresh, Fixture), String>>>,
}

impl SharedSetup {
    /// The store and fixture, set up by the first caller (within the backend's bound).
    fn get(&self, b: Backend, case: &Case) -> Result<(Arc<dyn Store>, Fixture), String> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready = st.get_or_insert_with(|| {
            let fresh = (b.fresh)()?;
            let fixture = setup_with(case, &*fresh.store, fresh.hook.as_deref())?;
            // The store reads what the setup's tools wrote here, alone, as an unshared case
            // does before its action: the cases then read it from several threads at once.
            let _ = fresh.store.view();
            Ok((fresh, fixture))
        });
        match ready {
            Ok((fresh, fixture)) => Ok((Arc::clone(&fresh.store), fixture.clone())),
            Err(e) => Err(format!("the shared setup failed: {e}")),
        }
    }
}

/// Every case as its own named test on every backend: `<case name> [<backend>]`, prune
/// cases again warm (`[<backend>, warm]`: selection on the cached tree instead of the
/// persistent layer index), and the paging scenario. A case the backend cannot represent
/// is an ignored test named `<case name> [<backend>] (excluded: <reason>)`. `cargo test -p
/// imaged-testkit -- '<case name>'` runs one case on every backend.
pub fn trials(backends: &[Backend]) -> Vec<libtest_mimic::Trial> {
    use libtest_mimic::{Failed, Trial};
    let all = cases();
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    let duplicates: Vec<String> = all
        .iter()
        .filter(|c| !names.insert(c.name.clone()))
        .map(|c| c.name.clone())
        .collect();
    out.push(Trial::test("case names are unique", move || {
        if duplicates.is_empty() {
            Ok(())
        } else {
            Err(Failed::from(format!(
                "duplicate case names: {duplicates:?}"
            )))
        }
    }));
    out.push(Trial::test(
        "every decision-table row has cases for both policies",
        || decision_table_covered().map_err(Failed::from),
    ));
    for backend in backends {
        let b = *backend;
        let slots = (b.max_parallel > 0).then(|| {
            Arc::new(Slots {
                free: std::sync::Mutex::new(b.max_parallel),
                cv: std::sync::Condvar::new(),
            })
        });
        let mut shared: Vec<(SetupKey, Arc<SharedSetup>)> = Vec::new();
        for case in &all {
            let share =
                (b.share_list_setups && matches!(case.action, Action::List(..))).then(|| {
                    let key = setup_key(case);
                    if let Some((_, s)) = shared.iter().find(|(k, _)| *k == key) {
                        return Arc::clone(s);
                    }
                    let s = Arc::new(SharedSetup::default());
                    shared.push((key, Arc::clone(&s)));
                    s
                });
            let runs: &[bool] = if matches!(case.action, Action::Prune(_)) {
                &[false, true]
            } else {
                &[false]
            };
            for &warm in runs {
                let label = if warm {
                    format!("{} [{}, warm]", case.name, b.name)
                } else {
                    format!("{} [{}]", case.name, b.name)
                };
                if let Some(why) = (b.excluded)(case) {
                    out.push(
                        Trial::test(format!("{label} (excluded: {why})"), || Ok(()))
                            .with_ignored_flag(true),
                    );
                    continue;
                }
                let c = case.clone();
                let slots = slots.clone();
                if let Some(setup) = share.clone() {
                    out.push(Trial::test(label, move || {
                        let go = || {
                            let (store, fixture) = setup.get(b, &c)?;
                            run_on_setup(&c, store, &fixture, warm)
                        };
                        match &slots {
                            Some(s) => s.run(go),
                            None => go(),
                        }
                        .map_err(|e| Failed::from(format!("[{}] {e}", c.source)))
                    }));
                    continue;
                }
                out.push(Trial::test(label, move || {
                    on_fresh(b, &slots, |fresh| {
                        run_case_hooked(&c, Arc::clone(&fresh.store), fresh.hook.as_deref(), warm)
                            .map_err(|e| format!("[{}] {e}", c.source))
                    })
                }));
            }
        }
        let slots = slots.clone();
        out.push(Trial::test(
            format!("paging under concurrent removal [{}]", b.name),
            move || {
                on_fresh(b, &slots, |fresh| {
                    paging_under_removal(Arc::clone(&fresh.store))
                })
            },
        ));
    }
    out
}

/// Every row of the decision table (peers-semantics §3.6) has a case for each policy it
/// applies to.
fn decision_table_covered() -> Result<(), String> {
    let cases = removal_cases();
    for row in 1..=22 {
        let tag = format!("#{row}");
        let policies: &[&str] = match row {
            16 => &["podman"], // Docker has no external (build) containers.
            22 => &["cri"],
            _ => &["podman", "docker"],
        };
        for policy in policies {
            let found = cases.iter().any(|c| {
                c.name.starts_with(policy)
                    && c.source.starts_with("table")
                    && c.source.split([' ', ',']).any(|w| w == tag)
            });
            if !found {
                return Err(format!("no {policy} case for decision-table row {tag}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The containers-storage exclusions are exactly the list case with a cutoff relative
    /// to now and the two forced removals of a podman container, nothing else: every other
    /// case with a manifest list runs.
    #[test]
    fn cstorage_excludes_only_relative_list_times_and_podman_container_removals() {
        let all = cases();
        let excluded: Vec<(String, &str)> = all
            .iter()
            .filter_map(|c| cstorage_excluded(c).map(|why| (c.name.clone(), why)))
            .collect();
        let names = |what: &str| -> Vec<&str> {
            excluded
                .iter()
                .filter(|(_, w)| w.contains(what))
                .map(|(n, _)| n.as_str())
                .collect()
        };
        assert_eq!(names("manifest create"), vec!["list: until=1h"]);
        assert_eq!(names("podman's own").len(), 2, "{excluded:#?}");
        assert_eq!(excluded.len(), 3, "{excluded:#?}");
        let with_list = all
            .iter()
            .filter(|c| c.images.iter().any(|(_, s)| s.instances.is_some()))
            .count();
        assert!(with_list > 60, "{with_list}");
    }
}
