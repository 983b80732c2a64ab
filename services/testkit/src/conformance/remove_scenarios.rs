//! RemoveImage cases from the peers' scenarios (peers-semantics §8), resolution errors and
//! ambiguity (SPEC §2).

use super::build::{case, rm_opts, t};
use super::remove_cases::{A, A_DIGEST, B, both, del, img};
use super::{Case, Rec::D, Rec::L, Rec::U, Ref};
use crate::images::ImageSpec;
use imaged_core::model::ContainerState::{Created, Stopped};
use imaged_core::ops::{Policy, RemoveOptions};

/// The scenario cases.
pub(super) fn cases() -> Vec<Case> {
    scenarios()
}

fn scenarios() -> Vec<Case> {
    let busybox = "docker.io/library/busybox:latest";
    let mut v = vec![
        case(
            "podman: scenario #1 force by a second name untags",
            "scenario #1",
        )
        .image("i", img("i").name(busybox))
        .tag("i", "localhost/foobar:latest")
        .rm(t("foobar"), rm_opts(Policy::Podman, true))
        .records(vec![U("localhost/foobar:latest")])
        .names("i", &[busybox]),
        case(
            "podman: scenario #3 missing name skipped, the other removed",
            "scenario #3",
        )
        .image("i", img("i").name(busybox))
        .rm_seq(
            vec![t("foobar"), t("busybox")],
            RemoveOptions {
                ignore_missing: true,
                ..RemoveOptions::default()
            },
        )
        .records(vec![U(busybox), D("i")]),
        case(
            "podman: scenario #10 message lists the names newest first",
            "scenario #10",
        )
        .image("i", img("i").name("docker.io/library/orig:latest"))
        .tag("i", "localhost/foo:bar")
        .tag("i", "localhost/foo:latest")
        .rm(Ref::Hex("i"), RemoveOptions::default())
        .err(
            "MULTIPLE_NAMES",
            "([localhost/foo:latest localhost/foo:bar docker.io/library/orig:latest])",
        ),
    ];
    let c0 = img("c0").name("localhost/cache:latest");
    let d1 = c0.child("d1", 2);
    let e1 = c0.child("e1", 3);
    v.push(
        case(
            "podman: scenario #13 a removal takes its exclusive dangling parent",
            "scenario #13",
        )
        .image("c0", c0.clone())
        .image("d1", d1.clone())
        .image("t2", d1.child("t2", 4).name("localhost/test2:latest"))
        .image("e1", e1.clone())
        .image("t", e1.child("t", 5).name("localhost/test:latest"))
        .rm(t("test2"), RemoveOptions::default())
        .records(vec![U("localhost/test2:latest"), D("t2"), D("d1")])
        .remaining(&["c0", "e1", "t"]),
    );
    let t1 = img("t1");
    let t2 = t1.child("t2", 2);
    v.push(
        case(
            "podman: scenario #30 removing an unnamed parent by ID prunes its parent",
            "scenario #30",
        )
        .image("t1", t1.clone())
        .image("t2", t2.clone())
        .rm(Ref::Id("t2"), RemoveOptions::default())
        .records(vec![D("t2"), D("t1")])
        .remaining(&[]),
    );
    v.extend(both(|p, n| {
        let base = img("p");
        case(
            format!("{n}: a parent in use is left alone, quietly"),
            "SPEC §3.1.8, scenario #43",
        )
        .deviation("libimage returns the parent's in-use error; imaged's parent pruning is quiet")
        .image("p", base.clone())
        .image("c", base.child("c", 2))
        .ctr("ctr1", "p", Created)
        .rm(Ref::Id("c"), rm_opts(p, false))
        .records(del(p, "c", &[1]))
        .remaining(&["p"])
    }));
    v.push(
        case(
            "docker: removing a repository's last tag removes its digests",
            "peers §3.3 step 3",
        )
        .image("i", img("i").name(A).name(A_DIGEST).name(B))
        .rm(t("a"), rm_opts(Policy::Docker, false))
        .records(vec![U(A), U(A_DIGEST)])
        .names("i", &[B]),
    );
    v.push(
        case(
            "docker: scenario #32 a moved name's old image stays for its container",
            "scenario #32",
        )
        .image("old", img("old"))
        .image("new", img("new").name("localhost/n:latest"))
        .ctr("ctr1", "old", Stopped)
        .rm(t("n"), rm_opts(Policy::Docker, false))
        .records(vec![U("localhost/n:latest"), D("new"), L("new", 0)])
        .remaining(&["old"]),
    );
    v.push(
        case("docker: scenario #34 one of three tags", "scenario #34")
            .image(
                "i",
                img("i")
                    .name("localhost/utest:tag1")
                    .name("localhost/utest/docker:tag2"),
            )
            .tag("i", "utest:5000/docker:tag3")
            .rm(t("utest:tag1"), rm_opts(Policy::Docker, false))
            .records(vec![U("localhost/utest:tag1")])
            .names(
                "i",
                &["utest:5000/docker:tag3", "localhost/utest/docker:tag2"],
            ),
    );
    v.push(
        case(
            "docker: scenario #38 a second tag goes despite a stopped container",
            "scenario #38",
        )
        .image(
            "i",
            img("i")
                .name(busybox)
                .name("docker.io/library/busybox:newtag"),
        )
        .ctr("ctr1", "i", Stopped)
        .rm(t("busybox:newtag"), rm_opts(Policy::Docker, false))
        .records(vec![U("docker.io/library/busybox:newtag")]),
    );
    v.extend(both(|p, n| {
        case(format!("{n}: scenario #41 blank reference"), "scenario #41")
            .image("i", img("i").name(A))
            .rm(t(" "), rm_opts(p, false))
            .err("INVALID_REFERENCE", "image name cannot be blank")
    }));
    v.push(
        case("podman: scenario #4 sha256: without 64 hex", "scenario #4")
            .rm(t("sha256:aa"), RemoveOptions::default())
            .err(
                "INVALID_REFERENCE",
                "sha256:aa: invalid format: no 64-byte hexadecimal value",
            ),
    );
    v.push(
        case("podman: unparseable reference", "SPEC §2")
            .rm(t("UpperCase"), RemoveOptions::default())
            .err("INVALID_REFERENCE", "repository name must be lowercase"),
    );
    v.extend(ambiguity_cases());
    v
}

/// Two images whose IDs share their first hex digit (found by salting deterministically).
fn twins() -> (ImageSpec, ImageSpec) {
    let a = img("twin-a");
    let first = a.build().1.id.hex().as_bytes()[0];
    let mut n = 0u32;
    loop {
        let b = img("twin-b").salt(&n.to_string());
        if b.build().1.id.hex().as_bytes()[0] == first {
            return (a, b);
        }
        n += 1;
    }
}

fn ambiguity_cases() -> Vec<Case> {
    let (a, b) = twins();
    let prefix = a.build().1.id.hex()[..1].to_owned();
    let (x, y) = (img("named"), img("target"));
    let y_prefix = y.build().1.id.hex()[..4].to_owned();
    vec![
        case("podman: an ambiguous ID prefix", "SPEC §2.5")
            .deviation("podman and Docker say \"image not known\" (moby#17247)")
            .image("a", a.clone())
            .image("b", b.clone())
            .rm(Ref::Prefix("a", 1), RemoveOptions::default())
            .err("AMBIGUOUS_REFERENCE", "ambiguous")
            .remaining(&["a", "b"]),
        case("docker: an ambiguous ID prefix", "SPEC §2.5")
            .image("a", a)
            .image("b", b)
            .rm(Ref::Text(prefix), rm_opts(Policy::Docker, true))
            .err("AMBIGUOUS_REFERENCE", "")
            .remaining(&["a", "b"]),
        case("podman: a name wins over an ID prefix", "SPEC §2.5")
            .image("named", x.name(&format!("localhost/{y_prefix}:latest")))
            .image("target", y)
            .rm(Ref::Text(y_prefix), RemoveOptions::default())
            .remaining(&["target"]),
    ]
}
