//! SIGKILL of the real daemon in the middle of removals and prunes on a podman store
//! (issue 12, Tests). Each round loads a batch of images sharing layers (some named, some
//! dangling) with podman, starts `imaged --store containers-storage` on the store, issues
//! a `prune -a`, a `prune` or one `rm` of many images through imagectl and SIGKILLs the
//! daemon at a random moment inside that operation (uniform over the time an
//! uninterrupted one took in the calibration round). Then, alternately, podman or a fresh
//! imaged opens the store first, and:
//!
//! * no layer is left flagged `incomplete` and every listed layer has its driver data;
//! * `podman images`, `podman image inspect` of every image work, and a fresh imaged lists
//!   exactly what podman lists (images, names, containers);
//! * `podman rmi` and `podman image prune` work on what the crash left.
//!
//! At the end the busybox image (kept by a podman container) still runs, and podman
//! removes everything else. The seed is printed; `IMAGED_E2E_CS_CRASH_SEED` replays a run.
//!
//! [`failpoints`] crashes at each named write step of the store instead: this test binary
//! re-executes itself as a worker that opens the store directly (the store crate's
//! `failpoints` feature, a dev-dependency of this crate) and runs an Engine `prune -a
//! --external` with `IMAGED_CSTORAGE_CRASH_AT=<step>`, which aborts the worker exactly
//! there; the same checks follow.

use std::sync::Arc;
use std::time::{Duration, Instant};

use imaged_testkit::podman::PodmanStore;
use imaged_tests::archive::{self as tarch, ImageSpec};

use crate::cstorage_support::*;
use crate::support::Daemon;

const SEED_ENV: &str = "IMAGED_E2E_CS_CRASH_SEED";
/// Kill rounds per driver (after the calibration round).
const ROUNDS: usize = 6;
/// Images loaded per round.
const BATCH: usize = 16;

/// What the daemon is doing when it is killed.
#[derive(Debug, Clone, Copy)]
enum Op {
    PruneAll,
    Prune,
    RmMany,
}

impl Op {
    fn of(round: usize) -> Self {
        match round % 3 {
            0 => Self::PruneAll,
            1 => Self::Prune,
            _ => Self::RmMany,
        }
    }

    fn args(self, round: usize) -> Vec<String> {
        match self {
            Self::PruneAll => vec!["prune".into(), "-f".into(), "-a".into()],
            Self::Prune => vec!["prune".into(), "-f".into()],
            Self::RmMany => {
                let mut a = vec!["rm".to_owned()];
                // The named (even) ones; the odd ones are dangling.
                a.extend((0..BATCH).step_by(2).map(|k| name(round, k)));
                a
            }
        }
    }
}

fn name(round: usize, k: usize) -> String {
    format!("localhost/crash{round}:{k}")
}

/// Round `round`'s images: a base and `BATCH` children in two chains (layers shared),
/// each named; the names of every other one are taken away after the load (dangling).
pub(crate) fn batch(round: usize) -> Vec<ImageSpec> {
    let base = ImageSpec::new(&format!("cs-crash-{round}-base"));
    let mut out = Vec::new();
    let mut parents = [base.clone(), base];
    for k in 0..BATCH {
        let p = &parents[k % 2];
        let c = p.child(&format!("cs-crash-{round}-{k}"));
        let c = ImageSpec {
            names: vec![name(round, k)],
            ..c
        };
        parents[k % 2] = c.clone();
        out.push(c);
    }
    out
}

/// Loads round `round`'s batch with podman and makes every odd one dangling.
pub(crate) fn load_batch(s: &PodmanStore, round: usize) {
    podman_load(
        s,
        &format!("crash-{round}.tar"),
        &tarch::docker_archive(&batch(round)),
    );
    for k in (1..BATCH).step_by(2) {
        podman_ok(s, &["untag", &name(round, k)]);
    }
}

/// Runs `args` through imagectl against `d` in a thread and SIGKILLs the daemon `after`
/// the command started (`None`: no kill, wait for the command). Returns how long the
/// command ran when it was not killed.
fn run_and_kill(d: &Daemon, args: &[String], after: Option<Duration>) -> Duration {
    let start = Instant::now();
    std::thread::scope(|sc| {
        let daemon = d;
        let h = sc.spawn(move || daemon.imagectl(args));
        match after {
            None => {
                let r = h.join().expect("imagectl thread");
                r.ok();
                start.elapsed()
            }
            Some(delay) => {
                // The kill point is random on purpose (not a synchronisation wait).
                std::thread::sleep(delay);
                let pid = daemon.pid().expect("daemon running");
                imaged_tests::process::signal(pid, "KILL");
                let r = h.join().expect("imagectl thread");
                // Either it finished before the kill or it lost its connection.
                assert!(
                    r.code() == 0 || r.code() == 125,
                    "imagectl failed otherwise:\n{r}"
                );
                start.elapsed()
            }
        }
    })
}

/// podman opens the store first after a crash: its read path (`podman images -a`) works
/// with whatever the crash left, and its next write (a tag and untag: c/storage loads the
/// layer store under the write lock and deletes layers flagged incomplete, as
/// `layerStore.Load` does only when locked for writing) leaves no incomplete layer.
fn podman_next_open(s: &PodmanStore, what: &str) {
    podman_ok(s, &["images", "-a"]);
    podman_ok(s, &["tag", "localhost/bb:1", "localhost/bb:probe"]);
    podman_ok(s, &["untag", "localhost/bb:1", "localhost/bb:probe"]);
    assert_no_incomplete_layers(s, &format!("{what}, podman's next write"));
}

fn crash(driver: &'static str) {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("cstorage crash ({driver}): seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let s = store(driver);
    podman_load(&s, "busybox.tar", &busybox("localhost/bb:1"));
    podman_ok(
        &s,
        &[
            "create",
            "--name",
            "pb",
            "localhost/bb:1",
            "/bin/busybox",
            "true",
        ],
    );

    // Calibration: one uninterrupted prune -a of a batch.
    load_batch(&s, 0);
    let mut d = daemon(&s);
    assert_agree(&s, &d, "loading the calibration batch");
    let took = run_and_kill(&d, &Op::PruneAll.args(0), None);
    let v = assert_agree(&s, &d, "the calibration prune -a");
    assert_eq!(v.images.len(), 1, "prune -a keeps only busybox: {v:?}");
    eprintln!("uninterrupted prune -a of {BATCH} images took {took:?}");

    for round in 1..=ROUNDS {
        load_batch(&s, round);
        d = d.restart();
        let before = assert_agree(&s, &d, &format!("loading batch {round}"));
        let op = Op::of(round);
        let delay = Duration::from_micros(rng.u64(0..=took.as_micros() as u64));
        run_and_kill(&d, &op.args(round), Some(delay));
        d.kill();
        let what = format!("round {round}: SIGKILL {delay:?} into {op:?}");
        eprintln!("{what}");
        // Who opens the store first after the crash: podman or a fresh imaged.
        if round % 2 == 0 {
            podman_next_open(&s, &what);
            d = d.restart();
        } else {
            d = d.restart();
            d.imagectl(&["ls", "-a"]).ok();
            assert_no_incomplete_layers(&s, &format!("{what}, imaged's next open"));
        }
        let after = assert_agree(&s, &d, &what);
        // Nothing outside this round's batch was touched; busybox and its container stay.
        let gone: Vec<_> = before
            .images
            .iter()
            .filter(|e| !after.images.iter().any(|a| a.0 == e.0))
            .collect();
        let batch_ids: Vec<String> = batch(round).iter().map(ImageSpec::hex_id).collect();
        for g in &gone {
            assert!(
                batch_ids.contains(&g.0),
                "{what}: removed an image of another round: {g:?}"
            );
        }
        assert_eq!(after.containers, before.containers, "{what}: containers");
        for (id, _, _) in &after.images {
            podman_ok(&s, &["image", "inspect", id]);
        }
        // podman can remove what the crash left: one survivor by ID, then a prune.
        if let Some(survivor) = after
            .images
            .iter()
            .find(|e| batch_ids.contains(&e.0) && e.1.len() <= 1)
        {
            // It may be the parent of another survivor: podman then refuses by ID with
            // "image has dependent children"; both outcomes are clean.
            let r = podman(&s, &["rmi", &survivor.0]);
            assert!(
                r.code() == 0 || r.stderr.contains("dependent children"),
                "{what}: podman rmi of a survivor:\n{r}"
            );
        }
        podman_ok(&s, &["image", "prune", "-f"]);
        assert_agree(&s, &d, &format!("{what}, podman rmi and prune"));
        // The next round starts from busybox alone (a prune -a is store-wide).
        podman_ok(&s, &["image", "prune", "-a", "-f"]);
        assert_no_incomplete_layers(&s, &format!("{what}, podman rmi and prune"));
    }

    // podman removes everything but busybox, which still runs.
    podman_ok(&s, &["image", "prune", "-a", "-f"]);
    let v = assert_agree(&s, &d, "podman's final prune -a");
    assert_eq!(v.images.len(), 1, "only busybox is left: {v:?}");
    assert_images_usable(&s, &["localhost/bb:1"], "the crash rounds");
    assert_no_incomplete_layers(&s, "the crash rounds");
}

#[test]
fn vfs() {
    crash("vfs");
}

#[test]
fn overlay() {
    crash("overlay");
}

/// The store's named write steps (`services/store-cstorage/src/write.rs`), in order.
const STEPS: &[&str] = &[
    "after-containers",
    "after-images",
    "after-flag",
    "mid-data",
    "after-data",
];
/// Set for the re-executed worker: `<root>\t<runroot>\t<driver>`.
const WORKER_ENV: &str = "E2E_CSTORAGE_CRASH_WORKER";

/// The worker: opens the store with the failpoints compiled in and prunes every unused
/// image, external containers included. Reaching the end means the failpoint did not fire
/// (the parent then fails).
fn worker(job: &str) {
    let mut parts = job.split('\t');
    let (Some(root), Some(run), Some(driver)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad worker job {job:?}");
    };
    let driver = imaged_store_cstorage::Driver::parse(driver).expect("a driver imaged manages");
    let opts = imaged_store_cstorage::StoreOptions::new(root.into(), run.into(), driver);
    let store = imaged_store_cstorage::open(opts).expect("open the store");
    let engine = imaged_core::Engine::new(Arc::new(store), imaged_core::EngineConfig::default());
    let report = engine
        .prune(
            &imaged_core::ops::PruneOptions {
                all: true,
                filters: Vec::new(),
                external: true,
                dry_run: false,
            },
            None,
        )
        .expect("prune");
    eprintln!("worker: prune finished without crashing: {report:?}");
}

/// Round `round`'s batch plus an external (buildah) container on one of its images, so
/// that a `prune -a --external` passes every write step.
fn load_with_external(s: &PodmanStore, round: usize) {
    load_batch(s, round);
    buildah_ok(
        s,
        &["from", "--name", &format!("ext{round}"), &name(round, 0)],
    );
}

/// Runs the worker on `s` with the failpoint `step`; panics unless it aborted there.
fn crash_at(s: &PodmanStore, step: &str) {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["--exact", "cstorage_crash::failpoints", "--nocapture"])
        .env(
            WORKER_ENV,
            format!("{}\t{}\t{}", s.root.display(), s.run.display(), s.driver),
        )
        .env("IMAGED_CSTORAGE_CRASH_AT", step)
        .envs(s.env_vars());
    let r = imaged_tests::process::run(&mut cmd, Duration::from_secs(120));
    assert!(
        r.status.code().is_none(),
        "the worker did not abort at {step} (is the failpoints feature on?):\n{r}"
    );
}

fn failpoint_rounds(driver: &'static str) {
    let s = store(driver);
    podman_load(&s, "busybox.tar", &busybox("localhost/bb:1"));
    podman_ok(
        &s,
        &[
            "create",
            "--name",
            "pb",
            "localhost/bb:1",
            "/bin/busybox",
            "true",
        ],
    );
    for (round, step) in STEPS.iter().enumerate() {
        load_with_external(&s, round);
        let before = podman_view(&s);
        crash_at(&s, step);
        let what = format!("{driver}: abort at {step}");
        // Alternately podman or imaged opens the store first.
        let d = if round % 2 == 0 {
            podman_next_open(&s, &what);
            daemon(&s)
        } else {
            let d = daemon(&s);
            assert_no_incomplete_layers(&s, &format!("{what}, imaged's next open"));
            d
        };
        let after = assert_agree(&s, &d, &what);
        let batch_ids: Vec<String> = batch(round).iter().map(ImageSpec::hex_id).collect();
        for g in before
            .images
            .iter()
            .filter(|e| !after.images.iter().any(|a| a.0 == e.0))
        {
            assert!(batch_ids.contains(&g.0), "{what}: removed {g:?}");
        }
        for (id, _, _) in &after.images {
            podman_ok(&s, &["image", "inspect", id]);
        }
        // podman and imaged finish the job: podman removes what is left of the batch.
        podman_ok(&s, &["image", "prune", "-a", "-f", "--external"]);
        let v = assert_agree(&s, &d, &format!("{what}, podman prune -a --external"));
        assert_eq!(v.images.len(), 1, "{what}: only busybox is left: {v:?}");
        assert_no_incomplete_layers(&s, &format!("{what}, podman prune"));
    }
    assert_images_usable(&s, &["localhost/bb:1"], "the failpoint rounds");
}

/// Crashes at every write step (vfs and overlay), or, re-executed with the worker
/// variable set, is the worker that crashes.
#[test]
fn failpoints() {
    if let Ok(job) = std::env::var(WORKER_ENV) {
        worker(&job);
        return;
    }
    failpoint_rounds("vfs");
    failpoint_rounds("overlay");
}
