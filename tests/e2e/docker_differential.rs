//! The DOCKER policy against a real Docker engine (issue 14): Debian's dockerd 20.10 as
//! root with the vfs driver in a private directory ([`Dockerd`]), one per test binary run,
//! and imaged on the memory store, loaded with the same docker-archive; containers
//! created on both with the same ID (`docker create`, `imagectl container register
//! --id`); then the same `docker rmi` / `imagectl rm --policy docker` sequences, with the
//! output, the exit code and the remaining images compared after each step.
//!
//! Where imaged deviates (SPEC §3.2 names each deviation), the step says so and asserts
//! both sides' actual answers, so a change on either side shows.

use imaged_testkit::dockerd::Dockerd;
use imaged_tests::process::Run;

use crate::support::*;

/// Both engines with the same images.
struct Both<'a> {
    docker: &'a Dockerd,
    d: Daemon,
}

/// What one side answered: stdout lines, the error line (prefix dropped) and the code.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    lines: Vec<String>,
    error: Option<String>,
    code: i32,
}

fn answer(stdout: &str, stderr: &str, code: i32, prefix: &str) -> Answer {
    Answer {
        lines: stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        error: stderr
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned),
        code,
    }
}

impl<'a> Both<'a> {
    fn new(docker: &'a Dockerd, images: &[ImageSpec]) -> Self {
        docker.reset().expect("reset dockerd");
        let d = Daemon::start("memory");
        let path = d.write_file("docker.tar", &Format::Docker.bytes(images));
        let path = path.to_str().expect("utf-8 temp path");
        let out = docker.docker(&["load", "-i", path]);
        assert!(out.status.success(), "docker load: {out:?}");
        d.imagectl(&["load", "-i", path]).ok();
        let both = Self { docker, d };
        assert_eq!(both.docker_state(), both.imaged_state(), "after the load");
        both
    }

    /// A created container using `image` on both sides, with the same ID.
    fn create(&self, image: &str) -> String {
        let out = self.docker.docker(&["create", image, "/bin/true"]);
        assert!(out.status.success(), "docker create: {out:?}");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        self.d
            .imagectl(&["container", "register", "--id", &id, image])
            .ok();
        id
    }

    /// (bare image ID, sorted names) of every image dockerd lists.
    fn docker_state(&self) -> Vec<(String, Vec<String>)> {
        let out = self.docker.docker(&[
            "images",
            "-a",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ]);
        assert!(out.status.success(), "docker images: {out:?}");
        let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((id, name)) = line.split_once(' ') else {
                continue;
            };
            let names = by_id
                .entry(id.trim_start_matches("sha256:").to_owned())
                .or_default();
            if name != "<none>:<none>" {
                names.push(name.to_owned());
            }
        }
        by_id
            .into_iter()
            .map(|(id, mut n)| {
                n.sort();
                (id, n)
            })
            .collect()
    }

    /// The same of imaged.
    fn imaged_state(&self) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<(String, Vec<String>)> = snapshot(&self.d, &[])
            .images
            .iter()
            .map(|i| {
                let mut n = i.names();
                n.sort();
                (i.hex_id(), n)
            })
            .collect();
        v.sort();
        v
    }

    /// `docker <args>` and `imagectl <imagectl_args>`: both answers, and how many of
    /// Docker's `Deleted:` lines name released layers (IDs that were no image before).
    fn run(&self, docker_args: &[&str], imagectl_args: &[&str]) -> (Answer, Answer, usize) {
        let images: Vec<String> = self.docker_state().into_iter().map(|(id, _)| id).collect();
        let out = self.docker.docker(docker_args);
        let docker = answer(
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
            out.status.code().unwrap_or(-1),
            "Error response from daemon: ",
        );
        let layers = docker
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix("Deleted: sha256:"))
            .filter(|hex| !images.iter().any(|i| i == hex))
            .count();
        let run: Run = self.d.imagectl(imagectl_args);
        let ours = answer(&run.stdout, &run.stderr, run.code(), "Error: ");
        (docker, ours, layers)
    }

    /// Asserts both engines answer and end the same.
    #[track_caller]
    fn same(&self, docker_args: &[&str], imagectl_args: &[&str]) -> Answer {
        let (docker, ours, _) = self.run(docker_args, imagectl_args);
        assert_eq!(
            ours, docker,
            "docker {docker_args:?} vs imagectl {imagectl_args:?}"
        );
        assert_eq!(
            self.imaged_state(),
            self.docker_state(),
            "state after docker {docker_args:?}"
        );
        ours
    }
}

#[test]
fn docker_policy_against_dockerd() {
    let docker = Dockerd::start().unwrap_or_else(|e| panic!("private dockerd: {e}"));

    // Names: a name of two untags; the last name deletes the image and releases its
    // layer (one `Deleted:` line per released layer on both sides).
    let two = ImageSpec::new("dk-two")
        .named("localhost/dk/two:1")
        .named("localhost/dk/two:2");
    let b = Both::new(&docker, std::slice::from_ref(&two));
    let a = b.same(
        &["rmi", "localhost/dk/two:1"],
        &["rm", "--policy", "docker", "localhost/dk/two:1"],
    );
    assert_eq!(a.lines, ["Untagged: localhost/dk/two:1"]);
    let (docker_rm, ours, layers) = b.run(
        &["rmi", "localhost/dk/two:2"],
        &["rm", "--policy", "docker", "localhost/dk/two:2"],
    );
    assert_eq!(ours, docker_rm);
    assert_eq!(layers, 1, "Docker prints its released layer: {docker_rm:?}");
    assert_eq!(b.imaged_state(), b.docker_state());

    // By ID with names in two repositories: a soft conflict without force; with force
    // every name goes and the image is deleted.
    let multi = ImageSpec::new("dk-multi")
        .named("localhost/dk/x:1")
        .named("localhost/dk/y:1");
    let b = Both::new(&docker, std::slice::from_ref(&multi));
    let a = b.same(
        &["rmi", &multi.hex_id()],
        &["rm", "--policy", "docker", &multi.hex_id()],
    );
    assert_eq!(a.code, 1);
    assert!(
        a.error
            .as_deref()
            .is_some_and(|e| e.contains("image is referenced in multiple repositories")),
        "{a:?}"
    );
    let (docker_rm, ours, _) = b.run(
        &["rmi", "-f", &multi.hex_id()],
        &["rm", "--policy", "docker", "-f", &multi.hex_id()],
    );
    assert_eq!(ours, docker_rm);
    assert_eq!(b.imaged_state(), b.docker_state());

    // A created container: removing its image's only name is refused without force,
    // with Docker's message (same container ID on both sides).
    let used = ImageSpec::new("dk-used").named("localhost/dk/used:1");
    let b = Both::new(&docker, std::slice::from_ref(&used));
    let ctr = b.create("localhost/dk/used:1");
    let a = b.same(
        &["rmi", "localhost/dk/used:1"],
        &["rm", "--policy", "docker", "localhost/dk/used:1"],
    );
    assert_eq!(a.code, 1);
    assert!(
        a.error.as_deref().is_some_and(|e| e.contains(&ctr[..12])),
        "{a:?}"
    );
    // By ID it is a soft conflict too.
    let a = b.same(
        &["rmi", &used.hex_id()],
        &["rm", "--policy", "docker", &used.hex_id()],
    );
    assert!(
        a.error
            .as_deref()
            .is_some_and(|e| e.contains("image is being used by stopped container")),
        "{a:?}"
    );
    // Deviation (SPEC §3.2): forced past the stopped container, Docker deletes the image
    // under it; imaged keeps the record, unnamed, for the container.
    let (docker_rm, ours, _) = b.run(
        &["rmi", "-f", "localhost/dk/used:1"],
        &["rm", "--policy", "docker", "-f", "localhost/dk/used:1"],
    );
    let deleted = format!("Deleted: sha256:{}", used.hex_id());
    assert_eq!(
        docker_rm.lines,
        ["Untagged: localhost/dk/used:1".to_owned(), deleted]
    );
    assert_eq!(ours.lines, ["Untagged: localhost/dk/used:1"]);
    assert!(b.docker_state().is_empty());
    assert_eq!(b.imaged_state(), [(used.hex_id(), Vec::new())]);

    // Prunes and a filtered listing: the same images go and the same are listed. (The
    // prune reports differ in form: Docker's `Deleted Images:` block and reclaimed
    // total, podman's IDs, which imagectl prints.)
    let loose = ImageSpec::new("dk-loose");
    let kept = ImageSpec::new("dk-kept").named("localhost/dk/kept:1");
    let busy = ImageSpec::new("dk-busy").named("localhost/dk/busy:1");
    let b = Both::new(&docker, &[loose.clone(), kept.clone(), busy.clone()]);
    b.create("localhost/dk/busy:1");
    let dangling = |d: &Both<'_>| {
        let out = d.docker.docker(&[
            "images",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            "dangling=true",
        ]);
        let mut docker: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_start_matches("sha256:").to_owned())
            .collect();
        docker.sort();
        docker.dedup();
        let mut ours = snapshot(&d.d, &["--filter", "dangling=true"]).hex_ids();
        ours.sort();
        (docker, ours)
    };
    let (docker_listed, ours_listed) = dangling(&b);
    assert_eq!(ours_listed, docker_listed);
    assert_eq!(ours_listed, [loose.hex_id()]);
    for (docker_args, imagectl_args) in [
        (&["image", "prune", "-f"][..], &["prune", "-f"][..]),
        (
            &["image", "prune", "-a", "-f"][..],
            &["prune", "-a", "-f"][..],
        ),
    ] {
        let out = b.docker.docker(docker_args);
        assert!(out.status.success(), "docker {docker_args:?}: {out:?}");
        b.d.imagectl(imagectl_args).ok();
        assert_eq!(
            b.imaged_state(),
            b.docker_state(),
            "after docker {docker_args:?}"
        );
    }
    assert_eq!(
        b.imaged_state(),
        [(busy.hex_id(), vec!["localhost/dk/busy:1".to_owned()])]
    );

    // A loaded base with a loaded child: dockerd records no parent for loaded images,
    // so the base is deleted (its layer stays for the child) and nothing is pruned; imaged's
    // DOCKER policy does the same.
    let base = ImageSpec::new("dk-base").named("localhost/dk/base:1");
    let child = base.child("dk-child").named("localhost/dk/child:1");
    let b = Both::new(&docker, &[base.clone(), child.clone()]);
    let a = b.same(
        &["rmi", &base.hex_id()],
        &["rm", "--policy", "docker", &base.hex_id()],
    );
    assert_eq!(
        a.lines,
        [
            "Untagged: localhost/dk/base:1".to_owned(),
            format!("Deleted: sha256:{}", base.hex_id())
        ]
    );
    let a = b.same(
        &["rmi", "localhost/dk/child:1"],
        &["rm", "--policy", "docker", "localhost/dk/child:1"],
    );
    assert_eq!(a.code, 0);
    assert!(b.imaged_state().is_empty());

    // Two siblings on a base layer neither deletion shares with the other's top: the
    // first releases its top layer only, the second its top and the base (chain IDs, top
    // first, on both sides).
    let left = base.child("dk-left").named("localhost/dk/left:1");
    let right = base.child("dk-right").named("localhost/dk/right:1");
    let b = Both::new(&docker, &[left.clone(), right.clone()]);
    let (docker_rm, ours, layers) = b.run(
        &["rmi", "localhost/dk/left:1"],
        &["rm", "--policy", "docker", "localhost/dk/left:1"],
    );
    assert_eq!(ours, docker_rm);
    assert_eq!(layers, 1, "{docker_rm:?}");
    let (docker_rm, ours, layers) = b.run(
        &["rmi", &right.hex_id()],
        &["rm", "--policy", "docker", &right.hex_id()],
    );
    assert_eq!(ours, docker_rm);
    assert_eq!(layers, 2, "{docker_rm:?}");
    assert!(b.imaged_state().is_empty() && b.docker_state().is_empty());
}
