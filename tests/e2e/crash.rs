//! Crash safety through the real daemon (issue 4, SPEC §9): `imaged --store local` is
//! driven by several concurrent clients (loads, removals, prunes, tags, untags, container
//! register/unregister, rejected loads) and SIGKILLed after a random number of issued
//! requests, with requests in flight; then the store's files are checked:
//!
//! * the local store's invariant checker (`imaged_store_local::test_support`): every image
//!   has all its blobs with the right digest and size, no name on two images, containers
//!   refer to existing images;
//! * durability: every lane's images, names and containers are exactly what its
//!   acknowledged requests imply, or that plus its one in-flight request (see `lanes`);
//! * after a restart (start-up sweep, then an immediate SIGKILL): no unreferenced blob and
//!   nothing in `ingest/` survives.
//!
//! The seed is printed; `IMAGED_E2E_CRASH_SEED` replays a run, `IMAGED_E2E_CRASH_CYCLES`
//! changes its length. The negative tests at the end break the store between a kill and
//! the checks and assert that exactly that violation is reported.

mod lanes;
mod unwritable;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use imaged_client::Client;
use imaged_store_local::test_support::{invariants, raw};
use lanes::{Expect, Lane, LaneState};

use crate::support::Daemon;

const SEED_ENV: &str = "IMAGED_E2E_CRASH_SEED";
const CYCLES_ENV: &str = "IMAGED_E2E_CRASH_CYCLES";
/// Kill/restart cycles of the main test (each also restarts once more to check the sweep).
const CYCLES: usize = 200;
/// Concurrent clients (lanes), each with one request in flight.
const LANES: usize = 4;
/// Longest a single request may take before the test fails.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// Longest the kill trigger may take to arrive.
const TRIGGER_LIMIT: Duration = Duration::from_secs(60);

/// What the kill needs to know: requests issued so far, the one to kill after, whether it
/// has been sent.
struct Control {
    issued: AtomicUsize,
    target: usize,
    trigger: Mutex<Option<mpsc::Sender<()>>>,
    killed: AtomicBool,
}

impl Control {
    /// Asks the test thread to kill the daemon now (once).
    fn fire(&self) {
        if let Some(tx) = self.trigger.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

/// Counts over a run.
#[derive(Debug, Default)]
struct Stats {
    /// Requests answered (success or the predicted error).
    acked: usize,
    /// Requests in flight at a kill that would change the state.
    in_flight: usize,
    /// Of those, found committed after the kill (killed between commit and answer).
    applied: usize,
    /// Of those, found not committed.
    not_applied: usize,
    /// Unreferenced blob files found right after a kill (removed by the next start).
    orphan_blobs: usize,
    /// Files found in `ingest/` right after a kill.
    ingest_files: usize,
    /// Largest number of images seen after a kill.
    max_images: usize,
}

/// The first cycle that found problems.
#[derive(Debug)]
struct Failure {
    seed: u64,
    cycle: usize,
    problems: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "crash test seed {} ({SEED_ENV}={} to replay), cycle {}:",
            self.seed, self.seed, self.cycle
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Called after a kill, before the checks, to break the store on purpose; returns the
/// violations it expects to be reported, or `None` when it did nothing this time.
type Sabotage<'a> = &'a mut dyn FnMut(&Path, &[Lane]) -> Option<Vec<String>>;

fn seed() -> u64 {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash test seed {seed} (set {SEED_ENV} to replay)");
    seed
}

/// Runs `cycles` kill/restart cycles; returns the counts and the (stopped) daemon, whose
/// directory holds the store, or the first cycle's problems.
fn crash_loop(
    seed: u64,
    cycles: usize,
    mut sabotage: Option<Sabotage<'_>>,
) -> Result<(Stats, Daemon), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lanes: Vec<Lane> = (0..LANES).map(|n| Lane::new(n, rng.u64(..))).collect();
    let mut stats = Stats::default();
    let mut d = Daemon::start("local");
    let root = d.root();
    for cycle in 0..cycles {
        let fail = |problems: Vec<String>| Failure {
            seed,
            cycle,
            problems,
        };
        // Drive the lanes; kill once `target` requests have been issued, plus a random
        // busy wait, so the kill lands anywhere in the requests in flight.
        let (tx, rx) = mpsc::channel();
        let ctl = Arc::new(Control {
            issued: AtomicUsize::new(0),
            target: rng.usize(1..=3 * LANES),
            trigger: Mutex::new(Some(tx)),
            killed: AtomicBool::new(false),
        });
        let task = rt.spawn(drive(
            d.url().to_owned(),
            std::mem::take(&mut lanes),
            Arc::clone(&ctl),
        ));
        match rx.recv_timeout(TRIGGER_LIMIT) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("no kill trigger in {TRIGGER_LIMIT:?}"),
        }
        for _ in 0..rng.u32(0..400_000) {
            std::hint::spin_loop();
        }
        ctl.killed.store(true, Ordering::SeqCst);
        d.kill();
        let (returned, errors, acked) = rt.block_on(task).unwrap();
        lanes = returned;
        stats.acked += acked;
        if !errors.is_empty() {
            return Err(fail(errors));
        }

        let mut expected = None;
        if let Some(s) = sabotage.as_mut() {
            expected = s(&root, &lanes);
        }
        let mut problems = invariants::committed_state(&root);
        if problems.is_empty() {
            for p in invariants::swept_state(&root) {
                if p.starts_with("unreferenced blob") {
                    stats.orphan_blobs += 1;
                } else {
                    stats.ingest_files += 1;
                }
            }
            problems = check_lanes(&root, &mut lanes, &mut stats);
        }
        if !problems.is_empty() || expected.is_some() {
            return Err(fail(problems));
        }

        // Restart: the start-up sweep must leave nothing behind. Killed right after the
        // ready line, so the files are checked exactly as the sweep left them.
        d = d.restart();
        d.kill();
        let problems = invariants::all(&root);
        if !problems.is_empty() {
            return Err(fail(
                problems
                    .into_iter()
                    .map(|p| format!("after the start-up sweep: {p}"))
                    .collect(),
            ));
        }
        d = d.restart();
    }
    d.stop();
    Ok((stats, d))
}

/// Runs every lane until the daemon dies; returns the lanes, the problems they saw and
/// the number of answered requests. Every lane connects before any request is issued, so
/// the kill never meets a lane that is still connecting.
async fn drive(
    url: String,
    lanes: Vec<Lane>,
    ctl: Arc<Control>,
) -> (Vec<Lane>, Vec<String>, usize) {
    let mut clients = Vec::new();
    for _ in &lanes {
        match Client::connect(&url).await {
            Ok(c) => clients.push(c),
            Err(e) => {
                ctl.fire();
                return (lanes, vec![format!("connect: {e}")], 0);
            }
        }
    }
    let tasks: Vec<_> = lanes
        .into_iter()
        .zip(clients)
        .map(|(mut lane, client)| {
            let ctl = Arc::clone(&ctl);
            tokio::spawn(async move {
                let r = run_lane(&client, &mut lane, &ctl).await;
                if r.is_err() {
                    ctl.fire();
                }
                (lane, r)
            })
        })
        .collect();
    let (mut lanes, mut errors, mut acked) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (lane, r) = t.await.unwrap();
        match r {
            Ok(n) => acked += n,
            Err(e) => errors.push(e),
        }
        lanes.push(lane);
    }
    (lanes, errors, acked)
}

/// One lane: requests one after another until one fails because the daemon was killed.
async fn run_lane(client: &Client, lane: &mut Lane, ctl: &Control) -> Result<usize, String> {
    let mut acked = 0;
    loop {
        let op = lane.choose();
        let (after, expect) = lane.predict(&op);
        if ctl.issued.fetch_add(1, Ordering::SeqCst) + 1 == ctl.target {
            ctl.fire();
        }
        let res = tokio::time::timeout(CALL_LIMIT, lane.execute(client, &op))
            .await
            .map_err(|_| format!("lane {}: `{op}` got no answer in {CALL_LIMIT:?}", lane.n))?;
        match (res, expect) {
            (Ok(resp), Expect::Ok) => {
                lane.verify(&op, &resp, &after)
                    .map_err(|e| format!("lane {}: `{op}`: {e}", lane.n))?;
                lane.state = after;
                acked += 1;
            }
            (Err(e), Expect::Err(kind)) if e.kind == kind => acked += 1,
            (Err(_), _) if ctl.killed.load(Ordering::SeqCst) => {
                lane.pending = Some((op, after));
                return Ok(acked);
            }
            (res, expect) => {
                return Err(format!(
                    "lane {}: `{op}`: got {:?}, expected {expect:?}",
                    lane.n,
                    res.err().map(|e| e.to_string())
                ));
            }
        }
    }
}

/// Compares what the store holds of each lane with its acknowledged state (or that plus
/// its in-flight request); adopts what was found.
fn check_lanes(root: &Path, lanes: &mut [Lane], stats: &mut Stats) -> Vec<String> {
    let mut problems = Vec::new();
    let (images, containers) = raw::records(root);
    stats.max_images = stats.max_images.max(images.len());
    let mut observed = vec![LaneState::default(); lanes.len()];
    for (_, img) in &images {
        let hex = img.id.hex();
        match lanes.iter().position(|l| l.specs.contains_key(&hex)) {
            Some(l) => {
                observed[l]
                    .images
                    .insert(hex, img.names.iter().cloned().collect());
            }
            None => problems.push(format!("image {hex}: never loaded by the test")),
        }
    }
    for (_, c) in &containers {
        match usize::from_str_radix(&c.id[..2], 16) {
            Ok(l) if l < lanes.len() => {
                observed[l]
                    .containers
                    .insert(c.id.clone(), c.image_id.hex());
            }
            _ => problems.push(format!("container {}: never registered by the test", c.id)),
        }
    }
    for (lane, seen) in lanes.iter_mut().zip(observed) {
        let pending = lane.pending.take();
        let changing = pending.as_ref().filter(|(_, after)| *after != lane.state);
        if changing.is_some() {
            stats.in_flight += 1;
        }
        if seen == lane.state {
            stats.not_applied += usize::from(changing.is_some());
            continue;
        }
        if let Some((_, after)) = &changing
            && seen == *after
        {
            stats.applied += 1;
            lane.state = seen;
            continue;
        }
        let mut msg = format!("lane {}: {}", lane.n, seen.diff(&lane.state).join("; "));
        if let Some((op, after)) = &changing {
            msg.push_str(&format!(
                " (or, with the in-flight `{op}` applied: {})",
                seen.diff(after).join("; ")
            ));
        }
        problems.push(msg);
    }
    problems
}

/// `imaged fsck` on a stopped daemon's store.
fn fsck(root: &Path) -> imaged_tests::Run {
    let mut cmd = std::process::Command::new(imaged_tests::tools::target_binary("imaged"));
    cmd.args(["--store", "local", "--root"])
        .arg(root)
        .arg("fsck");
    imaged_tests::tools::scrub_imaged_env(&mut cmd);
    imaged_tests::process::run(&mut cmd, Duration::from_secs(60))
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_change_and_breaks_no_invariant() {
    let seed = seed();
    let cycles = std::env::var(CYCLES_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CYCLES);
    let started = Instant::now();
    let (stats, d) = crash_loop(seed, cycles, None).unwrap_or_else(|f| panic!("{f}"));
    eprintln!(
        "{cycles} kill/restart cycles in {:.1?} (seed {seed}): {stats:?}",
        started.elapsed()
    );
    fsck(&d.root()).ok().stdout_has("clean");
    assert!(
        stats.acked >= cycles,
        "too few requests answered: {stats:?}"
    );
    assert!(
        stats.max_images > 0,
        "the store never held an image: {stats:?}"
    );
}

/// A sabotage run: breaks the store once `sabotage` finds something to break, and returns
/// what it expected together with what the checks reported.
fn sabotaged(
    mut sabotage: impl FnMut(&Path, &[Lane]) -> Option<Vec<String>>,
) -> (Vec<String>, Failure) {
    let mut expected = None;
    let mut hook = |root: &Path, lanes: &[Lane]| {
        let e = sabotage(root, lanes);
        expected.clone_from(&e);
        e
    };
    let failure = match crash_loop(seed(), 30, Some(&mut hook)) {
        Err(f) => f,
        Ok((stats, _)) => panic!("nothing to sabotage in 30 cycles: {stats:?}"),
    };
    eprintln!("sabotage reported as expected:\n{failure}");
    (expected.unwrap_or_default(), failure)
}

#[test]
fn the_crash_test_reports_a_deleted_blob_of_a_listed_image() {
    let (expected, failure) = sabotaged(|root, _| {
        let (images, _) = raw::records(root);
        let (_, img) = images.first()?;
        let config = img.config_blob.as_ref()?;
        std::fs::remove_file(root.join("blobs/sha256").join(config.digest.hex())).unwrap();
        Some(vec![format!(
            "image {}: blob {} missing",
            img.id, config.digest
        )])
    });
    assert_eq!(failure.problems, expected, "{failure}");
}

#[test]
fn the_crash_test_reports_a_name_planted_on_a_second_image() {
    let (expected, failure) = sabotaged(|root, _| {
        let (images, _) = raw::records(root);
        let (_, named) = images.iter().find(|(_, i)| !i.names.is_empty())?;
        let (_, other) = images.iter().find(|(_, i)| i.id != named.id)?;
        let name = named.names[0].clone();
        let mut planted = other.clone();
        planted.names.push(name.clone());
        raw::put_images(root, &[planted]);
        let (first, second) = if named.id.hex() < other.id.hex() {
            (named.id, other.id)
        } else {
            (other.id, named.id)
        };
        Some(vec![format!("name {name} on {first} and {second}")])
    });
    assert_eq!(failure.problems, expected, "{failure}");
}

#[test]
fn the_crash_test_reports_a_lost_acknowledged_image() {
    let (expected, failure) = sabotaged(|root, lanes| {
        // An image that both the acknowledged state and the in-flight request keep, with
        // no container (whose record would then dangle too).
        let (lane, id) = lanes.iter().find_map(|l| {
            let after = l.pending.as_ref().map_or(&l.state, |(_, a)| a);
            let used = |s: &LaneState, id: &str| s.containers.values().any(|i| i == id);
            l.state
                .images
                .keys()
                .find(|id| {
                    after.images.contains_key(*id) && !used(&l.state, id) && !used(after, id)
                })
                .map(|id| (l.n, id.clone()))
        })?;
        let (images, _) = raw::records(root);
        let (_, img) = images.iter().find(|(_, i)| i.id.hex() == id)?;
        assert!(raw::delete_image(root, &img.id));
        Some(vec![format!(
            "lane {lane}: image {id} acknowledged, missing"
        )])
    });
    let [problem] = &failure.problems[..] else {
        panic!("expected one problem, {expected:?}\n{failure}");
    };
    let (lane, what) = expected[0].split_once(": ").unwrap();
    assert!(
        problem.starts_with(&format!("{lane}: ")) && problem.contains(what),
        "expected {expected:?}\n{failure}"
    );
}
