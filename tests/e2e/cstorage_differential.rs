//! The differential suite on ONE shared store (issue 12, Tests): a private podman store
//! (vfs, then overlay) with a real `imaged --store containers-storage` on it. A scripted
//! sequence of `ls` / `rm` / `rm -f` / `prune` / `prune -a` / `prune --external` / `tag` /
//! `untag` is issued alternately by podman and by imagectl against that one store, and
//! after EVERY step podman's view (`podman images -a`, `podman ps -a --external`) and
//! imaged's view (`imagectl ls -a`, `imagectl container ls`) must be the same: image IDs,
//! names, container counts, containers with their image and kind.
//!
//! The records are compared too: before podman runs a removal for real, imagectl runs the
//! same command with `--dry-run` on the same store and must predict podman's exit code and
//! `Untagged:` / `Deleted:` lines (pruned IDs) exactly. A command that fails changes
//! nothing, so podman and imagectl both run it and must fail with the same exit code.
//! Removals imagectl performs for real are checked against their own dry run and against
//! the expected records, then podman must see their result.
//!
//! Setup: a runnable static-busybox image with three names, a child built from it by
//! `buildah commit`, a podman container (`podman create`) on the base, synthesized images
//! loaded with `podman load`: one used by a podman container, one by an external buildah
//! container (`buildah from`), a dangling one, a dangling one used only by an external
//! container, and a multi-named one. After the sequence every remaining image is
//! inspected and saved by podman, and the busybox one is run.

use imaged_testkit::podman::PodmanStore;
use imaged_tests::archive::{self as tarch, ImageSpec};
use imaged_tests::process::Run;

use crate::cstorage_support::*;
use crate::support::Daemon;

/// The store and the daemon on it, with the IDs of the setup's images.
struct Shared {
    s: PodmanStore,
    d: Daemon,
    /// Steps done so far (for messages).
    step: std::cell::Cell<usize>,
}

/// The podman command and the imagectl command of the same operation, dry run prepended
/// where the operation removes something.
impl Shared {
    fn after(&self, what: &str) -> String {
        let n = self.step.get() + 1;
        self.step.set(n);
        format!("step {n} ({what}) on {}", self.s.driver)
    }

    /// Both views agree after `what`.
    #[track_caller]
    fn agree(&self, what: &str) -> Views {
        let after = self.after(what);
        assert_agree(&self.s, &self.d, &after)
    }

    /// `podman_args` for real, predicted by `imagectl <dry_run…> --dry-run` first: the
    /// same exit code and the same output lines (sorted when `sorted`, for prunes whose
    /// order podman does not fix). Then the views agree.
    #[track_caller]
    fn podman_does(&self, podman_args: &[&str], dry_run: &[&str], sorted: bool) -> Run {
        let mut ia = dry_run.to_vec();
        ia.push("--dry-run");
        let predicted = self.d.imagectl(&ia);
        let before = podman_view(&self.s);
        let p = podman(&self.s, podman_args);
        assert_eq!(
            predicted.code(),
            p.code(),
            "imagectl's dry run predicts another exit code\npodman:\n{p}\nimagectl:\n{predicted}"
        );
        assert_eq!(
            lines(&predicted, sorted),
            lines(&p, sorted),
            "imagectl's dry run predicts other records\npodman:\n{p}\nimagectl:\n{predicted}"
        );
        let after = self.agree(&format!("podman {podman_args:?}"));
        if p.code() != 0 && p.lines().is_empty() {
            assert_eq!(after, before, "a failed podman command changed the store");
        }
        p
    }

    /// `imagectl <args>` for real, after its own dry run (which must say the same and
    /// change nothing); `expect` are its output lines (sorted when `sorted`) and `code`
    /// its exit code. Then the views agree.
    #[track_caller]
    fn imaged_does(&self, args: &[&str], code: i32, expect: &[String], sorted: bool) -> Run {
        let before = podman_view(&self.s);
        let mut dry = args.to_vec();
        dry.push("--dry-run");
        let predicted = self.d.imagectl(&dry);
        assert_eq!(
            podman_view(&self.s),
            before,
            "imagectl {dry:?} changed the store:\n{predicted}"
        );
        let i = self.d.imagectl(args);
        assert_eq!(i.code(), code, "imagectl {args:?}: exit code\n{i}");
        let mut want = expect.to_vec();
        if sorted {
            want.sort();
        }
        assert_eq!(lines(&i, sorted), want, "imagectl {args:?}: records\n{i}");
        assert_eq!(
            (predicted.code(), lines(&predicted, sorted)),
            (i.code(), lines(&i, sorted)),
            "imagectl {args:?}: the dry run said otherwise\n{predicted}"
        );
        self.agree(&format!("imagectl {args:?}"));
        i
    }

    /// A name change (tag / untag, which print nothing) by podman.
    #[track_caller]
    fn podman_names(&self, args: &[&str]) {
        let p = podman_ok(&self.s, args);
        assert!(p.lines().is_empty(), "podman {args:?} printed:\n{p}");
        self.agree(&format!("podman {args:?}"));
    }

    /// A name change (tag / untag) by imagectl.
    #[track_caller]
    fn imaged_names(&self, args: &[&str]) {
        let i = self.d.imagectl(args);
        i.ok();
        self.agree(&format!("imagectl {args:?}"));
    }

    /// A command both refuse: the same exit code, an `Error:` line each, the store
    /// unchanged. Returns (podman's run, imagectl's run).
    #[track_caller]
    fn both_fail(&self, podman_args: &[&str], imagectl_args: &[&str], code: i32) -> (Run, Run) {
        let before = podman_view(&self.s);
        let p = podman(&self.s, podman_args);
        let i = self.d.imagectl(imagectl_args);
        assert_eq!(p.code(), code, "podman's exit code:\n{p}");
        assert_eq!(
            i.code(),
            p.code(),
            "exit codes differ\npodman:\n{p}\nimagectl:\n{i}"
        );
        for r in [&p, &i] {
            assert!(
                r.stderr.lines().any(|l| l.starts_with("Error: ")),
                "no error line:\n{r}"
            );
        }
        let after = self.agree(&format!("failing {imagectl_args:?}"));
        assert_eq!(after, before, "a refused command changed the store");
        (p, i)
    }

    /// The ID of `name` as podman resolves it.
    fn id(&self, name: &str) -> String {
        last_line(&podman_ok(
            &self.s,
            &["image", "inspect", "--format", "{{.Id}}", name],
        ))
    }
}

/// The output lines, sorted when asked.
fn lines(r: &Run, sorted: bool) -> Vec<String> {
    let mut l: Vec<String> = r.lines().into_iter().map(str::to_owned).collect();
    if sorted {
        l.sort();
    }
    l
}

fn deleted(id: &str) -> String {
    format!("Deleted: {id}")
}

fn untagged(name: &str) -> String {
    format!("Untagged: {name}")
}

/// The setup's store and the IDs it holds.
pub(crate) struct Fixture {
    pub s: PodmanStore,
    pub child: String,
    pub other: ImageSpec,
    pub ext: ImageSpec,
    pub dangling: ImageSpec,
    pub ext_dangling: ImageSpec,
    pub multi: ImageSpec,
}

/// Builds the setup with podman and buildah (see the module doc).
pub(crate) fn setup(driver: &'static str) -> Fixture {
    let s = store(driver);

    // The runnable base with three names and a child of it committed by buildah.
    podman_load(&s, "busybox.tar", &busybox("localhost/bb:1"));
    podman_ok(&s, &["tag", "localhost/bb:1", "localhost/bb:2"]);
    podman_ok(&s, &["tag", "localhost/bb:1", "quay.io/e2e/bb:latest"]);
    buildah_ok(&s, &["from", "--name", "work", "localhost/bb:1"]);
    let child = last_line(&buildah_ok(
        &s,
        &["commit", "-q", "work", "localhost/child:1"],
    ));
    buildah_ok(&s, &["rm", "work"]);
    // A podman container on the base keeps it (and runnable) to the end.
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

    // Synthesized images (podman load of independently written docker-archives).
    let other = ImageSpec::new("cs-diff-other").named("localhost/other:1");
    let ext = ImageSpec::new("cs-diff-ext").named("localhost/ext:1");
    let dangling = ImageSpec::new("cs-diff-dangling").named("localhost/dangling:1");
    let ext_dangling = ImageSpec::new("cs-diff-ext-dangling").named("localhost/extd:1");
    let multi = ImageSpec::new("cs-diff-multi")
        .named("localhost/multi:1")
        .named("localhost/multi:2");
    let specs = [
        other.clone(),
        ext.clone(),
        dangling.clone(),
        ext_dangling.clone(),
        multi.clone(),
    ];
    podman_load(&s, "synth.tar", &tarch::docker_archive(&specs));
    podman_ok(&s, &["create", "--name", "pc", "localhost/other:1", "true"]);
    buildah_ok(&s, &["from", "--name", "bctr", "localhost/ext:1"]);
    buildah_ok(&s, &["from", "--name", "bextd", "localhost/extd:1"]);
    podman_ok(&s, &["untag", "localhost/dangling:1"]);
    podman_ok(&s, &["untag", "localhost/extd:1"]);

    Fixture {
        s,
        child,
        other,
        ext,
        dangling,
        ext_dangling,
        multi,
    }
}

fn differential(driver: &'static str) {
    let Fixture {
        s,
        child,
        other,
        ext,
        dangling,
        ext_dangling,
        multi,
    } = setup(driver);
    let d = daemon(&s);
    let t = Shared {
        s,
        d,
        step: std::cell::Cell::new(0),
    };
    let base = t.id("localhost/bb:1");
    assert_eq!(t.id("localhost/child:1"), child);

    // ls: the same images, names and containers.
    let v = t.agree("setup");
    assert_eq!(v.images.len(), 7, "setup: {v:?}");
    assert_eq!(v.containers.len(), 4, "setup: {v:?}");
    let kinds: Vec<bool> = v.containers.iter().map(|c| c.2).collect();
    assert_eq!(
        kinds.iter().filter(|e| **e).count(),
        2,
        "two external containers (bctr, bextd): {v:?}"
    );
    // The listing also agrees with the dangling filter and a reference filter.
    for (pa, ia) in [
        (
            vec!["images", "--format", "json", "--filter", "dangling=true"],
            vec!["ls", "--format", "json", "--filter", "dangling=true"],
        ),
        (
            vec!["images", "--format", "json", "localhost/bb"],
            vec!["ls", "--format", "json", "localhost/bb"],
        ),
    ] {
        let p = podman_ok(&t.s, &pa);
        let i = t.d.imagectl(&ia);
        i.ok();
        assert_eq!(
            parse_images(&i, "imagectl ls"),
            parse_images(&p, "podman images"),
            "{ia:?} (left: imaged, right: podman)"
        );
    }

    // Refusals, run by both on the shared store.
    let (p, i) = t.both_fail(&["rmi", "nope:1"], &["rm", "nope:1"], 1);
    assert_eq!(
        i.stderr.lines().find(|l| l.starts_with("Error: ")),
        p.stderr.lines().find(|l| l.starts_with("Error: ")),
        "not-known wording"
    );
    // In use by a podman container / by an external container: exit 2.
    t.both_fail(
        &["rmi", "localhost/other:1"],
        &["rm", "localhost/other:1"],
        2,
    );
    t.both_fail(&["rmi", "localhost/ext:1"], &["rm", "localhost/ext:1"], 2);
    // By ID, several names: must force.
    t.both_fail(&["rmi", &multi.hex_id()], &["rm", &multi.hex_id()], 125);
    // imaged never removes podman's own containers: rm -f of an image a podman container
    // uses is refused (podman would remove the container), naming `podman rm`.
    let before = podman_view(&t.s);
    // The refusal is FAILED_PRECONDITION with reason IMAGE_IN_USE: podman's "in use"
    // exit code 2.
    let i = t.d.imagectl(&["rm", "-f", "localhost/other:1"]);
    assert_eq!(i.code(), 2, "rm -f of an image of a podman container:\n{i}");
    i.stderr_has("podman rm");
    assert_eq!(t.agree("imagectl rm -f (refused)"), before);

    // Names, alternately.
    t.podman_names(&["tag", "localhost/multi:1", "localhost/multi:3"]);
    t.imaged_names(&["untag", "localhost/multi:1", "localhost/multi:2"]);
    t.podman_names(&["untag", "localhost/bb:1", "quay.io/e2e/bb:latest"]);
    t.imaged_names(&[
        "tag",
        "localhost/bb:1",
        "quay.io/e2e/bb:latest",
        "quay.io/e2e/bb:2",
    ]);
    // A name another image holds moves (podman's tag steals it).
    t.imaged_names(&["tag", "localhost/child:1", "localhost/moved:1"]);
    t.podman_names(&["tag", "localhost/bb:1", "localhost/moved:1"]);
    t.imaged_names(&["untag", "localhost/bb:1", "localhost/moved:1"]);

    // Removals, alternately.
    // podman: a name of a multi-named image -> untagged only.
    t.podman_does(
        &["rmi", "localhost/multi:1"],
        &["rm", "localhost/multi:1"],
        false,
    );
    // imaged: the same on the base (a podman container uses it: untag is still allowed).
    t.imaged_does(
        &["rm", "localhost/bb:2"],
        0,
        &[untagged("localhost/bb:2")],
        false,
    );
    // podman: the last name -> untagged and deleted.
    t.podman_does(
        &["rmi", "localhost/multi:3"],
        &["rm", "localhost/multi:3"],
        false,
    );
    // imaged: rm of an unknown and a known image in one call: exit 1, the known one
    // removed (podman's order of records).
    t.imaged_does(
        &["rm", "nope:2", "quay.io/e2e/bb:2"],
        1,
        &[untagged("quay.io/e2e/bb:2")],
        false,
    );
    // podman: prune takes the dangling image, not the one an external container uses.
    let p = t.podman_does(&["image", "prune", "-f"], &["prune", "-f"], true);
    assert_eq!(lines(&p, true), [dangling.hex_id()], "podman prune:\n{p}");
    // imaged: prune --external takes the dangling image of the external container and
    // the container.
    t.imaged_does(
        &["prune", "-f", "--external"],
        0,
        &[ext_dangling.hex_id()],
        true,
    );
    // imaged: rm -f of an image an external container uses removes that container.
    t.imaged_does(
        &["rm", "-f", "localhost/ext:1"],
        0,
        &[untagged("localhost/ext:1"), deleted(&ext.hex_id())],
        false,
    );
    // podman: prune with nothing dangling.
    t.podman_does(&["image", "prune", "-f"], &["prune", "-f"], true);
    // imaged: prune -a takes every image without a container: the child only (the base
    // and `other` have podman containers).
    t.imaged_does(
        &["prune", "-f", "-a"],
        0,
        std::slice::from_ref(&child),
        true,
    );
    // podman: prune -a now finds nothing.
    t.podman_does(
        &["image", "prune", "-a", "-f"],
        &["prune", "-f", "-a"],
        true,
    );

    // What is left: the base and `other`, each with its podman container.
    let v = t.agree("the sequence");
    let ids: Vec<&str> = v.images.iter().map(|e| e.0.as_str()).collect();
    let other_id = other.hex_id();
    let mut want = vec![base.as_str(), other_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "survivors: {v:?}");
    assert_eq!(v.containers.len(), 2, "podman's two containers: {v:?}");
    assert_images_usable(&t.s, &["localhost/bb:1"], "the sequence");
    assert_no_incomplete_layers(&t.s, "the sequence");
    // And imaged still agrees after podman ran a container.
    t.agree("podman run");
}

#[test]
fn vfs() {
    differential("vfs");
}

#[test]
fn overlay() {
    differential("overlay");
}
