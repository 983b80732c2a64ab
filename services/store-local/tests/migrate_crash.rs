//! Crash safety of a schema migration: a child process (this test binary re-executed in
//! worker mode) opens a v3 store of a few thousand images, which migrates it to the current
//! schema and compacts the file; the parent SIGKILLs it at a random moment of that work,
//! then reopens: the store is either still v3 or migrated, and in both cases holds every
//! image unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on failure

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{invariants, raw, stage_image};
use imaged_core::ChangeSet;
use imaged_core::model::Image;
use imaged_core::store::Store;
use imaged_store_local::SCHEMA_VERSION;

const ROOT_ENV: &str = "IMAGED_STORE_LOCAL_MIGRATE_ROOT";
const IMAGES: usize = 3000;
const CYCLES: usize = 8;

/// A v3 store of [`IMAGES`] images in `root` (written by this build, its image records then
/// rewritten in format 1, as schema v3 stored them); the images.
fn write_v3_store(root: &Path) -> Vec<Image> {
    let images: Vec<Image> = {
        let store = imaged_store_local::open(root).unwrap();
        let mut st = store.stage().unwrap();
        let images: Vec<Image> = (0..IMAGES)
            .map(|i| {
                let name = format!("example.com/m{}:{i}", i % 50);
                let layers = [i as u32 % 8, 8 + (i as u32 % 5)];
                stage_image(&mut *st, &format!("m{i}"), &layers, &[name.as_str()])
            })
            .collect();
        store
            .apply(&ChangeSet {
                put_images: images.iter().cloned().map(Into::into).collect(),
                ..ChangeSet::default()
            })
            .unwrap();
        drop(st);
        images
    };
    common::make_v3(root, &images.iter().collect::<Vec<_>>());
    images
}

/// Runs the worker on `root`; kills it `after` its "opening" line, or lets it finish
/// (`None`). Returns how long the open ran.
fn run_worker(root: &Path, after: Option<Duration>) -> Duration {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "migrate_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT_ENV, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = loop {
        match lines.next() {
            // (The harness prints "test migrate_worker ... " on the same line.)
            Some(Ok(l)) if l.ends_with("opening") => break Instant::now(),
            Some(Ok(_)) => {}
            _ => panic!("the worker died before opening the store"),
        }
    };
    match after {
        Some(d) => {
            // The fault injected: a kill at this moment of the migration (not a wait for
            // anything).
            std::thread::sleep(d);
            child.kill().unwrap();
            child.wait().unwrap();
            started.elapsed()
        }
        None => {
            let opened = lines.any(|l| l.is_ok_and(|l| l.ends_with("opened")));
            assert!(opened, "the worker did not open the store");
            let took = started.elapsed();
            assert!(child.wait().unwrap().success());
            took
        }
    }
}

/// The store at `root` holds exactly `images`, and passes every check.
fn assert_intact(root: &Path, images: &[Image], what: &str) {
    let problems = invariants::committed_state(root);
    assert!(problems.is_empty(), "{what}: {problems:?}");
    let store = imaged_store_local::open(root).unwrap();
    assert_eq!(store.schema_version(), SCHEMA_VERSION, "{what}");
    let view = store.view();
    assert_eq!(view.len(), images.len(), "{what}");
    for img in images {
        assert_eq!(view.image(&img.id).map(|i| &**i), Some(img), "{what}");
    }
    assert_eq!(store.sweep_report().missing_blobs, 0, "{what}");
    let report = store.check(false).unwrap();
    assert!(report.problems.is_empty(), "{what}: {:?}", report.problems);
    drop(store);
    let problems = invariants::all(root);
    assert!(problems.is_empty(), "{what}: {problems:?}");
}

#[test]
fn kill_9_during_a_migration_keeps_every_image() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("v3");
    let images = write_v3_store(&pristine);
    let copy = |to: &Path| {
        let _ = std::fs::remove_dir_all(to);
        std::fs::create_dir_all(to).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", pristine.display()))
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    let root = dir.path().join("store");
    // One whole migration: how long the kills may fall into.
    copy(&root);
    let whole = run_worker(&root, None);
    assert_intact(&root, &images, "an uninterrupted migration");

    let mut rng = fastrand::Rng::new();
    let mut migrated = 0;
    for cycle in 0..CYCLES {
        copy(&root);
        let at = whole.mul_f64(rng.f64());
        run_worker(&root, Some(at));
        if raw::get_meta(&root, "schema_version") == Some(SCHEMA_VERSION) {
            migrated += 1;
        }
        assert_intact(
            &root,
            &images,
            &format!("cycle {cycle}, killed after {at:?}"),
        );
    }
    eprintln!("{CYCLES} kills within {whole:?}: {migrated} had committed the migration");
}

#[test]
#[ignore = "worker of kill_9_during_a_migration_keeps_every_image"]
fn migrate_worker() {
    let Some(root) = std::env::var_os(ROOT_ENV) else {
        return;
    };
    println!("opening");
    let store = imaged_store_local::open(Path::new(&root)).unwrap();
    println!("opened");
    drop(store);
}
