//! RemoveImage cases: every row of the decision table (peers-semantics §3.6) for both
//! policies, the removal scenarios of §8, resolution errors, and CRI RemoveImage.

use super::build::{case, rm_opts, t};
use super::{Case, Rec, Rec::D, Rec::L, Rec::U, Reclaim, Ref};
use crate::images::ImageSpec;
use imaged_core::model::ContainerState::{Created, Running, Stopped};
use imaged_core::ops::{Policy, RemoveOptions};

pub(super) const A: &str = "localhost/a:latest";
pub(super) const B: &str = "localhost/b:latest";
pub(super) const A_DIGEST: &str =
    "localhost/a@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

pub(super) fn img(c: &str) -> ImageSpec {
    ImageSpec::base(c, 1)
}

/// `deleted: <k>` and, under the DOCKER policy, the layers it releases (indexes into k's
/// layers, top first).
pub(super) fn del(p: Policy, k: &'static str, released: &[usize]) -> Vec<Rec> {
    let mut v = vec![D(k)];
    if p == Policy::Docker {
        v.extend(released.iter().map(|i| L(k, *i)));
    }
    v
}

/// `before` followed by `deleted`.
pub(super) fn then(before: Vec<Rec>, deleted: Vec<Rec>) -> Vec<Rec> {
    [before, deleted].concat()
}

pub(super) fn both(f: impl Fn(Policy, &str) -> Case) -> Vec<Case> {
    vec![f(Policy::Podman, "podman"), f(Policy::Docker, "docker")]
}

fn policy_opts(p: Policy, force: bool, no_prune: bool) -> RemoveOptions {
    RemoveOptions {
        no_prune,
        ..rm_opts(p, force)
    }
}

/// The removal cases.
pub(super) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(table_rows_1_to_6());
    v.extend(table_rows_7_to_13());
    v.extend(table_rows_14_to_22());
    v.extend(super::remove_scenarios::cases());
    v
}

fn table_rows_1_to_6() -> Vec<Case> {
    let mut v = Vec::new();
    let row1 = |p: Policy, n: &str| {
        let base = img("p");
        case(
            format!("{n}: #1 by name, one name, unused: delete and prune the parent"),
            "table #1",
        )
        .image("p", base.clone())
        .image("c", base.child("c", 2).name(A))
        .rm(t("a"), rm_opts(p, false))
    };
    v.push(
        row1(Policy::Podman, "podman")
            .records(vec![U(A), D("c"), D("p")])
            .remaining(&[])
            .reclaimed(Reclaim::AllBlobs),
    );
    v.push(
        // moby prunes only the parent chain a local build recorded; dockerd 20.10 records
        // none for loaded or pulled images, so the base stays.
        row1(Policy::Docker, "docker")
            .records(vec![U(A), D("c"), L("c", 1)])
            .remaining(&["p"])
            .reclaimed(Reclaim::Positive),
    );
    for force in [false, true] {
        v.extend(both(|p, n| {
            case(
                format!("{n}: #2 by name, two names, in use, force={force}: untag"),
                "table #2",
            )
            .image("i", img("i").name(A).name(B))
            .ctr("ctr1", "i", Stopped)
            .rm(t("a"), rm_opts(p, force))
            .records(vec![U(A)])
            .remaining(&["i"])
            .names("i", &[B])
            .containers(&["ctr1"])
            .reclaimed(Reclaim::Zero)
        }));
    }
    let setup3 = |n: &str, p: Policy, force: bool, state| {
        case(
            format!("{n}: #3-5 by name, one name, {state:?} container, force={force}"),
            "table #3 #4 #5",
        )
        .image("i", img("i").name(A))
        .ctr("ctr1", "i", state)
        .rm(t("a"), rm_opts(p, force))
    };
    v.push(
        setup3("podman", Policy::Podman, false, Stopped)
            .err(
                "IMAGE_IN_USE",
                "image used by ctr1: image is in use by a container",
            )
            .remaining(&["i"])
            .names("i", &[A]),
    );
    v.push(
        setup3("docker", Policy::Docker, false, Stopped)
            .err(
                "CONFLICT",
                "conflict: unable to remove repository reference \"a\" (must force) - container \
                 ctr1 is using its referenced image {short:i}",
            )
            .names("i", &[A]),
    );
    v.push(
        setup3("podman", Policy::Podman, true, Stopped)
            .records(vec![U(A), D("i")])
            .removed(&["ctr1"])
            .containers(&[])
            .remaining(&[]),
    );
    v.push(
        setup3("docker", Policy::Docker, true, Stopped)
            .deviation(
                "Docker deletes the image under its stopped container; imaged keeps the record \
                 (unnamed) for the container, as Docker's containerd store keeps a dangling record",
            )
            .records(vec![U(A)])
            .removed(&[])
            .containers(&["ctr1"])
            .remaining(&["i"])
            .names("i", &[]),
    );
    v.push(
        setup3("podman", Policy::Podman, true, Running)
            .deviation("podman stops and removes the running container; imaged is not a runtime")
            .err("CONTAINER_RUNNING", "container ctr1 is running")
            .containers(&["ctr1"])
            .names("i", &[A]),
    );
    v.push(
        setup3("docker", Policy::Docker, true, Running)
            .records(vec![U(A)])
            .containers(&["ctr1"])
            .remaining(&["i"])
            .names("i", &[]),
    );
    let row6 = |p: Policy, n: &str| {
        let base = img("p").name(A);
        case(
            format!("{n}: #6 by name, one name, with a child"),
            "table #6, scenario #11",
        )
        .image("p", base.clone())
        .image("c", base.child("c", 2).name(B))
        .rm(t("a"), rm_opts(p, false))
        .records(vec![U(A)])
    };
    v.push(
        row6(Policy::Podman, "podman")
            .remaining(&["c"])
            .reclaimed(Reclaim::Positive),
    );
    v.push(
        row6(Policy::Docker, "docker")
            .records(vec![U(A), D("p")])
            .remaining(&["c"])
            .reclaimed(Reclaim::Positive),
    );
    v
}

fn table_rows_7_to_13() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(both(|p, n| {
        case(format!("{n}: #7 by ID, one name"), "table #7")
            .image("i", img("i").name(A))
            .rm(Ref::Id("i"), rm_opts(p, false))
            .records(then(vec![U(A)], del(p, "i", &[0])))
            .remaining(&[])
    }));
    v.extend(both(|p, n| {
        case(format!("{n}: #7 by ID prefix, no name"), "table #7")
            .image("i", img("i"))
            .rm(Ref::Prefix("i", 12), rm_opts(p, false))
            .records(del(p, "i", &[0]))
            .remaining(&[])
    }));
    v.push(
        case(
            "podman: #8 by ID, two names, no force",
            "table #8, scenario #10",
        )
        .image("i", img("i").name(A).name(B))
        .rm(Ref::Hex("i"), rm_opts(Policy::Podman, false))
        .err(
            "MULTIPLE_NAMES",
            "unable to delete image \"{hex:i}\" by ID with more than one tag \
                 ([localhost/a:latest localhost/b:latest]): please force removal",
        )
        .names("i", &[A, B]),
    );
    v.push(
        case(
            "docker: #8 by ID, two repositories, no force",
            "table #8, scenarios #31 #36",
        )
        .image("i", img("i").name(A).name(B))
        .rm(Ref::Hex("i"), rm_opts(Policy::Docker, false))
        .err(
            "CONFLICT",
            "conflict: unable to delete {short:i} (must be forced) - image is referenced in \
                 multiple repositories",
        )
        .names("i", &[A, B]),
    );
    v.push(
        case(
            "docker: #8 by ID, a tag and a digest of one repository",
            "table #8 note",
        )
        .image("i", img("i").name(A).name(A_DIGEST))
        .rm(Ref::Id("i"), rm_opts(Policy::Docker, false))
        .records(vec![U(A), U(A_DIGEST), D("i"), L("i", 0)])
        .remaining(&[]),
    );
    v.extend(both(|p, n| {
        case(format!("{n}: #9 by ID, two names, force"), "table #9")
            .image("i", img("i").name(A).name(B))
            .rm(Ref::Prefix("i", 8), rm_opts(p, true))
            .records(then(vec![U(A), U(B)], del(p, "i", &[0])))
            .remaining(&[])
    }));
    v.push(
        case("podman: #10 by ID, stopped container", "table #10")
            .image("i", img("i").name(A))
            .ctr("ctr1", "i", Stopped)
            .rm(Ref::Id("i"), rm_opts(Policy::Podman, false))
            .err(
                "IMAGE_IN_USE",
                "consider listing external containers and force-removing image",
            ),
    );
    v.push(
        case(
            "docker: #10 by ID, created container",
            "table #10, scenario #42",
        )
        .image("i", img("i").name(A))
        .ctr("ctr1", "i", Created)
        .rm(Ref::Prefix("i", 12), rm_opts(Policy::Docker, false))
        .err(
            "CONFLICT",
            "conflict: unable to delete {short:i} (must be forced) - image is being used by \
                 stopped container ctr1",
        )
        .names("i", &[A]),
    );
    v.push(
        case("podman: #11 by ID, running container, force", "table #11")
            .deviation("podman stops and removes the running container; imaged is not a runtime")
            .image("i", img("i").name(A))
            .ctr("ctr1", "i", Running)
            .rm(Ref::Id("i"), rm_opts(Policy::Podman, true))
            .err("CONTAINER_RUNNING", "")
            .names("i", &[A]),
    );
    v.push(
        case(
            "docker: #11 by ID, running container, force",
            "table #11, scenarios #35 #37",
        )
        .image("i", img("i").name(A).name(B))
        .ctr("ctr1", "i", Running)
        .rm(Ref::Id("i"), rm_opts(Policy::Docker, true))
        .err(
            "CONFLICT",
            "conflict: unable to delete {short:i} (cannot be forced) - image is being used by \
                 running container ctr1",
        )
        .names("i", &[A, B]),
    );
    let row12 = |p: Policy, n: &str| {
        let base = img("p").name(A);
        case(format!("{n}: #12 by ID, with a child"), "table #12")
            .image("p", base.clone())
            .image("c", base.child("c", 2).name(B))
            .rm(Ref::Id("p"), rm_opts(p, false))
    };
    v.push(
        row12(Policy::Podman, "podman")
            .records(vec![U(A)])
            .remaining(&["c"]),
    );
    v.push(
        // dockerd 20.10 records no parent for loaded images: no "dependent child images".
        row12(Policy::Docker, "docker")
            .records(vec![U(A), D("p")])
            .remaining(&["c"]),
    );
    v.push(
        case("podman: #13 by sha256:ID, two names", "table #13")
            .image("i", img("i").name(A).name(B))
            .rm(Ref::Id("i"), rm_opts(Policy::Podman, false))
            .err("MULTIPLE_NAMES", "by digest with more than one tag"),
    );
    v.push(
        case("docker: #13 by sha256:ID, two names", "table #13")
            .image("i", img("i").name(A).name(B))
            .rm(Ref::Id("i"), rm_opts(Policy::Docker, false))
            .err(
                "CONFLICT",
                "(must be forced) - image is referenced in multiple repositories",
            ),
    );
    v
}

fn table_rows_14_to_22() -> Vec<Case> {
    let mut v = Vec::new();
    v.extend(both(|p, n| {
        case(
            format!("{n}: #14 by stored digest name"),
            "table #14, scenario #23",
        )
        .image("i", img("i").name(A).name(A_DIGEST))
        .rm(t(A_DIGEST), rm_opts(p, false))
        .records(vec![U(A_DIGEST)])
        .names("i", &[A])
    }));
    let row15 = |p: Policy, n: &str| {
        case(
            format!("{n}: #15 by a digest that is not a stored name"),
            "table #15",
        )
        .image("i", img("i").name(A).name(B))
        .rm(Ref::RepoDigest("localhost/a", "i"), rm_opts(p, false))
        .names("i", &[A, B])
    };
    v.push(row15(Policy::Podman, "podman").err("TAG_NOT_KNOWN", "tag not known"));
    v.push(row15(Policy::Docker, "docker").err("IMAGE_NOT_KNOWN", "image not known"));
    v.push(
        case("podman: #16 external container only", "table #16")
            .image("i", img("i").name(A))
            .ext("x1", "i", Stopped)
            .rm(t("a"), rm_opts(Policy::Podman, false))
            .err("IMAGE_IN_USE", "image used by x1"),
    );
    v.push(
        case("podman: #16 external container only, force", "table #16")
            .image("i", img("i").name(A))
            .ext("x1", "i", Stopped)
            .rm(t("a"), rm_opts(Policy::Podman, true))
            .records(vec![U(A), D("i")])
            .removed(&["x1"])
            .containers(&[]),
    );
    v.extend(both(|p, n| {
        case(format!("{n}: #17 read-only image, force"), "table #17")
            .image("i", img("i").name(A).read_only())
            .rm(t("a"), rm_opts(p, true))
            .err(
                "READ_ONLY_IMAGE",
                "cannot remove read-only image \"{hex:i}\"",
            )
            .remaining(&["i"])
    }));
    v.extend(both(|p, n| {
        case(format!("{n}: #18 missing"), "table #18, scenarios #9 #19")
            .image("i", img("i").name(A))
            .rm(t("debian:6.0.10"), rm_opts(p, false))
            .err("IMAGE_NOT_KNOWN", "debian:6.0.10: image not known")
    }));
    v.extend(both(|p, n| {
        case(
            format!("{n}: #18 missing, ignore_missing"),
            "table #18, scenarios #2 #19",
        )
        .image("i", img("i").name(A))
        .rm(
            t("debian:6.0.10"),
            RemoveOptions {
                ignore_missing: true,
                ..rm_opts(p, false)
            },
        )
        .records(vec![])
        .remaining(&["i"])
    }));
    v.extend(both(|p, n| {
        case(
            format!("{n}: #19 two names of one image in turn"),
            "table #19, podman#930",
        )
        .image("i", img("i").name(A).name(B))
        .rm_seq(vec![t("a"), t("b")], rm_opts(p, false))
        .records(then(vec![U(A), U(B)], del(p, "i", &[0])))
        .remaining(&[])
    }));
    v.extend(both(|p, n| {
        let base = img("p");
        case(
            format!("{n}: #20 no_prune keeps the dangling parent"),
            "table #20, scenario #18",
        )
        .image("p", base.clone())
        .image("c", base.child("c", 2).name(A))
        .rm(t("a"), policy_opts(p, true, true))
        .records(then(vec![U(A)], del(p, "c", &[1])))
        .remaining(&["p"])
    }));
    let inst = img("inst");
    let inst_digest = inst.build().1.digest();
    let other = imaged_core::model::Platform {
        os: "plan9".into(),
        architecture: "mips".into(),
        variant: String::new(),
    };
    let list = ImageSpec::list(
        vec![
            (imaged_core::digest::Digest::of(b"absent"), other.clone()),
            (inst_digest, imaged_core::model::Platform::host()),
        ],
        3,
    )
    .name("localhost/list:latest");
    v.extend(both(|p, n| {
        case(
            format!("{n}: #21 a manifest list's name removes the local instance"),
            "table #21",
        )
        .deviation("libimage behaviour inferred; the instance is removed whole, as by ID")
        .image("inst", inst.clone())
        .image("list", list.clone())
        .rm(t("localhost/list:latest"), rm_opts(p, false))
        .records(del(p, "inst", &[0]))
        .remaining(&["list"])
    }));
    v.extend(both(|p, n| {
        case(
            format!("{n}: lookup_manifest removes the list itself, its instance stays"),
            "libimage RemoveImages LookupManifest (podman manifest rm)",
        )
        .image("inst", inst.clone())
        .image("list", list.clone())
        .rm(
            t("localhost/list:latest"),
            RemoveOptions {
                lookup_manifest: true,
                ..rm_opts(p, false)
            },
        )
        .records(vec![U("localhost/list:latest"), D("list")])
        .remaining(&["inst"])
    }));
    v.push(
        case(
            "podman: lookup_manifest on an image that is not a list",
            "libimage ErrNotAManifestList",
        )
        .image("i", img("i").name(A))
        .rm(
            t("a"),
            RemoveOptions {
                lookup_manifest: true,
                ..rm_opts(Policy::Podman, false)
            },
        )
        .err("NOT_A_MANIFEST_LIST", "image is not a manifest list")
        .remaining(&["i"]),
    );
    v.extend(both(|p, n| {
        case(
            format!("{n}: a request's platform with no local instance removes the list"),
            "libimage LookupImage (returnManifestIfNoInstance), SPEC §2.4",
        )
        .image("inst", inst.clone())
        .image("list", list.clone())
        .rm(
            t("localhost/list:latest"),
            RemoveOptions {
                platform: Some(other.clone()),
                ..rm_opts(p, false)
            },
        )
        .records(vec![U("localhost/list:latest"), D("list")])
        .remaining(&["inst"])
    }));
    v.extend(both(|p, n| {
        case(
            format!("{n}: containers-storage: reference removes the whole image"),
            "libimage LookupImage (storage transport: no resolved name)",
        )
        .image("i", img("i").name(A).name(B))
        .rm(
            t("containers-storage:localhost/a:latest"),
            rm_opts(p, p == Policy::Docker),
        )
        .records(then(vec![U(A), U(B)], del(p, "i", &[0])))
        .remaining(&[])
    }));
    v.push(
        case(
            "podman: another transport is refused",
            "libimage LookupImage",
        )
        .image("i", img("i").name(A))
        .rm(
            t("docker://localhost/a:latest"),
            rm_opts(Policy::Podman, false),
        )
        .err(
            "INVALID_REFERENCE",
            "unsupported transport \"docker\" for looking up local images",
        )
        .remaining(&["i"]),
    );
    let lonely = ImageSpec::list(vec![(inst_digest, imaged_core::model::Platform::host())], 3)
        .name("localhost/list:latest");
    v.extend(both(|p, n| {
        case(
            format!("{n}: #21 a manifest list without local instance goes itself"),
            "SPEC §2.4",
        )
        .image("list", lonely.clone())
        .rm(t("localhost/list:latest"), rm_opts(p, false))
        .records(vec![U("localhost/list:latest"), D("list")])
        .remaining(&[])
    }));
    v.extend(cri_cases());
    v
}

fn cri_cases() -> Vec<Case> {
    let base = img("p").name(A);
    vec![
        case(
            "cri: #22 whole image with every name, stopped container removed",
            "table #22",
        )
        .deviation("containerd does not check containers; imaged drops non-running records")
        .image("i", img("i").name(B).name(A))
        .ctr("ctr1", "i", Stopped)
        .cri_rm(t("a"))
        .records(vec![U(A), U(B), D("i")])
        .removed(&["ctr1"])
        .remaining(&[]),
        case("cri: absent image is OK", "CRI RemoveImage idempotence")
            .image("i", img("i").name(A))
            .cri_rm(t("nothere"))
            .records(vec![])
            .remaining(&["i"]),
        case("cri: running container blocks", "SPEC §8")
            .image("i", img("i").name(A))
            .ctr("ctr1", "i", Running)
            .cri_rm(Ref::Id("i"))
            .err("CONTAINER_RUNNING", "")
            .remaining(&["i"]),
        case(
            "cri: an image with a child goes, its layers stay",
            "SPEC §8, §3.1.6",
        )
        .image("p", base.clone())
        .image("c", base.child("c", 2).name(B))
        .cri_rm(t("a"))
        .records(vec![U(A)])
        .remaining(&["c"]),
    ]
}
