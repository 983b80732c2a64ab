//! podman and imaged writing the same containers-storage store at the same time (issue
//! 12, Tests): in a bounded loop podman loads, tags, untags and removes images in one
//! thread while imagectl removes and prunes in another, all on images that share a base
//! layer. Every command of either side succeeds or fails cleanly (an expected "not known"
//! when the other side removed the image first); podman never reports a torn store (JSON
//! errors, "layer not known", incomplete layers). At the end `podman images`, `podman
//! image inspect` of every image and imaged's listing agree, and no layer is left flagged
//! incomplete.

use imaged_testkit::podman::PodmanStore;
use imaged_tests::archive::{self as tarch, ImageSpec};
use imaged_tests::process::Run;

use crate::cstorage_support::*;
use crate::support::Daemon;

/// Iterations of each side's loop.
const ROUNDS: usize = 30;

/// Words in podman's or imaged's stderr that mean a torn or corrupt store.
const TORN: &[&str] = &[
    "layer not known",
    "invalid character",
    "unexpected end of JSON",
    "unexpected EOF",
    "corrupt",
    "incomplete",
    "no such file or directory",
    "panic",
];

/// Panics when `r` printed any sign of a torn store.
#[track_caller]
fn clean(r: &Run, who: &str) {
    let err = r.stderr.to_lowercase();
    for w in TORN {
        assert!(
            !err.contains(&w.to_lowercase()),
            "{who} saw a torn store ({w:?}):\n{r}"
        );
    }
}

/// Panics unless `r` succeeded or failed with "image not known" (exit 1: the other side
/// removed the image first).
#[track_caller]
fn ok_or_gone(r: &Run, who: &str) {
    clean(r, who);
    assert!(
        r.code() == 0 || (r.code() == 1 && r.stderr.contains("image not known")),
        "{who}: neither success nor a clean \"not known\":\n{r}"
    );
}

/// The base every image of the test is built on.
fn base() -> ImageSpec {
    ImageSpec::new("cs-conc-base").named("localhost/conc-base:1")
}

/// podman's side: round `i` loads `localhost/conc:i` (a child of the base), tags it
/// `conc:i-b`, untags `conc:i`, makes round `i-1`'s image dangling and removes it by ID
/// (imaged's prune may have taken it: "not known"), and reads the store.
pub(crate) fn podman_side(s: &PodmanStore) {
    let mut prev: Option<String> = None;
    for i in 0..ROUNDS {
        let img = base().child(&format!("cs-conc-p{i}"));
        let name = format!("localhost/conc:{i}");
        let img = ImageSpec {
            names: vec![name.clone()],
            ..img
        };
        let path = s.dir().join(format!("conc-{i}.tar"));
        std::fs::write(&path, tarch::docker_archive(std::slice::from_ref(&img)))
            .expect("write archive");
        let r = podman(s, &["load", "-q", "-i", path.to_str().expect("utf-8")]);
        clean(&r, "podman load");
        r.ok();
        let _ = std::fs::remove_file(&path);
        let kept = format!("localhost/conc:{i}-b");
        let r = podman(s, &["tag", &name, &kept]);
        clean(&r, "podman tag");
        if !r.status.success() {
            let imgs = podman(s, &["images", "-a", "--format", "{{.ID}} {{.Names}}"]);
            panic!(
                "podman tag right after podman load of {} failed: the image is not there any more (an imaged write lost podman's load?)\n{r}\npodman images now:\n{imgs}",
                img.hex_id()
            );
        }
        // `podman untag IMAGE` alone would take every name.
        let r = podman(s, &["untag", &name, &name]);
        clean(&r, "podman untag");
        r.ok();
        if let Some(p) = prev.take() {
            let (pname, pid) = p.split_once(' ').expect("name id");
            // Every name: the image becomes dangling (imaged's prune may take it).
            let r = podman(s, &["untag", pname]);
            ok_or_gone(&r, "podman untag");
            let r = podman(s, &["rmi", pid]);
            ok_or_gone(&r, "podman rmi");
        }
        // Every other round keeps its image (named), the others go next round.
        if i % 2 == 1 {
            prev = Some(format!("{kept} {}", img.hex_id()));
        }
        list_racing(s);
        let r = podman(s, &["image", "inspect", &kept]);
        clean(&r, "podman image inspect");
        r.ok();
    }
}

/// `podman images -a` while the other side removes images. podman 4.3 lists the image
/// records, then reads each one (its layer, its big-data sizes, its parent) again without
/// holding the lock in between: an image removed in that window fails the whole listing
/// (exit 125) with "image not known", or with "layer not known" / "size is not known"
/// naming the image when its record was read before and its data is gone by the time
/// podman looks, as it does when another podman removes it. That is a clean failure,
/// not a torn store, as long as the image it names is really gone (an image still there
/// without its data would be torn); the listing must succeed within a few attempts.
fn list_racing(s: &PodmanStore) {
    for _ in 0..5 {
        let r = podman(s, &["images", "-a", "--format", "json"]);
        if r.code() == 0 {
            clean(&r, "podman images");
            return;
        }
        assert_eq!(
            r.code(),
            125,
            "podman images: neither success nor podman's listing race:\n{r}"
        );
        match named_image(&r.stderr) {
            Some(id) => {
                let gone = podman(s, &["image", "exists", &id]);
                assert_eq!(
                    gone.code(),
                    1,
                    "podman images: image {id} is there but podman cannot read it (a torn store):\n{r}\n{gone}"
                );
            }
            None => {
                clean(&r, "podman images");
                assert!(
                    r.stderr.contains("image not known"),
                    "podman images: neither success nor podman's listing race:\n{r}"
                );
            }
        }
    }
    panic!("podman images failed five times in a row");
}

/// The image ID podman's error names (`… image "<64 hex>": …`).
fn named_image(stderr: &str) -> Option<String> {
    let rest = &stderr[stderr.find("image \"")? + 7..];
    let id = &rest[..rest.find('"')?];
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

/// imaged's side: round `i` removes `localhost/pre:i` (loaded before, a child of the
/// base: only imaged touches it), prunes dangling images and lists.
fn imaged_side(d: &Daemon) {
    for i in 0..ROUNDS {
        let r = d.imagectl(&["rm", &format!("localhost/pre:{i}")]);
        clean(&r, "imagectl rm");
        r.ok();
        let r = d.imagectl(&["prune", "-f"]);
        clean(&r, "imagectl prune");
        // A prune may lose a race on one image (podman removed it first): that image's
        // error is reported, the prune itself completes.
        assert!(
            r.code() == 0
                || r.stderr
                    .lines()
                    .all(|l| l.contains("not known") || l.contains("vanished")),
            "imagectl prune failed:\n{r}"
        );
        let r = d.imagectl(&["ls", "-a", "--format", "json"]);
        clean(&r, "imagectl ls");
        r.ok();
    }
}

fn concurrency(driver: &'static str) {
    let s = store(driver);
    let pre: Vec<ImageSpec> = (0..ROUNDS)
        .map(|i| {
            let c = base().child(&format!("cs-conc-i{i}"));
            ImageSpec {
                names: vec![format!("localhost/pre:{i}")],
                ..c
            }
        })
        .collect();
    let mut all = vec![base()];
    all.extend(pre.iter().cloned());
    podman_load(&s, "pre.tar", &tarch::docker_archive(&all));
    let d = daemon(&s);
    assert_agree(&s, &d, "setup");

    std::thread::scope(|sc| {
        let p = sc.spawn(|| podman_side(&s));
        let i = sc.spawn(|| imaged_side(&d));
        let (p, i) = (p.join(), i.join());
        if let Err(e) = p {
            std::panic::resume_unwind(e);
        }
        if let Err(e) = i {
            std::panic::resume_unwind(e);
        }
    });

    // A final prune by imaged (the last dangling image may have raced), then both agree.
    d.imagectl(&["prune", "-f"]).ok();
    let v = assert_agree(&s, &d, "the concurrent loops");
    let names: Vec<&String> = v.images.iter().flat_map(|e| &e.1).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("localhost/pre:")),
        "imaged's removals lost: {v:?}"
    );
    // podman keeps every even round's image; an odd round's goes in the next round, so
    // only the last odd one survives.
    let mut want: Vec<String> = (0..ROUNDS)
        .filter(|i| i % 2 == 0 || *i == ROUNDS - 1)
        .map(|i| format!("localhost/conc:{i}-b"))
        .collect();
    want.sort();
    let mut got: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("localhost/conc:"))
        .map(|n| (*n).clone())
        .collect();
    got.sort();
    assert_eq!(got, want, "podman's images after the loops: {v:?}");
    assert!(
        names.iter().any(|n| *n == "localhost/conc-base:1"),
        "the base lost: {v:?}"
    );
    for (id, _, _) in &v.images {
        podman_ok(&s, &["image", "inspect", id]);
    }
    assert_no_incomplete_layers(&s, "the concurrent loops");
    // podman can still remove and prune everything it holds.
    podman_ok(&s, &["image", "prune", "-a", "-f"]);
    assert_agree(&s, &d, "podman's final prune -a");
    assert_no_incomplete_layers(&s, "podman's final prune -a");
}

#[test]
fn vfs() {
    concurrency("vfs");
}

#[test]
fn overlay() {
    concurrency("overlay");
}
