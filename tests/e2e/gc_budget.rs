//! GC by policy on a real, small filesystem (issue 15, SPEC §4.1): a tmpfs the test
//! mounts holds a local store whose daemon has `[gc] high = "50%"`, `low = "30%"`. Loads
//! fill it past the high threshold; the daemon then brings it under the low threshold by
//! itself (a GC event, `imaged_gc_runs_total` + 1), deleting least recently used images
//! first and never the image with a container. A dry run beforehand reports exactly what
//! the real run then deletes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imaged_client::{Client, proto as pb};
use imaged_tests::archive::{ImageSpec, docker_archive};
use imaged_tests::daemon::Custom;
use imaged_tests::grpcurl::call_json;
use imaged_tests::metrics;

use crate::remove::register;
use crate::support::*;

const MIB: u64 = 1 << 20;

/// A tmpfs of `bytes` mounted on a fresh directory for the test's life (root only, like
/// the other tests that start system daemons); unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(bytes: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("imaged-gc-tmpfs-")
            .tempdir()
            .expect("a mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("imaged-gc-test")
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (the e2e suite runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// An image `localhost/gc/<seed>:1` with one incompressible layer of `mib` MiB.
fn big(seed: u64, mib: u64) -> ImageSpec {
    let mut img = ImageSpec::new(&format!("gc-{seed}")).named(&format!("localhost/gc/{seed}:1"));
    let mut content = vec![0u8; usize::try_from(mib * MIB).expect("small")];
    fastrand::Rng::with_seed(seed).fill(&mut content);
    img.layers[0].content = content;
    img
}

/// The daemon's own figures (pending blob deletions counted as free): bytes used on the
/// filesystem and its capacity, from a dry run (which waits for a run in progress).
fn fs_use(d: &Daemon) -> (u64, u64, serde_json::Value) {
    let r = call_json(d, "imaged.v1.GcService/RunGc", r#"{"dryRun": true}"#);
    let n = |k: &str| {
        r.get(k)
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (cap, avail) = (n("fsCapacityBytes"), n("fsAvailableBytes"));
    assert!(cap > 0, "the local store reports its filesystem: {r}");
    (cap - avail, cap, r)
}

/// Whether the daemon has ever seen image `id` (its log names every load).
fn was_loaded(d: &Daemon, id: &str) -> bool {
    d.log().contains(id)
}

fn chosen_ids(r: &serde_json::Value) -> Vec<String> {
    r.get("chosen")
        .and_then(serde_json::Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|x| x.get("imageId")?.as_str())
                .map(|s| s.trim_start_matches("sha256:").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_daemon_keeps_a_full_tmpfs_under_its_low_threshold_by_itself() {
    let fs = Tmpfs::mount(64 * MIB);
    let store = fs.path().join("store");
    // The config file's policy is in force at start (loose: 90%).
    let config = fs.path().join("imaged.toml");
    std::fs::write(
        &config,
        "[gc]\nhigh = \"90%\"\nlow = \"80%\"\nmin_age = \"0s\"\n",
    )
    .expect("write the config");
    let d = Daemon::start_custom(
        "local",
        Custom {
            args: vec![
                "--root".into(),
                store.into(),
                "--config".into(),
                config.into(),
            ],
            // Loads are refused below min_free_bytes (64 MiB by default: all of this disk).
            env: vec![
                metrics::listen_env(),
                ("IMAGED_MIN_FREE_BYTES".into(), "1048576".into()),
            ],
        },
    );
    let got = call_json(&d, "imaged.v1.GcService/GetGcPolicy", "{}");
    assert_eq!(got["high"]["percent"], 90, "{got}");
    assert_eq!(got["low"]["percent"], 80, "{got}");
    let addr = metrics::address(&d);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(d.url())).expect("connect");
    let mut events = rt
        .block_on(client.watch_events(&[pb::EventType::Gc]))
        .expect("watch GC events");

    let load_one = |img: &ImageSpec| {
        let path = d.write_file("one.tar", &docker_archive(std::slice::from_ref(img)));
        d.imagectl(&[
            std::ffi::OsStr::new("load"),
            "-i".as_ref(),
            path.as_os_str(),
        ])
        .ok();
    };
    let runs = || metrics::value(&metrics::scrape(&addr), "imaged_gc_runs_total");
    let mut next_event = || {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(120), events.next_event()).await
        })
        .expect("a GC event within two minutes")
        .expect("event stream")
        .expect("an event")
    };
    let images: Vec<ImageSpec> = (0..14).map(|i| big(i, 4)).collect();
    // Least recently used first: #2, #3, #4, then #0 (used after #4 was loaded), then
    // the later loads; #1 has a container and is never taken.
    let lru: Vec<String> = [2, 3, 4, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        .iter()
        .map(|&i: &usize| images[i].hex_id())
        .collect();
    for img in &images[..5] {
        load_one(img);
    }
    register(&d, "localhost/gc/1:1", &[]);
    let used = register(&d, "localhost/gc/0:1", &[]);
    d.imagectl(&["container", "rm", &used]).ok();
    // Past 50%, under the config's 90%: nothing runs.
    for img in &images[5..7] {
        load_one(img);
    }
    let (used, cap, _) = fs_use(&d);
    assert!(used * 2 >= cap && used * 10 < cap * 9, "{used} of {cap}");
    assert_eq!(runs(), 0);

    // Part 1: the policy over the API (a change runs nothing), a dry run, then a run on
    // request deletes exactly what the dry run reported, in that order.
    let policy = r#"{"policy": {"high": {"percent": 50}, "low": {"percent": 30}, "minAge": "0s"}}"#;
    call_json(&d, "imaged.v1.GcService/SetGcPolicy", policy);
    let (_, _, dry) = fs_use(&d);
    assert_eq!(runs(), 0, "neither the policy change nor a dry run runs");
    let planned = chosen_ids(&dry);
    assert_eq!(dry["reached"], true, "{dry}");
    assert_eq!(
        planned,
        lru[..planned.len()],
        "least recently used first: {dry}"
    );
    let before = snapshot(&d, &[]).hex_ids();
    assert_eq!(before.len(), 7, "the dry run deleted nothing");
    let real = call_json(&d, "imaged.v1.GcService/RunGc", "{}");
    assert_eq!(chosen_ids(&real), planned);
    let deleted: Vec<String> = real["result"]["deletedImages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.trim_start_matches("sha256:").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        deleted, planned,
        "the run deleted what the dry run said: {real}"
    );
    assert_eq!(real["plannedBytes"], dry["plannedBytes"]);
    assert_eq!(next_event().name, "request");
    let (after, _, _) = fs_use(&d);
    assert!(
        after * 10 <= cap * 3,
        "{after} of {cap} used after the run, above 30%"
    );
    let mut done = planned.len();

    // Part 2: loads cross 50% again; the daemon runs by itself (a GC event caused by the
    // threshold, one more run in the metrics) and ends under 30%, deleting the next least
    // recently used images.
    let mut crossed = false;
    for img in &images[7..] {
        load_one(img);
        let (used, _, _) = fs_use(&d);
        if runs() == 2 || used * 2 >= cap {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "seven more images of 4 MiB fill 64 MiB past 50%");
    let event = next_event();
    assert_eq!(event.r#type, pb::EventType::Gc as i32);
    assert_eq!(event.name, "threshold");
    assert!(event.reclaimed_bytes > 0);
    let page = metrics::scrape(&addr);
    assert_eq!(metrics::value(&page, "imaged_gc_runs_total"), 2);
    assert!(metrics::value(&page, "imaged_gc_freed_bytes_total") > 0);
    let (after, _, _) = fs_use(&d);
    assert!(
        after * 10 <= cap * 3,
        "{after} of {cap} used after the run, above 30%"
    );
    let remaining = snapshot(&d, &[]).hex_ids();
    let gone_now = lru[done..]
        .iter()
        .take_while(|id| !remaining.contains(id))
        .count();
    assert!(gone_now > 0);
    done += gone_now;
    let loaded: Vec<String> = images.iter().map(ImageSpec::hex_id).collect();
    for id in &lru[done..] {
        assert!(
            remaining.contains(id) || !loaded[..].contains(id) || !was_loaded(&d, id),
            "only the least recently used went: {id} is gone but older images stay"
        );
    }
    assert!(
        remaining.contains(&images[1].hex_id()),
        "the image with a container stays"
    );
}

#[test]
fn the_config_files_interval_runs_the_policy_by_itself() {
    // A memory daemon whose config file asks for a run every 100 ms that deletes images
    // not used for 1 ns: a loaded image is gone at the next tick, reported as a `timer`
    // GC event, and a pinned image stays.
    let dir = tempfile::tempdir().expect("a config directory");
    let config = dir.path().join("imaged.toml");
    std::fs::write(
        &config,
        "pinned_images = [\"localhost/gc/keep:*\"]\n\n\
         [gc]\nmax_unused = \"1ns\"\nmin_age = \"0s\"\ninterval = \"100ms\"\n",
    )
    .expect("write the config");
    let d = Daemon::start_custom(
        "memory",
        Custom {
            args: vec!["--config".into(), config.into()],
            env: Vec::new(),
        },
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(d.url())).expect("connect");
    let mut events = rt
        .block_on(client.watch_events(&[pb::EventType::Gc, pb::EventType::Delete]))
        .expect("watch events");
    let keep = ImageSpec::new("gc-timer-keep").named("localhost/gc/keep:1");
    let gone = ImageSpec::new("gc-timer-gone").named("localhost/gc/gone:1");
    load(&d, Format::Docker, &[keep.clone(), gone.clone()]);
    let mut next = || {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), events.next_event()).await
        })
        .expect("an event within a minute")
        .expect("event stream")
        .expect("an event")
    };
    // Timer runs go on (each a GC event); the one that deletes `gone` comes with its
    // DELETE event first.
    loop {
        let e = next();
        if e.r#type == pb::EventType::Delete as i32 {
            assert_eq!(e.image_id.trim_start_matches("sha256:"), gone.hex_id());
            let run = next();
            assert_eq!(run.r#type, pb::EventType::Gc as i32);
            assert_eq!(run.name, "timer");
            assert!(run.reclaimed_bytes > 0);
            break;
        }
        assert_eq!(e.name, "timer", "{e:?}");
    }
    assert_eq!(snapshot(&d, &[]).hex_ids(), [keep.hex_id()]);
}
